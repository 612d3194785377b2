"""The analytical engine's Numba kernels: per-op time on N hardware design points, summed into a step.

Per op (one execution on one chip):
- compute time = FLOPs / (peak[precision] x achievable fraction x size-curve multiplier x tile and
  wave quantisation), the achievable fraction being the GEMM `compute_fraction` for GEMM rows and the
  fused-attention `attention_fraction` for ATTENTION rows (FlashAttention-style kernels reach their
  own share of peak), the size curve read at the padded FLOPs (FLOPs / quantisation efficiency: the
  work the kernel really does), so a tiny padded GEMM costs its padded work plus the ramp time once. GEMMs pad M and N to the kernel tile (a tile no smaller than the family's
  minimum and no larger than the spec's `gemm_tile`: for N the next power of two of the dimension, for M
  the power of two that pads the rows least, as tuned kernels pick) and spread tiles over the compute
  units in waves, splitting K when the tiles do not fill the machine (split-K / stream-K). A grouped (MoE) GEMM pads each expert's rows on their own:
  routing spreads the tokens, so the rows of the experts a batch touches are taken as Poisson around
  their mean and the row tiles counted in expectation (`_grouped_row_tiles`): the time no longer jumps
  by up to 2x where the mean crosses a multiple of the tile, only by what changing the tile changes. The
  GEMMs of an average continuous-batching step pad the steps it averages, with and without a prompt, each
  on its own (`_mixed_rows`), not their mean. Systolic chips pad K x N to the array and spread the array
  tiles over the arrays. Attention pads the query rows (query length x query heads per KV head, the
  FlashDecoding packing) to the tile. Elementwise ops and lookups run on the vector units.
- a GEMM whose weights are stored narrower than it multiplies in and must be widened in the kernel's main
  loop (W4A16, see `_widens_weights`) adds (1 / weight_upcast_fraction - 1) x the compute time of its
  unpadded FLOPs: a large GEMM runs at the fraction's share of the same-precision rate, while a GEMV's
  widening (proportional to the multiply-adds done, not to the MMA tile's padding: narrow-M kernels swap
  operands) stays hidden under its weight stream.
- memory time = main-memory bytes / (bandwidth x achievable fraction), with on-chip reuse: weights
  stay on chip when all of a chip's weights fit in the on-chip share (SRAM designs); an op's
  activations stay on chip when they fit in the activation share of the largest on-chip memory (the
  producer's output is consumed from L2/SRAM); KV-cache traffic always goes to main memory.
  On-chip traffic is limited by the on-chip bandwidth when the spec gives one (levels run concurrently).
- op time = max(compute, memory) + launch overhead (0 for ops fused into a neighbour). Taking the max
  is the roofline with perfect overlap inside a kernel (double-buffered loads); the efficiency fractions
  carry what real kernels lose. Bound: overhead when the launch exceeds both, else the larger term.
- collectives: `network.collective` (alpha-beta over the fabric).
Per step: sum over ops x repeat (x `fwd_mult` for training: forward + backward + recompute) + the
per-step overhead + optimizer-step memory traffic + the communication not hidden behind compute
(`comm_overlap_fraction` for in-step collectives, `dp_overlap_fraction` for the DP gradient all-reduce).
In-step collectives (time and bytes) run `comm_mult` times (forward, backward, recompute); OPTIMIZER-stage
collectives (DP gradient reduction, ZeRO-3 gathers, whose row repeat says how often) once per step.

`evaluate_kernel` runs over design points with `prange` (independent points only); `op_kernel`
returns the per-op columns of one point. Both call `_op_cost`, so the single-point breakdown and the
sweep share one implementation. `cosim.engines.reference` is the plain-Python model they are tested
against.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from cosim.engines.network import collective
from cosim.specs.hardware import BYTES_PER_ELEMENT, PRECISIONS

# op table columns packed for the kernels
OPF = ("m", "k", "n", "groups", "heads", "kv_heads", "q_len", "flops", "bytes_weight", "bytes_act_in",
       "bytes_act_out", "bytes_kv_read", "bytes_kv_write", "comm_bytes", "comm_group", "repeat", "size_mult",
       "compute_override_s", "quant_eff", "m_prompt", "m_prompt_step", "work_share")
OPI = ("kind", "precision", "fused", "comm_kind", "stage", "weight_precision")
(F_M, F_K, F_N, F_GROUPS, F_HEADS, F_KVH, F_QLEN, F_FLOPS, F_W, F_AIN, F_AOUT, F_KVR, F_KVW, F_COMM,
 F_GROUP, F_REPEAT, F_SIZE, F_OVR, F_QEFF, F_PROMPT, F_PSTEP, F_SHARE) = range(len(OPF))
I_KIND, I_PREC, I_FUSED, I_COMMK, I_STAGE, I_WPREC = range(len(OPI))

# scalar parameters packed for the kernels
PRM = ("launch_overhead_s", "step_overhead_s", "comm_overlap_fraction", "dp_overlap_fraction",
       "memory_fraction", "onchip_activation_fraction", "onchip_weight_fraction", "memory_reserve_fraction",
       "min_tile_m", "min_tile_n", "split_k", "footprint_bytes", "weight_footprint_bytes", "fwd_mult",
       "comm_mult", "extra_memory_bytes", "link_fraction", "grouped_gemm_scale", "curve_reference_flops_per_s",
       "grouped_gemm_memory_scale", "serial_output_store", "sp_link_fraction")
(P_LAUNCH, P_STEP, P_OVL, P_DPOVL, P_MEMF, P_ACTF, P_WF, P_RESERVE, P_MINM, P_MINN, P_SPLITK, P_FOOT,
 P_WFOOT, P_FWD, P_COMMM, P_EXTRA, P_LINKF, P_GROUPED, P_CURVEREF, P_GROUPED_MEM, P_SERIAL,
 P_SPLINKF) = range(len(PRM))

# per-point outputs
OUT = ("step_time_s", "compute_s", "memory_s", "network_s", "overhead_s", "bottleneck", "bytes_main_memory",
       "bytes_onchip", "comm_bytes_scale_up", "comm_bytes_scale_out", "feasible", "reason", "network_total_s")
(O_STEP, O_COMP, O_MEM, O_NET, O_OVH, O_BOTTLE, O_HBM, O_CHIP, O_UP, O_OUT, O_FEAS, O_REASON,
 O_NETTOT) = range(len(OUT))
# per-op outputs
OPOUT = ("compute_s", "memory_s", "network_s", "launch_s", "time_s", "bound", "bytes_main_memory",
         "bytes_onchip", "comm_bytes_scale_up", "comm_bytes_scale_out")

BOTTLENECKS = ("compute", "memory", "network", "overhead")
# reason codes: 0 ok, 1 does not fit, 2 infinite time, 3 a mapping the model cannot take (a sweep's row for a
# parallel layout that does not divide the heads, cosim.explore.engine; the kernel never returns it)
REASONS = ("", "memory", "unsupported", "mapping")
REASON_MAPPING = 3
KIND_GEMM, KIND_GROUPED, KIND_ATTN, KIND_ELEM, KIND_EMB, KIND_COMM = 0, 1, 2, 3, 4, 5
STAGE_DIT, STAGE_OPTIMIZER = 2, 5
COMM_ALL_TO_ALL, COMM_P2P = 4, 5
N_PREC = 9  # len(PRECISIONS): the efficiency vector holds the GEMM fractions, the attention fractions,
# the weight-upcast fractions, then the size curve (n, log10 FLOPs, multipliers)
E_ATT = N_PREC  # offset of the attention fractions
E_UPCAST = 2 * N_PREC  # offset of the weight-upcast fractions (by compute precision)
E_CURVE = 3 * N_PREC  # offset of the size-curve length
# bits per element of each precision code (PRECISIONS order)
PRECISION_BITS = np.array([8.0 * BYTES_PER_ELEMENT[p] for p in PRECISIONS])
assert len(PRECISIONS) == N_PREC


@njit(cache=True, inline="always")
def _widens_weights(i, j, peak, opi):
    """Whether GEMM j widens its weights in the kernel on point i: they are stored narrower than the
    precision it multiplies in, and the tensor cores cannot take the pair as it is. No matrix unit multiplies
    a sub-16-bit weight by a 16-bit activation; a narrower pair (FP4 weights x FP8 activations) runs
    natively where the chip has a faster rate of its own for the weights' format (Blackwell, MI355X)."""
    w = opi[I_WPREC, j]
    prec = opi[I_PREC, j]
    if PRECISION_BITS[w] >= PRECISION_BITS[prec]:
        return False
    if PRECISION_BITS[prec] >= 16.0:
        return True
    return peak[i, w] <= peak[i, prec]


