"""HardwareArrays: the numeric fields of N hardware design points as contiguous float64 arrays.

A single estimate is N = 1; a sweep is N = 10**6; one kernel serves both. `FIELD_PATHS` maps a
spec field path (as written in YAML, e.g. `memory.hbm.bandwidth_bytes_per_s`) to its column, so
sweeps can vary any numeric field without re-validating specs per point.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from cosim.specs.hardware import PRECISIONS, Hardware

TOPOLOGY_CODE = {"switch": 0, "torus": 1, "mesh": 2, "ring": 3, "fully_connected": 4, "point_to_point": 5}

# When a precision is not supported natively, matmuls run at the rate of the first supported one here.
_FALLBACK: dict[str, tuple[str, ...]] = {
    "fp4": ("fp4", "fp6", "fp8", "int8", "bf16", "fp16"),
    "int4": ("int4", "int8", "fp8", "bf16", "fp16"),
    "fp6": ("fp6", "fp8", "bf16", "fp16"),
    "fp8": ("fp8", "bf16", "fp16"),
    "int8": ("int8", "fp8", "bf16", "fp16"),
    "bf16": ("bf16", "fp16", "tf32", "fp32"),
    "fp16": ("fp16", "bf16", "tf32", "fp32"),
    "tf32": ("tf32", "fp32", "bf16"),
    "fp32": ("fp32", "tf32", "bf16"),
}


@dataclass
class HardwareArrays:
    """Struct of arrays, each shape (N,) except `peak_flops_per_s` (N, len(PRECISIONS)).

    `peak_flops_per_s[:, p]` already applies the precision fallback (an A100 asked for fp8 runs at
    its bf16 rate). Unknown optional figures are 0 (engines treat 0 as "not modelled": e.g. an
    on-chip bandwidth of 0 means on-chip traffic is free).
    """

    peak_flops_per_s: np.ndarray
    vector_flops_per_s: np.ndarray
    clock_hz: np.ndarray
    compute_units: np.ndarray
    tile_m: np.ndarray
    tile_n: np.ndarray
    tile_k: np.ndarray
    systolic_rows: np.ndarray
    systolic_cols: np.ndarray
    systolic_arrays_per_core: np.ndarray
    systolic_cores: np.ndarray
    mem_capacity_bytes: np.ndarray
    mem_bandwidth_bytes_per_s: np.ndarray
    mem_energy_j_per_byte: np.ndarray
    onchip_capacity_bytes: np.ndarray
    onchip_bandwidth_bytes_per_s: np.ndarray
    scale_up_bandwidth_bytes_per_s: np.ndarray
    scale_up_latency_s: np.ndarray
    scale_up_domain: np.ndarray
    scale_up_topology: np.ndarray
    scale_up_in_switch_reduction: np.ndarray
    torus_x: np.ndarray
    torus_y: np.ndarray
    torus_z: np.ndarray
    scale_out_bandwidth_bytes_per_s: np.ndarray
    scale_out_latency_s: np.ndarray
    tdp_w: np.ndarray
    idle_w: np.ndarray
    process_node_nm: np.ndarray
    price_usd_per_hour: np.ndarray
    purchase_price_usd: np.ndarray
    chips_per_node: np.ndarray

    def __len__(self) -> int:
        return len(self.tdp_w)

    @classmethod
    def from_hardware(cls, hw: Hardware, n: int = 1) -> HardwareArrays:
        """N identical copies of one spec (N = 1 for a single estimate)."""
        row = _scalar_row(hw)
        cols = {}
        for f in fields(cls):
            value = row[f.name]
            if f.name == "peak_flops_per_s":
                cols[f.name] = np.ascontiguousarray(np.tile(np.asarray(value, dtype=np.float64), (n, 1)))
            else:
                cols[f.name] = np.full(n, float(value), dtype=np.float64)
        return cls(**cols)

    @classmethod
    def stack(cls, specs: list[Hardware]) -> HardwareArrays:
        """One design point per spec (e.g. the Compare page)."""
        parts = [cls.from_hardware(h) for h in specs]
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def with_column(self, column: str, values: np.ndarray) -> HardwareArrays:
        """A copy with one column replaced (broadcast to N); `column` may be `peak_flops_per_s.bf16`."""
        values = np.asarray(values, dtype=np.float64)
        if column.startswith("peak_flops_per_s."):
            p = PRECISIONS.index(column.split(".", 1)[1])
            peak = self.peak_flops_per_s.copy()
            peak[:, p] = values
            return replace(self, peak_flops_per_s=peak)
        return replace(self, **{column: np.broadcast_to(values, (len(self),)).copy()})

    def repeat_to(self, n: int) -> HardwareArrays:
        """Tile a single design point to N points (N must be a multiple of len(self) == 1)."""
        if len(self) != 1:
            raise ValueError("repeat_to expects a single design point")
        return HardwareArrays(**{
            f.name: (np.ascontiguousarray(np.tile(getattr(self, f.name), (n, 1))) if f.name == "peak_flops_per_s"
                     else np.full(n, getattr(self, f.name)[0]))
            for f in fields(self)
        })


def _fig(fig, default: float = 0.0) -> float:
    return default if fig is None else float(fig.value)


def peak_with_fallback(hw: Hardware, precision: str) -> float:
    """The chip's peak FLOP/s for `precision`, or for the nearest precision it runs that at (an A100 asked for
    fp8 runs at its bf16 rate, Groq's LPU asked for bf16 at its fp16 rate); 0 when it lists none of them."""
    for candidate in _FALLBACK.get(precision, (precision,)):
        v = hw.peak_flops(candidate)
        if v:
            return float(v)
    return 0.0


