"""Plain-Python reference of the analytical kernel (`cosim.engines.analytical.evaluate_kernel`).

Written for readability, one design point and one op at a time, with no Numba: tests compare the
compiled kernel against it to 1e-9 relative on random design points. It reads the same packed columns
(`pack_ops`, `pack_params`, `hw_args`) so both see identical inputs; collective costs come from the
plain-Python originals of `cosim.engines.network` (`collective.py_func`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from cosim.engines import analytical as A
from cosim.engines.network import collective


def _tile(dim: float, lo: float, hi: float) -> float:
    t = 1.0
    while t < dim:
        t *= 2.0
    return min(max(t, lo), hi)


def poisson_tiles(mu: float, t: float) -> float:
    """E[ceil(N / t)] for N ~ Poisson(mu), as sum_j P(N > j t): the pmf from log-gamma up to the kernel's
    exact limit, the same continuity-corrected normal tail above it."""
    if mu <= 0:
        return 0.0
    sigma = math.sqrt(mu)
    if mu <= A.POISSON_EXACT_MAX:
        top = math.ceil(mu + A.POISSON_SPAN_SIGMAS * sigma + 10.0)
        pmf = [math.exp(x * math.log(mu) - mu - math.lgamma(x + 1.0)) for x in range(top + 1)]
        cdf = np.cumsum(pmf)
        return float(sum(max(0.0, 1.0 - cdf[math.ceil(j * t)]) for j in range(int(top // t) + 1)))
    first = max(0, math.floor((mu - A.POISSON_SPAN_SIGMAS * sigma) / t))  # P(N > j t) = 1 below the span
    last = math.floor((mu + A.POISSON_SPAN_SIGMAS * sigma) / t)
    return first + sum(0.5 * math.erfc((j * t + 0.5 - mu) / (sigma * math.sqrt(2.0))) for j in range(first, last + 1))


def grouped_row_tiles(m: float, min_m: float, max_m: float) -> tuple[float, float]:
    """(row tile, expected row tiles per touched group): the tile of an m-row GEMM, the rows Poisson around m
    on the touched groups (zero-truncated), as documented in analytical.py."""
    t = _tile(m, min_m, max_m)
    if m <= 1.0 + 1e-9:
        return t, 1.0
    mu = brentq(lambda x: x / -math.expm1(-x) - m, 1e-12, m + 1.0, xtol=1e-15, rtol=1e-15)
    return t, poisson_tiles(mu, t) / -math.expm1(-mu)


def least_padding_tile(m: float, lo: float, hi: float) -> float:
    """The power-of-two row tile in [lo, hi] that pads m rows least (the larger on a tie)."""
    candidates = []
    t = lo
    while t <= hi:
        candidates.append(t)
        t *= 2.0
    return min(candidates, key=lambda c: (math.ceil(m / c) * c, -c))


def mixed_rows(m: float, prompt: float, step: float, min_m: float, max_m: float,
               fixed_tile: float = 0.0) -> tuple[float, float]:
    """(expected padded rows, expected row tiles) over the steps a continuous-batching average step stands for:
    m - prompt decode rows plus k or k + 1 prompts of `step` rows, in the shares that make the mean prompt
    rows, each step padded to its own tile, as documented in analytical.py."""
    k = math.floor(prompt / step)
    f = prompt / step - k
    steps = [(1.0 - f, max(m - prompt, 0.0) + k * step), (f, max(m - prompt, 0.0) + (k + 1) * step)]
    rows = tiles = 0.0
    for share, x in steps:
        if share > 0 and x > 0:
            t = fixed_tile or least_padding_tile(x, min_m, max_m)
            rows += share * math.ceil(x / t) * t
            tiles += share * math.ceil(x / t)
    return rows, tiles


def gemm_efficiency(m, k, n, groups, tile_m, tile_n, tile_k, units, rows, cols, arrays, min_m, min_n,
                    split_k, grouped: bool = False, prompt: float = 0.0, prompt_step: float = 0.0) -> float:
    """Tile x wave quantisation, as documented in analytical.py (`grouped`: per-group Poisson rows;
    `prompt`, `prompt_step`: m averages steps with and without prompts)."""
    if m <= 0 or n <= 0:
        return 1.0
    mixed = prompt > 0 and prompt_step > 0
    if rows > 0 and cols > 0:
        tm = max(min_m, 1.0)
        kk = max(k, 1.0)
        padded = mixed_rows(m, prompt, prompt_step, min_m, min_m, tm)[0] if mixed else math.ceil(m / tm) * tm
        eff = (m * kk * n) / (padded * math.ceil(kk / rows) * rows * math.ceil(n / cols) * cols)
        tiles = math.ceil(kk / rows) * math.ceil(n / cols) * groups
        u = arrays
    else:
        if grouped:
            tm, cm = grouped_row_tiles(m, min_m, max(tile_m, min_m))
            padded = tm * cm
        elif mixed:
            padded, cm = mixed_rows(m, prompt, prompt_step, min_m, max(tile_m, min_m))
        else:
            tm = least_padding_tile(m, min_m, max(tile_m, min_m))
            cm = math.ceil(m / tm)
            padded = tm * cm
        tn = _tile(n, min_n, max(tile_n, min_n))
        eff = (m * n) / (padded * math.ceil(n / tn) * tn)
        tiles = cm * math.ceil(n / tn) * groups
        u = units
    if u <= 1:
        return eff
    work = tiles
    if split_k and tiles < u and k > 0 and tile_k > 0:
        s = min(math.floor(u / tiles), math.ceil(k / tile_k))
        if s > 1:
            work = tiles * s
    return eff * work / (math.ceil(work / u) * u)


def widens_weights(hw: dict, op: dict) -> bool:
    """A GEMM's weights are stored narrower than it multiplies in and no matrix unit takes the pair: any
    sub-16-bit weight against 16-bit or wider activations, or a narrow pair where the chip has no faster rate
    of its own for the weights' format."""
    bits = A.PRECISION_BITS
    w, c = op["weight_precision"], op["precision"]
    if bits[w] >= bits[c]:
        return False
    return bits[c] >= 16.0 or hw["peak"][w] <= hw["peak"][c]