@njit(cache=True, inline="always")
def _tile(dim, min_tile, max_tile):
    """Kernel tile for a dimension: next power of two, clamped to [min_tile, max_tile]."""
    t = 1.0
    while t < dim:
        t *= 2.0
    if t < min_tile:
        t = min_tile
    if t > max_tile:
        t = max_tile
    return t


#: below this Poisson rate the expected tile count sums the exact pmf; above it, a normal approximation
POISSON_EXACT_MAX = 200.0
#: standard deviations either side of the mean that a normal-approximated Poisson sum covers
POISSON_SPAN_SIGMAS = 10.0


@njit(cache=True)
def _poisson_tiles(mu, t):
    """E[ceil(N / t)] for N ~ Poisson(mu) = sum over j >= 0 of P(N > j t): the expected row tiles of a group
    whose row count is Poisson with mean mu (exact pmf sum up to POISSON_EXACT_MAX, above it a normal
    approximation with a continuity correction)."""
    if mu <= 0.0:
        return 0.0
    sigma = math.sqrt(mu)
    if mu <= POISSON_EXACT_MAX:
        top = int(math.ceil(mu + POISSON_SPAN_SIGMAS * sigma + 10.0))
        pmf = math.exp(-mu)
        cdf = 0.0
        total = 0.0
        mark = 0.0
        for x in range(top + 1):
            if x > 0:
                pmf *= mu / x
            cdf += pmf
            if x >= mark:  # x is the first count at or beyond the next multiple of t
                total += max(0.0, 1.0 - cdf)
                mark += t
        return total
    lo = mu - POISSON_SPAN_SIGMAS * sigma
    j = max(0.0, math.floor(lo / t))
    total = j  # P(N > j t) is 1 below the span
    while j * t <= mu + POISSON_SPAN_SIGMAS * sigma:
        total += 0.5 * math.erfc((j * t + 0.5 - mu) / (sigma * math.sqrt(2.0)))
        j += 1.0
    return total


