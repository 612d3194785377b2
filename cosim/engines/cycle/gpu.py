"""Wave-level GPU model: output tiles become thread blocks spread over the SMs in waves.

Each tile's time is the larger of its tensor-core time (2 * tm * tn * k FLOP at peak / SMs) and
its share of the wave's main-memory traffic (the wave's distinct A rows and B columns, read once
thanks to L2 reuse across the tiles of a wave). Tail waves show up as waves * SMs > tiles; when a
GEMM has fewer tiles than SMs, K is split (split-K) up to the SM count, paying a reduction of the
partial outputs. FlashAttention-style attention is the same with one tile per (sequence, head,
query block) streaming that head's K and V.
"""

from __future__ import annotations

import math

import numpy as np


def gemm_waves(m: float, k: float, n: float, *, sms: float, peak_flops: float, hbm_bytes_per_s: float,
               bytes_per_el: float, tm: float, tn: float, tk: float) -> dict:
    """Seconds and wave statistics for one GEMM (M, K, N) on a GPU."""
    tiles_m, tiles_n = math.ceil(m / tm), math.ceil(n / tn)
    tiles = tiles_m * tiles_n
    split = 1
    if tiles < sms:
        split = int(max(1, min(sms // tiles, math.ceil(k / tk))))
    blocks = tiles * split
    waves = math.ceil(blocks / sms)
    k_part = math.ceil(k / split)
    per_sm = peak_flops / sms
    t_compute = 2.0 * min(tm, m) * min(tn, n) * k_part / per_sm
    # distinct operands a full wave touches: a near-square patch of the tile grid
    per_wave = min(blocks, sms) / split
    patch_m = min(tiles_m, max(1, round(math.sqrt(per_wave))))
    patch_n = min(tiles_n, math.ceil(per_wave / patch_m))
    wave_bytes = (patch_m * tm * k + patch_n * tn * k) * bytes_per_el
    wave_bytes = min(wave_bytes, (m * k + k * n) * bytes_per_el)
    t_mem = wave_bytes / hbm_bytes_per_s
    out_bytes = m * n * bytes_per_el * (1 + 2 * (split - 1))  # split-K writes and re-reads partials
    seconds = waves * max(t_compute, t_mem) + out_bytes / hbm_bytes_per_s
    return {"seconds": seconds, "tiles": tiles, "waves": waves, "split_k": split,
            "wave_efficiency": blocks / (waves * sms), "bound": "compute" if t_compute >= t_mem else "memory"}


def attention_waves(batch: float, heads: float, kv_heads: float, q_len: float, kv_len: float, head_dim: float,
                    head_dim_v: float, *, causal: bool, sms: float, peak_flops: float, hbm_bytes_per_s: float,
                    bytes_per_el: float, block_q: float = 128.0) -> dict:
    """FlashAttention tiling: one block per (sequence, head, query block) streaming K and V."""
    q_blocks = math.ceil(q_len / block_q)
    blocks = batch * heads * q_blocks
    waves = math.ceil(blocks / sms)
    frac = 0.5 if causal and q_len > 1 else 1.0
    flops_block = 2.0 * min(block_q, q_len) * kv_len * (head_dim + head_dim_v) * frac
    t_compute = flops_block / (peak_flops / sms)
    kv_bytes = batch * kv_heads * kv_len * (head_dim + head_dim_v) * bytes_per_el
    q_o_bytes = batch * heads * q_len * (head_dim + head_dim_v) * bytes_per_el
    seconds = max(waves * t_compute, (kv_bytes + q_o_bytes) / hbm_bytes_per_s)
    return {"seconds": seconds, "tiles": blocks, "waves": waves, "split_k": 1,
            "wave_efficiency": blocks / (waves * sms), "bound": "compute" if waves * t_compute * hbm_bytes_per_s
            >= kv_bytes + q_o_bytes else "memory"}


def as_array(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)