def matrix_rate(hw: dict, op: dict, prm: dict, params) -> tuple[float, float]:
    """(FLOP/s of a GEMM/attention op's useful work before tile and wave quantisation, the quantisation
    efficiency), as documented in analytical.py."""
    eff = 1.0
    if op["kind"] == A.KIND_ATTN:
        q = op["q_len"]
        if op["kv_heads"] > 0 and op["heads"] > op["kv_heads"]:
            q *= op["heads"] / op["kv_heads"]
        if q > 0:
            tm = max(prm["min_tile_m"], 1.0) if hw["systolic_rows"] > 0 else _tile(
                q, prm["min_tile_m"], max(hw["tile_m"], prm["min_tile_m"]))
            eff = q / (math.ceil(q / tm) * tm)
    else:
        eff = gemm_efficiency(op["m"], op["k"], op["n"], op["groups"], hw["tile_m"], hw["tile_n"],
                              hw["tile_k"], hw["compute_units"], hw["systolic_rows"],
                              hw["systolic_cols"], hw["_systolic_arrays"], prm["min_tile_m"],
                              prm["min_tile_n"], prm["split_k"] > 0, op["kind"] == A.KIND_GROUPED,
                              op["m_prompt"], op["m_prompt_step"])
    # the size curve is read at the padded work, or at its time at peak in reference-rate FLOPs
    key = op["flops"] / eff
    if params.curve_reference_flops_per_s and hw["peak"][op["precision"]] > 0:
        key *= params.curve_reference_flops_per_s / hw["peak"][op["precision"]]
    size = float(np.interp(math.log10(key), params.curve_log10_flops, params.curve_multiplier))
    fractions = params.attention_fraction if op["kind"] == A.KIND_ATTN else params.compute_fraction
    frac = fractions[op["precision"]] * (params.grouped_gemm_scale if op["kind"] == A.KIND_GROUPED else 1.0)
    return hw["peak"][op["precision"]] * frac * size, eff