@njit(cache=True)
def _truncated_poisson_rate(m):
    """The rate mu whose zero-truncated Poisson mean mu / (1 - exp(-mu)) is m (> 1): the per-expert token rate
    behind a mean load of m tokens on each expert a batch touches (Newton's method)."""
    mu = m if m > 2.0 else 2.0 * (m - 1.0)
    for _ in range(60):
        e = math.exp(-mu)
        d = 1.0 - e
        step = (mu / d - m) / ((d - mu * e) / (d * d))
        mu = max(mu - step, 1e-12)
        if abs(step) <= 1e-13 * max(1.0, mu):
            break
    return mu


@njit(cache=True)
def _grouped_row_tiles(m, min_m, max_m):
    """(row tile, expected row tiles per group) of a grouped GEMM whose groups (the experts a batch touches)
    get rows averaging m: the tile is the power of two of the mean rows (`_tile`, as a heuristic or a tactic
    tuner profiling balanced routing picks it), while routing spreads the real rows, Poisson around the mean
    (zero-truncated: only touched experts run), each expert's rows padded to the tile on their own."""
    t = _tile(m, min_m, max_m)
    if m <= 1.0 + 1e-9:  # every touched expert gets one row
        return t, 1.0
    mu = _truncated_poisson_rate(m)
    return t, _poisson_tiles(mu, t) / (1.0 - math.exp(-mu))


@njit(cache=True)
def _least_padding_tile(m, min_m, max_m):
    """The power-of-two row tile from min_m to max_m that pads m rows least (the larger on a tie)."""
    best = min_m
    best_rows = math.ceil(m / min_m) * min_m
    t = min_m * 2.0
    while t <= max_m:
        rows = math.ceil(m / t) * t
        if rows <= best_rows:
            best, best_rows = t, rows
        t *= 2.0
    return best


@njit(cache=True)
def _mixed_rows(m, prompt, step, min_m, max_m, fixed_tile):
    """(expected padded rows, expected row tiles) of a GEMM whose m averages steps that carry k or k + 1
    prompts of `step` rows beside m - `prompt` decode rows (k = floor(prompt / step), the k + 1 share making
    the mean), each step padded to its own tile (`fixed_tile` > 0: that tile for every step)."""
    base = max(m - prompt, 0.0)
    k = math.floor(prompt / step)
    f = prompt / step - k
    rows = 0.0
    tiles = 0.0
    for share, x in ((1.0 - f, base + k * step), (f, base + (k + 1.0) * step)):
        if share <= 0.0 or x <= 0.0:
            continue
        t = fixed_tile if fixed_tile > 0.0 else _least_padding_tile(x, min_m, max_m)
        c = math.ceil(x / t)
        rows += share * c * t
        tiles += share * c
    return rows, tiles


@njit(cache=True)
def _padded_rows(m, grouped, prompt, prompt_step, min_m, max_m):
    """(padded rows, row tiles) of a GEMM's m rows on tiles from min_m to max_m: a grouped GEMM's Poisson
    rows (`_grouped_row_tiles`), an average step's two kinds of step (`_mixed_rows`), else the tile that pads
    m least. One compiled call, not inlined, so the kernels that use it compile it once."""
    if grouped:
        tm, cm = _grouped_row_tiles(m, min_m, max_m)
        return tm * cm, cm
    if prompt > 0.0 and prompt_step > 0.0:
        return _mixed_rows(m, prompt, prompt_step, min_m, max_m, 0.0)
    tm = _least_padding_tile(m, min_m, max_m)
    cm = float(math.ceil(m / tm))
    return tm * cm, cm


