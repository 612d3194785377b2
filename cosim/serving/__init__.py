"""Serving simulator: requests arriving at replicas of a model mapping, scheduled iteration by iteration.

Modules: `steptime` (interpolated step-time tables and the model protocol), `requests` (arrivals and
lengths), `kernel` (the Numba event loop and its plain-Python twin), `simulator` (configuration and
runs, disaggregation), `metrics` (percentiles, goodput, sustainability, energy and cost), `search`
(highest load meeting an SLO), `adapter` (engine -> tables, KV capacity) and `service` (`serve`,
what `cosim serve` calls).
"""