def widening_s(op: dict, unpadded_rate: float, params) -> float:
    """Seconds a GEMM spends widening its weights: (1 / f - 1) x its multiply-adds' own time."""
    if unpadded_rate <= 0:
        return 0.0
    return op["flops"] / unpadded_rate * (1.0 / params.weight_upcast_fraction[op["precision"]] - 1.0)


def op_cost(hw: dict, op: dict, prm: dict, params) -> dict:
    """One op on one point: compute/memory/network seconds, launch, bound code and bytes by level."""
    if op["kind"] == A.KIND_COMM:
        linkf = prm["link_fraction"]
        if prm["sp_link_fraction"] > 0 and op["stage"] == A.STAGE_DIT and op["comm_kind"] in (A.COMM_ALL_TO_ALL,
                                                                                             A.COMM_P2P):
            linkf = prm["sp_link_fraction"]
        t, bu, bo = collective.py_func(
            op["comm_kind"], op["comm_bytes"], op["comm_group"],
            hw["scale_up_bandwidth_bytes_per_s"] * linkf,
            hw["scale_up_latency_s"], hw["scale_up_domain"], hw["scale_up_topology"],
            hw["scale_up_in_switch_reduction"], hw["torus_x"], hw["torus_y"], hw["torus_z"],
            hw["scale_out_bandwidth_bytes_per_s"] * linkf, hw["scale_out_latency_s"])
        return {"tc": 0.0, "tm": 0.0, "tn": t, "launch": 0.0, "bound": 2, "hbm": 0.0, "chip": 0.0, "up": bu, "out": bo}
    tc = 0.0
    widens = op["kind"] in (A.KIND_GEMM, A.KIND_GROUPED) and op["flops"] > 0 and widens_weights(hw, op)
    if op["compute_override_s"] >= 0:
        tc = op["compute_override_s"]
        if widens:
            tc += widening_s(op, matrix_rate(hw, op, prm, params)[0], params)
    elif op["flops"] > 0:
        if op["kind"] in (A.KIND_GEMM, A.KIND_GROUPED, A.KIND_ATTN):
            unpadded, eff = matrix_rate(hw, op, prm, params)
            rate = unpadded * eff
            tc = op["flops"] / rate if rate > 0 else math.inf
            if widens and rate > 0:
                tc += widening_s(op, unpadded, params)
        elif hw["vector_flops_per_s"] > 0:
            tc = op["flops"] / hw["vector_flops_per_s"]
        elif hw["peak"][op["precision"]] > 0:  # no vector rate in the spec: the matrix datapath's rate
            tc = op["flops"] / (hw["peak"][op["precision"]] * params.compute_fraction[op["precision"]])
    cap = hw["onchip_capacity_bytes"]
    weights_on_chip = cap > 0 and prm["weight_footprint_bytes"] <= cap * prm["onchip_weight_fraction"]
    act = op["bytes_act_in"] + op["bytes_act_out"]
    act_on_chip = act <= cap * prm["onchip_activation_fraction"]
    hbm = op["bytes_kv_read"] + op["bytes_kv_write"] + (0.0 if weights_on_chip else op["bytes_weight"]) + (
        0.0 if act_on_chip else act)
    chip = (op["bytes_weight"] if weights_on_chip else 0.0) + (act if act_on_chip else 0.0)
    tmem = 0.0
    bw = hw["mem_bandwidth_bytes_per_s"] * prm["memory_fraction"] * (
        prm["grouped_gemm_memory_scale"] if op["kind"] == A.KIND_GROUPED else 1.0)
    if (prm["serial_output_store"] > 0 and op["kind"] in (A.KIND_GEMM, A.KIND_GROUPED) and tc > 0
            and op["compute_override_s"] < 0):
        # the epilogue stores the output after the main loop (analytical._store_s)
        if act_on_chip:
            obw = hw["onchip_bandwidth_bytes_per_s"]
            tc += op["bytes_act_out"] / obw if obw > 0 else 0.0
        else:
            tc += op["bytes_act_out"] / bw if bw > 0 else math.inf
    if hbm > 0:
        tmem = hbm / bw if bw > 0 else math.inf
    if chip > 0 and hw["onchip_bandwidth_bytes_per_s"] > 0:
        tmem = max(tmem, chip / hw["onchip_bandwidth_bytes_per_s"])
    launch = 0.0 if op["fused"] else prm["launch_overhead_s"]
    body = max(tc, tmem)
    bound = 3 if launch > body else (0 if tc >= tmem else 1)
    return {"tc": tc, "tm": tmem, "tn": 0.0, "launch": launch, "bound": bound, "hbm": hbm, "chip": chip,
            "up": 0.0, "out": 0.0}