@njit(cache=True, inline="always")
def _gemm_eff(m, k, n, groups, tile_m, tile_n, tile_k, units, rows, cols, arrays, min_m, min_n, split_k,
              grouped, prompt, prompt_step):
    """Tile x wave quantisation efficiency of a GEMM, of a grouped GEMM (`grouped`: per-group rows Poisson
    around m, see `_grouped_row_tiles`) or of a continuous-batching step's GEMM whose m averages steps with and
    without prompts (`prompt`, `prompt_step`, see `_mixed_rows`), in (0, 1]."""
    if m <= 0.0 or n <= 0.0:
        return 1.0
    mixed = prompt > 0.0 and prompt_step > 0.0
    if rows > 0.0 and cols > 0.0:
        tm = max(min_m, 1.0)
        pm = _mixed_rows(m, prompt, prompt_step, min_m, min_m, tm)[0] if mixed else math.ceil(m / tm) * tm
        kk = max(k, 1.0)
        tk = math.ceil(kk / rows)
        tn = math.ceil(n / cols)
        eff = (m * kk * n) / (pm * tk * rows * tn * cols)
        tiles = tk * tn * groups
        u = arrays
    else:
        padded, cm = _padded_rows(m, grouped, prompt, prompt_step, min_m, max(tile_m, min_m))
        tn_ = _tile(n, min_n, max(tile_n, min_n))
        cn = math.ceil(n / tn_)
        eff = (m * n) / (padded * cn * tn_)
        tiles = cm * cn * groups
        u = units
    if u <= 1.0:
        return eff
    work = tiles
    if split_k > 0.0 and tiles < u and k > 0.0 and tile_k > 0.0:
        s = min(math.floor(u / tiles), math.ceil(k / tile_k))
        if s > 1.0:
            work = tiles * s
    waves = math.ceil(work / u)
    return eff * work / (waves * u)


@njit(cache=True, inline="always")
def _size_mult(flops, eff):
    """Size-curve multiplier at `flops` (log-linear interpolation of the table packed in `eff`)."""
    if flops <= 0.0:
        return 1.0
    x = math.log10(flops)
    n = int(eff[E_CURVE])
    x0 = E_CURVE + 1
    y0 = x0 + n
    if x <= eff[x0]:
        return eff[y0]
    for k in range(1, n):
        if x <= eff[x0 + k]:
            slope = (eff[y0 + k] - eff[y0 + k - 1]) / (eff[x0 + k] - eff[x0 + k - 1])
            return slope * (x - eff[x0 + k - 1]) + eff[y0 + k - 1]
    return eff[y0 + n - 1]


@njit(cache=True, inline="always")
def _size_key(padded_flops, peak, prm):
    """Where the size curve is read: the padded FLOPs, or, when the family keys its curve by time
    (`curve_reference_flops_per_s` > 0), the FLOPs the reference rate does in the op's time at `peak`,
    so a fixed kernel overhead costs the same share on a 4x faster datapath as on the reference one."""
    ref = prm[P_CURVEREF]
    if ref > 0.0 and peak > 0.0:
        return padded_flops * ref / peak
    return padded_flops


@njit(cache=True, inline="always")
def _quant_eff(i, j, tile_m, tile_n, tile_k, units, sys_rows, sys_cols, sys_arrays, opf, opi, prm):
    """Tile/wave quantisation of a GEMM or attention op on point i (1 for other kinds)."""
    kind = opi[I_KIND, j]
    if kind == KIND_ATTN:
        qrows = opf[F_QLEN, j]
        if opf[F_KVH, j] > 0.0 and opf[F_HEADS, j] > opf[F_KVH, j]:
            qrows = qrows * (opf[F_HEADS, j] / opf[F_KVH, j])
        if qrows <= 0.0:
            return 1.0
        if sys_rows[i] > 0.0:
            tm = max(prm[P_MINM], 1.0)
        else:
            tm = _tile(qrows, prm[P_MINM], max(tile_m[i], prm[P_MINM]))
        return qrows / (math.ceil(qrows / tm) * tm)
    if kind in (KIND_GEMM, KIND_GROUPED):
        return _gemm_eff(opf[F_M, j], opf[F_K, j], opf[F_N, j], opf[F_GROUPS, j], tile_m[i], tile_n[i],
                         tile_k[i], units[i], sys_rows[i], sys_cols[i], sys_arrays[i], prm[P_MINM], prm[P_MINN],
                         prm[P_SPLITK], kind == KIND_GROUPED, opf[F_PROMPT, j], opf[F_PSTEP, j])
    return 1.0


@njit(cache=True)
def quant_kernel(tile_m, tile_n, tile_k, units, sys_rows, sys_cols, sys_arrays, peak, opf, opi, prm, eff):
    """Quantisation efficiency and size multiplier of every op on point 0 (the caller keeps the multiplier
    only when every point shares point 0's peaks)."""
    q = np.empty(opf.shape[1])
    size = np.empty(opf.shape[1])
    for j in range(opf.shape[1]):
        q[j] = _quant_eff(0, j, tile_m, tile_n, tile_k, units, sys_rows, sys_cols, sys_arrays, opf, opi, prm)
        key = _size_key(opf[F_FLOPS, j] / q[j], peak[0, opi[I_PREC, j]], prm)
        size[j] = _size_mult(key, eff) if opf[F_FLOPS, j] > 0.0 else 1.0
    return q, size


