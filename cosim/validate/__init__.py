"""Accuracy as a feature: published measurements, the cosim query that predicts each, errors, calibration.

`run_validation()` maps every reference row to a prediction and returns the per-row table and the
per-group summary that `cosim validate`, `reports/validation.md` and the explorer's Accuracy page show.
"""

from cosim.validate.runner import ValidationReport, run_validation

__all__ = ["ValidationReport", "run_validation"]