def _scalar_row(hw: Hardware) -> dict[str, object]:
    c = hw.compute
    peaks = [peak_with_fallback(hw, p) for p in PRECISIONS]
    main = hw.main_memory
    onchip = [m for m in hw.memory[:-1] if m.kind in ("sram", "cache")]
    # the largest on-chip level shared by the chip (L2/VMEM/SRAM) governs reuse
    big = max(onchip, key=lambda m: m.capacity_bytes.value, default=None)
    up = hw.interconnect.scale_up
    out = hw.interconnect.scale_out
    dims = tuple(up.torus_dims) if up and up.torus_dims else ()
    dims = dims + (1,) * (3 - len(dims))
    tile = c.gemm_tile
    sys_ = c.systolic
    return {
        "peak_flops_per_s": peaks,
        "vector_flops_per_s": _fig(c.vector_flops_per_s),
        "clock_hz": _fig(c.clock_hz),
        "compute_units": _fig(c.compute_units, 1.0),
        "tile_m": tile.m if tile else 128,
        "tile_n": tile.n if tile else 128,
        "tile_k": tile.k if tile else 64,
        "systolic_rows": _fig(sys_.rows) if sys_ else 0.0,
        "systolic_cols": _fig(sys_.cols) if sys_ else 0.0,
        "systolic_arrays_per_core": _fig(sys_.arrays_per_core) if sys_ else 0.0,
        "systolic_cores": _fig(sys_.cores) if sys_ else 0.0,
        "mem_capacity_bytes": main.capacity_bytes.value,
        "mem_bandwidth_bytes_per_s": _fig(main.bandwidth_bytes_per_s),
        "mem_energy_j_per_byte": _fig(main.energy_j_per_byte),
        "onchip_capacity_bytes": big.capacity_bytes.value if big else 0.0,
        "onchip_bandwidth_bytes_per_s": _fig(big.bandwidth_bytes_per_s) if big else 0.0,
        "scale_up_bandwidth_bytes_per_s": _fig(up.bandwidth_bytes_per_s) if up else 0.0,
        "scale_up_latency_s": _fig(up.latency_s) if up else 0.0,
        "scale_up_domain": _fig(up.domain_size, 1.0) if up else 1.0,
        "scale_up_topology": TOPOLOGY_CODE[up.topology] if up else 0,
        "scale_up_in_switch_reduction": 1.0 if (up and up.in_switch_reduction) else 0.0,
        "torus_x": dims[0], "torus_y": dims[1], "torus_z": dims[2],
        "scale_out_bandwidth_bytes_per_s": _fig(out.bandwidth_bytes_per_s) if out else 0.0,
        "scale_out_latency_s": _fig(out.latency_s) if out else 0.0,
        "tdp_w": hw.power.tdp_w.value,
        "idle_w": _fig(hw.power.idle_w),
        "process_node_nm": hw.process_node_nm.value,
        "price_usd_per_hour": _fig(hw.cost.cloud_price_usd_per_hour),
        "purchase_price_usd": _fig(hw.cost.purchase_price_usd),
        "chips_per_node": hw.system.chips_per_node.value,
    }


def _field_paths(hw: Hardware | None = None) -> dict[str, str]:
    """Spec field path -> HardwareArrays column. Memory levels are addressed by name."""
    paths = {f"compute.peak_flops_per_s.{p}": f"peak_flops_per_s.{p}" for p in PRECISIONS}
    paths.update({
        "compute.vector_flops_per_s": "vector_flops_per_s",
        "compute.clock_hz": "clock_hz",
        "compute.compute_units": "compute_units",
        "compute.systolic.rows": "systolic_rows",
        "compute.systolic.cols": "systolic_cols",
        "compute.systolic.arrays_per_core": "systolic_arrays_per_core",
        "compute.systolic.cores": "systolic_cores",
        "interconnect.scale_up.bandwidth_bytes_per_s": "scale_up_bandwidth_bytes_per_s",
        "interconnect.scale_up.latency_s": "scale_up_latency_s",
        "interconnect.scale_up.domain_size": "scale_up_domain",
        "interconnect.scale_out.bandwidth_bytes_per_s": "scale_out_bandwidth_bytes_per_s",
        "interconnect.scale_out.latency_s": "scale_out_latency_s",
        "power.tdp_w": "tdp_w",
        "power.idle_w": "idle_w",
        "process_node_nm": "process_node_nm",
        "cost.cloud_price_usd_per_hour": "price_usd_per_hour",
        "cost.purchase_price_usd": "purchase_price_usd",
        "system.chips_per_node": "chips_per_node",
    })
    if hw is not None:
        main = hw.main_memory.name
        paths[f"memory.{main}.capacity_bytes"] = "mem_capacity_bytes"
        paths[f"memory.{main}.bandwidth_bytes_per_s"] = "mem_bandwidth_bytes_per_s"
        paths[f"memory.{main}.energy_j_per_byte"] = "mem_energy_j_per_byte"
        onchip = [m for m in hw.memory[:-1] if m.kind in ("sram", "cache")]
        if onchip:
            big = max(onchip, key=lambda m: m.capacity_bytes.value)
            paths[f"memory.{big.name}.capacity_bytes"] = "onchip_capacity_bytes"
            paths[f"memory.{big.name}.bandwidth_bytes_per_s"] = "onchip_bandwidth_bytes_per_s"
    return paths


def field_paths(hw: Hardware) -> dict[str, str]:
    """The sweepable numeric fields of `hw` and the HardwareArrays column each one drives."""
    return _field_paths(hw)