@njit(cache=True, inline="always")
def _matrix_rate(i, j, kind, prec, flops, peak, tile_m, tile_n, tile_k, units, sys_rows, sys_cols, sys_arrays,
                 opf, opi, prm, cfrac):
    """(FLOP/s of a GEMM/attention op's useful work before tile and wave quantisation, the quantisation
    efficiency): peak x achievable fraction (x the MoE compute share for grouped GEMMs) x the size-curve
    multiplier."""
    q = opf[F_QEFF, j]
    size = opf[F_SIZE, j]
    if q < 0.0:
        q = _quant_eff(i, j, tile_m, tile_n, tile_k, units, sys_rows, sys_cols, sys_arrays, opf, opi, prm)
    if size < 0.0:
        size = _size_mult(_size_key(flops / q, peak[i, prec], prm), cfrac)
    frac = cfrac[E_ATT + prec] if kind == KIND_ATTN else cfrac[prec]
    if kind == KIND_GROUPED:
        frac *= prm[P_GROUPED]
    return peak[i, prec] * frac * size, q


@njit(cache=True, inline="always")
def _store_s(out_bytes, on_chip, onchip_bw, hbm_bw):
    """Seconds a GEMM's epilogue spends storing its output tiles after their main loops: the store does not
    overlap the tile's multiply-adds, so a compute-bound GEMM pays its output write on top (the roofline's
    overlap keeps only the reads). Per tile, main loop / store = 2 K / (output bytes x ridge point): at small K
    and a high ridge (FP4 on B200: 1,125 FLOP/B) the store is a third of a K = 2,048 GEMM."""
    if on_chip:
        return out_bytes / onchip_bw if onchip_bw > 0.0 else 0.0
    return out_bytes / hbm_bw if hbm_bw > 0.0 else math.inf


@njit(cache=True, inline="always")
def _widening_s(flops, unpadded_rate, upcast_fraction):
    """Seconds a GEMM spends widening its weights: (1 / f - 1) x its multiply-adds' own time, padding excluded."""
    if unpadded_rate <= 0.0:
        return 0.0
    return flops * (1.0 / upcast_fraction - 1.0) / unpadded_rate


@njit(cache=True, inline="always")
def _op_cost(i, j, peak, vector, units, tile_m, tile_n, tile_k, sys_rows, sys_cols, sys_arrays,
             mem_bw, onchip_cap, onchip_bw, up_bw, up_lat, domain, topo, in_switch, tx, ty, tz,
             out_bw, out_lat, opf, opi, prm, cfrac):
    """(compute s, memory s, network s, launch s, bound code, main-memory B, on-chip B, up B, out B)."""
    kind = opi[I_KIND, j]
    if kind == KIND_COMM:
        linkf = prm[P_LINKF]  # achievable fraction of the links' datasheet bandwidth
        if prm[P_SPLINKF] > 0.0 and opi[I_STAGE, j] == STAGE_DIT and (
                opi[I_COMMK, j] == COMM_ALL_TO_ALL or opi[I_COMMK, j] == COMM_P2P):
            linkf = prm[P_SPLINKF]  # a video DiT's sequence-parallel exchange (sp_link_fraction)
        t, bu, bo = collective(opi[I_COMMK, j], opf[F_COMM, j], opf[F_GROUP, j], up_bw[i] * linkf, up_lat[i],
                               domain[i], topo[i], in_switch[i], tx[i], ty[i], tz[i], out_bw[i] * linkf,
                               out_lat[i])
        return 0.0, 0.0, t, 0.0, 2, 0.0, 0.0, bu, bo
    prec = opi[I_PREC, j]
    flops = opf[F_FLOPS, j]
    tc = 0.0
    widens = kind in (KIND_GEMM, KIND_GROUPED) and flops > 0.0 and _widens_weights(i, j, peak, opi)
    if opf[F_OVR, j] >= 0.0:  # compute time supplied by another engine (--mode cycle)
        tc = opf[F_OVR, j]
        if widens:
            unpadded, q = _matrix_rate(i, j, kind, prec, flops, peak, tile_m, tile_n, tile_k, units, sys_rows,
                                       sys_cols, sys_arrays, opf, opi, prm, cfrac)
            tc += _widening_s(flops, unpadded, cfrac[E_UPCAST + prec])
    elif flops > 0.0:
        if kind in (KIND_GEMM, KIND_GROUPED, KIND_ATTN):
            unpadded, q = _matrix_rate(i, j, kind, prec, flops, peak, tile_m, tile_n, tile_k, units, sys_rows,
                                       sys_cols, sys_arrays, opf, opi, prm, cfrac)
            rate = unpadded * q
            tc = flops / rate if rate > 0.0 else math.inf
            if widens:
                tc += _widening_s(flops, unpadded, cfrac[E_UPCAST + prec])
        elif vector[i] > 0.0:
            tc = flops / vector[i]
        elif peak[i, prec] > 0.0:  # no vector rate in the spec: the matrix datapath's achievable rate
            tc = flops / (peak[i, prec] * cfrac[prec])
    w = opf[F_W, j]
    act = opf[F_AIN, j] + opf[F_AOUT, j]
    hbm = opf[F_KVR, j] + opf[F_KVW, j]
    chip = 0.0
    if onchip_cap[i] > 0.0 and prm[P_WFOOT] <= onchip_cap[i] * prm[P_WF]:
        chip += w
    else:
        hbm += w
    act_on_chip = act <= onchip_cap[i] * prm[P_ACTF]
    if act_on_chip:
        chip += act
    else:
        hbm += act
    tm_ = 0.0
    bw = mem_bw[i] * prm[P_MEMF]
    if kind == KIND_GROUPED:
        bw *= prm[P_GROUPED_MEM]
    if prm[P_SERIAL] > 0.0 and kind in (KIND_GEMM, KIND_GROUPED) and tc > 0.0 and opf[F_OVR, j] < 0.0:
        tc += _store_s(opf[F_AOUT, j], act_on_chip, onchip_bw[i], bw)
    if hbm > 0.0:
        tm_ = hbm / bw if bw > 0.0 else math.inf
    if chip > 0.0 and onchip_bw[i] > 0.0:
        tchip = chip / onchip_bw[i]
        if tchip > tm_:
            tm_ = tchip
    launch = 0.0 if opi[I_FUSED, j] != 0 else prm[P_LAUNCH]
    body = max(tc, tm_)
    if launch > body:
        bound = 3
    elif tc >= tm_:
        bound = 0
    else:
        bound = 1
    return tc, tm_, 0.0, launch, bound, hbm, chip, 0.0, 0.0


