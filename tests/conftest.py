"""Shared test configuration: Hypothesis profile sized for a 2-core CI machine."""

import os

from hypothesis import HealthCheck, settings

os.environ.setdefault("NUMBA_THREADING_LAYER", "threadsafe")

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
