"""Design-space exploration: sweeps, Pareto fronts, constrained optimisation, mapping tuning, area and die cost.

- `spec`: the sweep-spec YAML schema (`load_sweep_spec`); `sampling`: chunked grid/random/Sobol/LHS points;
- `engine`: one chunk -> HardwareArrays -> `cosim.engines.vectorized.evaluate_points` -> result columns;
- `sweep`: `run_sweep` (Parquet parts + manifest, resume, Dask); `results`: units, constraints, statistics;
- `pareto`: exact non-dominated sort; `optimize`: differential evolution; `mapping`: `best_mapping`;
- `area`: die area and die cost from `cosim/data/area_nodes.yaml`.
"""