@njit(cache=True, parallel=True)
def evaluate_kernel(peak, vector, units, tile_m, tile_n, tile_k, sys_rows, sys_cols, sys_arrays,
                    mem_cap, mem_bw, onchip_cap, onchip_bw, up_bw, up_lat, domain, topo, in_switch,
                    tx, ty, tz, out_bw, out_lat, opf, opi, prm, cfrac):
    """Per-point step time and counters, shape (len(OUT), N). `prange` over independent points."""
    n_points = mem_bw.shape[0]
    n_ops = opf.shape[1]
    out = np.empty((len(OUT), n_points))
    fwd = prm[P_FWD]
    for i in prange(n_points):
        comp = 0.0
        mem = 0.0
        ovh = 0.0
        net = 0.0
        net_dp = 0.0
        hbm = 0.0
        chip = 0.0
        up = 0.0
        outb = 0.0
        up_dp = 0.0
        out_dp = 0.0
        for j in range(n_ops):
            r = opf[F_REPEAT, j]
            rs = r * opf[F_SHARE, j]  # energy counters: the chips' mean work (time: the row's own)
            tc, tm, tn, tl, bound, bh, bc, bu, bo = _op_cost(
                i, j, peak, vector, units, tile_m, tile_n, tile_k, sys_rows, sys_cols, sys_arrays, mem_bw,
                onchip_cap, onchip_bw, up_bw, up_lat, domain, topo, in_switch, tx, ty, tz, out_bw, out_lat,
                opf, opi, prm, cfrac)
            if bound == 2:
                if opi[I_STAGE, j] == STAGE_OPTIMIZER:  # once per step, not per pass
                    net_dp += tn * r
                    up_dp += bu * rs
                    out_dp += bo * rs
                else:
                    net += tn * r
                    up += bu * rs
                    outb += bo * rs
                continue
            body = max(tc, tm)
            if bound == 0 or (bound == 3 and tc >= tm):
                comp += body * r
            else:
                mem += body * r
            ovh += tl * r
            hbm += bh * rs
            chip += bc * rs
        # training: forward + backward (+ recompute); collectives of the step run comm_mult times
        comp *= fwd
        mem *= fwd
        ovh = ovh * fwd + prm[P_STEP]
        hbm *= fwd
        chip *= fwd
        net *= prm[P_COMMM]
        up = up * prm[P_COMMM] + up_dp
        outb = outb * prm[P_COMMM] + out_dp
        if prm[P_EXTRA] > 0.0:
            bw = mem_bw[i] * prm[P_MEMF]
            mem += prm[P_EXTRA] / bw if bw > 0.0 else math.inf
            hbm += prm[P_EXTRA]
        busy = comp + mem
        hide1 = min(prm[P_OVL] * net, busy)
        hide2 = min(prm[P_DPOVL] * net_dp, busy - hide1)
        exposed = net + net_dp - hide1 - hide2
        step = busy + ovh + exposed
        # bottleneck: the largest share of the step
        best = comp
        code = 0
        if mem > best:
            best = mem
            code = 1
        if exposed > best:
            best = exposed
            code = 2
        if ovh > best:
            code = 3
        reason = 0
        if prm[P_FOOT] > mem_cap[i] * (1.0 - prm[P_RESERVE]):
            reason = 1
        elif not math.isfinite(step):
            reason = 2
        out[O_STEP, i] = step
        out[O_COMP, i] = comp
        out[O_MEM, i] = mem
        out[O_NET, i] = exposed
        out[O_OVH, i] = ovh
        out[O_BOTTLE, i] = code
        out[O_HBM, i] = hbm
        out[O_CHIP, i] = chip
        out[O_UP, i] = up
        out[O_OUT, i] = outb
        out[O_FEAS, i] = 1.0 if reason == 0 else 0.0
        out[O_REASON, i] = reason
        out[O_NETTOT, i] = net + net_dp
    return out