def evaluate_point(hw: dict, ops: list[dict], prm: dict, params) -> dict:
    """Step time and counters of one design point (same keys as analytical.OUT)."""
    comp = mem = ovh = net = net_dp = hbm = chip = up = out = up_dp = out_dp = 0.0
    for op in ops:
        c = op_cost(hw, op, prm, params)
        r = op["repeat"]
        rs = r * op["work_share"]  # energy counters count the chips' mean work
        if c["bound"] == 2:
            if op["stage"] == A.STAGE_OPTIMIZER:  # once per step
                net_dp += c["tn"] * r
                up_dp += c["up"] * rs
                out_dp += c["out"] * rs
            else:  # every pass (x comm_mult below)
                net += c["tn"] * r
                up += c["up"] * rs
                out += c["out"] * rs
            continue
        body = max(c["tc"], c["tm"])
        if c["tc"] >= c["tm"] and c["bound"] in (0, 3):
            comp += body * r
        else:
            mem += body * r
        ovh += c["launch"] * r
        hbm += c["hbm"] * rs
        chip += c["chip"] * rs
    f = prm["fwd_mult"]
    comp, mem, hbm, chip = comp * f, mem * f, hbm * f, chip * f
    ovh = ovh * f + prm["step_overhead_s"]
    net = net * prm["comm_mult"]
    up = up * prm["comm_mult"] + up_dp
    out = out * prm["comm_mult"] + out_dp
    if prm["extra_memory_bytes"] > 0:
        bw = hw["mem_bandwidth_bytes_per_s"] * prm["memory_fraction"]
        mem += prm["extra_memory_bytes"] / bw if bw > 0 else math.inf
        hbm += prm["extra_memory_bytes"]
    busy = comp + mem
    hide1 = min(prm["comm_overlap_fraction"] * net, busy)
    hide2 = min(prm["dp_overlap_fraction"] * net_dp, busy - hide1)
    exposed = net + net_dp - hide1 - hide2
    step = busy + ovh + exposed
    shares = [comp, mem, exposed, ovh]
    code = max(range(4), key=lambda k: (shares[k], -k))
    if prm["footprint_bytes"] > hw["mem_capacity_bytes"] * (1 - prm["memory_reserve_fraction"]):
        reason = 1
    elif not math.isfinite(step):
        reason = 2
    else:
        reason = 0
    return {"step_time_s": step, "compute_s": comp, "memory_s": mem, "network_s": exposed, "overhead_s": ovh,
            "bottleneck": code, "bytes_main_memory": hbm, "bytes_onchip": chip, "comm_bytes_scale_up": up,
            "comm_bytes_scale_out": out, "feasible": 1.0 if reason == 0 else 0.0, "reason": reason,
            "network_total_s": net + net_dp}


def evaluate(hw_arrays, opf: np.ndarray, opi: np.ndarray, prm: np.ndarray, params) -> dict[str, np.ndarray]:
    """All points of `hw_arrays` through the reference; the same columns as `analytical.run_points`."""
    cols = A.hw_args(hw_arrays)
    ops = []
    for j in range(opf.shape[1]):
        op = {name: float(opf[k, j]) for k, name in enumerate(A.OPF)}
        op.update({name: int(opi[k, j]) for k, name in enumerate(A.OPI)})
        ops.append(op)
    p = {name: float(prm[k]) for k, name in enumerate(A.PRM)}
    rows = []
    for i in range(len(hw_arrays)):
        hw = {name: (cols[k][i] if name != "peak_flops_per_s" else None) for k, name in enumerate(A.HW_COLUMNS)}
        hw["peak"] = cols[0][i]
        rows.append(evaluate_point(hw, ops, p, params))
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in A.OUT}
