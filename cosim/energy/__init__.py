"""Energy and power: joules per step from FLOPs and bytes, a TDP cap, three boundaries, calibration."""

from cosim.energy.model import (
    EnergyArrays,
    EnergyBreakdown,
    EnergyParams,
    energy_for_estimate,
    step_energy,
    step_energy_arrays,
)

__all__ = ["EnergyArrays", "EnergyBreakdown", "EnergyParams", "energy_for_estimate", "step_energy",
           "step_energy_arrays"]