@njit(cache=True)
def op_kernel(i, peak, vector, units, tile_m, tile_n, tile_k, sys_rows, sys_cols, sys_arrays,
              mem_bw, onchip_cap, onchip_bw, up_bw, up_lat, domain, topo, in_switch,
              tx, ty, tz, out_bw, out_lat, opf, opi, prm, cfrac):
    """Per-op columns (len(OPOUT), n_ops) of point `i`, per execution (not x repeat)."""
    n_ops = opf.shape[1]
    out = np.empty((len(OPOUT), n_ops))
    for j in range(n_ops):
        tc, tm, tn, tl, bound, bh, bc, bu, bo = _op_cost(
            i, j, peak, vector, units, tile_m, tile_n, tile_k, sys_rows, sys_cols, sys_arrays, mem_bw,
            onchip_cap, onchip_bw, up_bw, up_lat, domain, topo, in_switch, tx, ty, tz, out_bw, out_lat,
            opf, opi, prm, cfrac)
        out[0, j] = tc
        out[1, j] = tm
        out[2, j] = tn
        out[3, j] = tl
        out[4, j] = tn if bound == 2 else max(tc, tm) + tl
        out[5, j] = bound
        out[6, j] = bh
        out[7, j] = bc
        out[8, j] = bu
        out[9, j] = bo
    return out


# ---------------------------------------------------------------------------------------------------
# Python-side packing (no Numba here)


