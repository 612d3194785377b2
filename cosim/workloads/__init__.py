"""Closed-form facts about workloads (parameter counts, KV bytes) independent of any hardware."""

from cosim.workloads.params import kv_cache_bytes_per_token, params_active, params_total

__all__ = ["kv_cache_bytes_per_token", "params_active", "params_total"]