def pack_ops(table, params, compute_override_s: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """OpTable -> (float columns (len(OPF), n_ops), int columns (len(OPI), n_ops)), C-contiguous.

    `compute_override_s`: per-op compute seconds from another engine (NaN or < 0: use the analytical model).
    """
    cols = []
    for name in OPF:
        if name in ("size_mult", "quant_eff"):
            cols.append(np.full(len(table), -1.0))
        elif name == "compute_override_s":
            ovr = np.full(len(table), -1.0)
            if compute_override_s is not None:
                given = np.asarray(compute_override_s, dtype=np.float64)
                ovr = np.where(np.isfinite(given) & (given >= 0), given, -1.0)
            cols.append(ovr)
        else:
            cols.append(np.asarray(getattr(table, name), dtype=np.float64))
    opf = np.ascontiguousarray(np.vstack(cols)) if cols and len(table) else np.zeros((len(OPF), 0))
    opi = (np.ascontiguousarray(np.vstack([np.asarray(getattr(table, c), dtype=np.int64) for c in OPI]))
           if len(table) else np.zeros((len(OPI), 0), dtype=np.int64))
    return opf, opi


def pack_params(params, *, footprint_bytes: float, weight_footprint_bytes: float, fwd_mult: float = 1.0,
                comm_mult: float = 1.0, extra_memory_bytes: float = 0.0) -> np.ndarray:
    values = {
        "launch_overhead_s": params.launch_overhead_s, "step_overhead_s": params.step_overhead_s,
        "comm_overlap_fraction": params.comm_overlap_fraction, "dp_overlap_fraction": params.dp_overlap_fraction,
        "memory_fraction": params.memory_fraction,
        "onchip_activation_fraction": params.onchip_activation_fraction,
        "onchip_weight_fraction": params.onchip_weight_fraction,
        "memory_reserve_fraction": params.memory_reserve_fraction,
        "min_tile_m": params.min_tile_m, "min_tile_n": params.min_tile_n, "split_k": float(params.split_k),
        "footprint_bytes": footprint_bytes, "weight_footprint_bytes": weight_footprint_bytes,
        "fwd_mult": fwd_mult, "comm_mult": comm_mult, "extra_memory_bytes": extra_memory_bytes,
        "link_fraction": params.link_fraction, "grouped_gemm_scale": params.grouped_gemm_scale,
        "curve_reference_flops_per_s": params.curve_reference_flops_per_s or 0.0,
        "grouped_gemm_memory_scale": params.grouped_gemm_memory_scale,
        "serial_output_store": 1.0 if params.serial_output_store else 0.0,
        "sp_link_fraction": params.sp_link_fraction or 0.0,
    }
    return np.array([float(values[k]) for k in PRM], dtype=np.float64)


HW_COLUMNS = ("peak_flops_per_s", "vector_flops_per_s", "compute_units", "tile_m", "tile_n", "tile_k",
              "systolic_rows", "systolic_cols", "_systolic_arrays", "mem_capacity_bytes",
              "mem_bandwidth_bytes_per_s", "onchip_capacity_bytes", "onchip_bandwidth_bytes_per_s",
              "scale_up_bandwidth_bytes_per_s", "scale_up_latency_s", "scale_up_domain", "scale_up_topology",
              "scale_up_in_switch_reduction", "torus_x", "torus_y", "torus_z",
              "scale_out_bandwidth_bytes_per_s", "scale_out_latency_s")


def hw_args(hw) -> tuple[np.ndarray, ...]:
    """HardwareArrays -> the kernels' hardware arguments, each a contiguous float64 array."""
    args = []
    for name in HW_COLUMNS:
        if name == "_systolic_arrays":
            a = hw.systolic_arrays_per_core * np.maximum(hw.systolic_cores, 1.0)
        else:
            a = getattr(hw, name)
        args.append(np.ascontiguousarray(a, dtype=np.float64))
    return tuple(args)


def _drop_mem_cap(hw_tuple):
    """op_kernel takes no memory capacity (feasibility is a per-point, not per-op, property)."""
    return hw_tuple[:9] + hw_tuple[10:]


_TILE_ARGS = (3, 4, 5, 2, 6, 7, 8)  # tile_m, tile_n, tile_k, units, rows, cols, arrays in hw_args order


def eff_vector(params) -> np.ndarray:
    """The kernels' efficiency vector: GEMM fraction per precision, attention fraction per precision,
    weight-upcast fraction per precision, then n, log10 FLOPs, multipliers of the size curve."""
    n = len(params.curve_log10_flops)
    return np.ascontiguousarray(np.concatenate([params.compute_fraction, params.attention_fraction,
                                                params.weight_upcast_fraction, [float(n)],
                                                params.curve_log10_flops, params.curve_multiplier]),
                                dtype=np.float64)


def precompute_quantisation(args: tuple, opf: np.ndarray, opi: np.ndarray, prm: np.ndarray,
                            eff: np.ndarray) -> np.ndarray:
    """When every point shares the tile/unit/array columns, fill `quant_eff` once, and `size_mult` too
    when they also share the peaks (the size curve is read at the padded FLOPs, flops / quantisation
    efficiency, or at their time at peak, see `_size_key`); what is left at -1 the kernel computes per
    point."""
    tiles = [args[k] for k in _TILE_ARGS]
    peak = args[0]
    if len(tiles[0]) == 0 or opf.shape[1] == 0 or any(np.ptp(t) != 0 for t in tiles):
        return opf
    opf = opf.copy()
    opf[F_QEFF], opf[F_SIZE] = quant_kernel(*tiles, peak, opf, opi, prm, eff)
    if np.any(np.ptp(peak, axis=0) != 0) and prm[P_CURVEREF] > 0.0:
        opf[F_SIZE] = -1.0  # the size key depends on each point's peak
    return opf


def run_points(hw, opf, opi, prm, params) -> dict[str, np.ndarray]:
    """Evaluate all design points of `hw` (HardwareArrays); returns OUT columns as arrays."""
    args = hw_args(hw)
    eff = eff_vector(params)
    opf = precompute_quantisation(args, opf, opi, prm, eff)
    out = _on_few_threads(len(args[0]), evaluate_kernel, *args, opf, opi, prm, eff)
    return {name: out[k] for k, name in enumerate(OUT)}


# Up to this many points a parallel kernel runs on one thread: waking the pool costs more than a few points
# (measured on a 2-core machine: 1 point 9 us on one thread, 76 us on two with the other core busy).
SERIAL_POINTS_MAX = 32


def _on_few_threads(n_points: int, kernel, *args):
    """Run `kernel(*args)` on one thread when `n_points` is small, else on Numba's pool."""
    if n_points > SERIAL_POINTS_MAX:
        return kernel(*args)
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(previous)


def run_ops(hw, opf, opi, prm, params, point: int = 0) -> dict[str, np.ndarray]:
    """Per-op columns for one design point of `hw`."""
    out = op_kernel(point, *_drop_mem_cap(hw_args(hw)), opf, opi, prm, eff_vector(params))
    return {name: out[k] for k, name in enumerate(OPOUT)}
