"""Collectives as alpha-beta costs over a switch, a 1-3D torus, and a scale-up/scale-out hierarchy.

Conventions: `nbytes` is the payload each chip contributes (`OpTable.comm_bytes`, as in
cosim/graph/rows.py): the vector being all-reduced, the input buffer of a reduce-scatter, the bytes
of an all-to-all that leave the chip (the send buffer S times (p-1)/p; `collective` converts it back
to S so the closed forms below apply unchanged), the message of a point-to-point transfer, and the shard each chip contributes
to an all-gather — whose gathered buffer is then S = p x nbytes. The closed forms below use S.
Bandwidths are per chip per direction (bytes/s); alpha is the per-message latency (s). A fully connected fabric
(AMD's Infinity Fabric, Intel Gaudi's RoCE ports) splits a chip's bandwidth into equal links to each of its d - 1
peers, so a group of p < d chips reaches only its own p - 1 peers: (p - 1)/(d - 1) of the chip's bandwidth.

Closed forms (p chips, bandwidth B, latency a):
  ring all-reduce   2(p-1)/p * S/B + 2(p-1) a
  tree all-reduce   2 S/B + 2 log2(p) a          (double binary tree: full bandwidth, log latency)
  direct all-reduce 2(p-1)/p * S/B + 2 a         (switch or full mesh: reduce-scatter then all-gather with
                                                 every peer at once, one synchronisation per phase: the
                                                 one-/two-shot kernels inference engines run)
  in-switch (NVLS)  S/(B x 275/370) + 2 a + t0   (send once, switch reduces and multicasts; measured
                                                 NVLS algbw 275 GB/s vs 370 GB/s effective NVLink on H100;
                                                 t0 = NVLS_STARTUP_S, its pipeline start-up)
  all-gather / reduce-scatter   (p-1)/p * S/B + a on a switch (every peer at once, one synchronisation);
                                (p-1)/p * S/B + (p-1) a as a ring (torus dimensions)
  all-to-all (switch)           (p-1)/p * S/B + a
  point-to-point                S/B + a
NCCL-like selection: all-reduce takes the fastest available algorithm. On a torus the collective runs
dimension by dimension (bidirectional rings, one dimension's links at a time; dims with size > 1 share
the chip's bandwidth equally). A group larger than the scale-up domain is hierarchical: reduce-scatter
inside the domain, all-reduce of S/d across domains over the scale-out NICs, all-gather inside.

Every function is plain Python on floats, compiled lazily by Numba (`@njit(cache=True)`, nothing at
import); `fn.py_func` is the plain-Python original that the reference engine calls. Each returns (seconds, bytes sent on scale-up, bytes sent
on scale-out) per chip; a group that needs a fabric the chip lacks costs +inf.
"""

from __future__ import annotations

import math

from numba import njit

ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, ALL_TO_ALL, P2P = 1, 2, 3, 4, 5
#: Start-up of an NVLink SHARP (NVLS) all-reduce beyond its bandwidth term and two synchronisations:
#: 8x H100, bf16 (ai-dynamo/aiconfigurator campaign_checkpoints/h100_sxm/custom_allreduce_perf.txt, vLLM
#: 0.20.0 under CUDA graphs, NCCL beyond its custom kernel's size): 67 MB in 322 us, 134 MB in 575 us,
#: 268 MB in 1,089 us, i.e. 53, 45 and 36 us more than S / 275 GB/s and two 4 us synchronisations (the
#: H100 spec's latency); taken as 50 us. Below ~40 MB
#: the direct (two-shot) all-reduce is faster, as those measurements show (8.4 MB in 50.7 us).
NVLS_STARTUP_S = 50e-6
TOPO_SWITCH, TOPO_TORUS, TOPO_MESH, TOPO_RING, TOPO_FULL, TOPO_P2P = 0, 1, 2, 3, 4, 5
INF = math.inf


@njit(cache=True)
def ring_all_reduce(nbytes: float, p: float, bw: float, alpha: float) -> float:
    if p <= 1.0:
        return 0.0
    if bw <= 0.0:
        return INF
    return 2.0 * (p - 1.0) / p * nbytes / bw + 2.0 * (p - 1.0) * alpha


@njit(cache=True)
def tree_all_reduce(nbytes: float, p: float, bw: float, alpha: float) -> float:
    if p <= 1.0:
        return 0.0
    if bw <= 0.0:
        return INF
    return 2.0 * nbytes / bw + 2.0 * float(math.ceil(math.log2(p))) * alpha


@njit(cache=True)
def direct_all_reduce(nbytes: float, p: float, bw: float, alpha: float) -> float:
    """Reduce-scatter then all-gather through a full-bandwidth switch, each chip exchanging its shards with
    all peers at once: the ring's bandwidth term with one synchronisation per phase."""
    if p <= 1.0:
        return 0.0
    if bw <= 0.0:
        return INF
    return 2.0 * (p - 1.0) / p * nbytes / bw + 2.0 * alpha


@njit(cache=True)
def in_switch_all_reduce(nbytes: float, p: float, bw: float, alpha: float) -> float:
    if p <= 1.0:
        return 0.0
    if bw <= 0.0:
        return INF
    # NVLink SHARP on 8x H100 reaches algbw ~275 GB/s where ring collectives see an effective 370 GB/s
    # per direction (NCCL maintainer, NVIDIA/nccl-tests issue #212, 2024-05-06): the switch reduction
    # moves S at 275/370 of the effective link rate `bw`
    return nbytes / (bw * (275.0 / 370.0)) + 2.0 * alpha + NVLS_STARTUP_S


@njit(cache=True)
def ring_gather(nbytes: float, p: float, bw: float, alpha: float) -> float:
    """All-gather or reduce-scatter of an S-byte buffer (also all-to-all on a full-bandwidth switch)."""
    if p <= 1.0:
        return 0.0
    if bw <= 0.0:
        return INF
    return (p - 1.0) / p * nbytes / bw + (p - 1.0) * alpha


@njit(cache=True)
def _switch(kind: int, nbytes: float, p: float, bw: float, alpha: float, in_switch: float):
    """(time, bytes sent per chip) on a full-bandwidth switch (or fully connected fabric)."""
    if p <= 1.0:
        return 0.0, 0.0
    if kind == ALL_REDUCE:
        t = min(direct_all_reduce(nbytes, p, bw, alpha), tree_all_reduce(nbytes, p, bw, alpha))
        sent = 2.0 * (p - 1.0) / p * nbytes
        if in_switch > 0.0:
            t2 = in_switch_all_reduce(nbytes, p, bw, alpha)
            if t2 < t:
                t = t2
                sent = nbytes
        return t, sent
    if kind == P2P:
        return (nbytes / bw + alpha if bw > 0.0 else INF), nbytes
    if bw <= 0.0:
        return INF, 0.0
    # all-gather, reduce-scatter, all-to-all: every chip exchanges its shards with all peers at once
    return (p - 1.0) / p * nbytes / bw + alpha, (p - 1.0) / p * nbytes


@njit(cache=True)
def _ring_hops(q: float) -> float:
    """Mean hop count from one node to the others of a bidirectional ring of q nodes (exact)."""
    qi = int(q)
    if qi <= 1:
        return 0.0
    return (qi * qi - (qi % 2)) / (4.0 * qi) * qi / (qi - 1.0)


@njit(cache=True)
def _torus(kind: int, nbytes: float, p: float, bw: float, alpha: float, tx: float, ty: float, tz: float,
           mesh: bool):
    """(time, bytes sent) for a group of p chips laid out x-first on a tx x ty x tz torus."""
    if p <= 1.0:
        return 0.0, 0.0
    if bw <= 0.0:
        return INF, 0.0
    dims = (max(tx, 1.0), max(ty, 1.0), max(tz, 1.0))
    n_active = 0.0
    for d in dims:
        if d > 1.0:
            n_active += 1.0
    if n_active == 0.0:
        n_active = 1.0
    bw_dim = bw / n_active
    if mesh:
        bw_dim = bw_dim * 0.5  # no wrap-around link: a line sustains half a ring's bandwidth
    # factor the group onto the dimensions, x first
    q0 = min(p, dims[0])
    rem = float(math.ceil(p / q0))
    q1 = min(rem, dims[1])
    rem = float(math.ceil(rem / q1))
    q2 = min(rem, dims[2])
    qs = (q0, q1, q2)
    t = 0.0
    sent = 0.0
    if kind == P2P:
        return nbytes / bw_dim + alpha, nbytes
    if kind == ALL_TO_ALL:
        for q in qs:
            if q > 1.0:
                t += nbytes * (q - 1.0) / q * _ring_hops(q) / bw_dim + (q - 1.0) * alpha
                sent += nbytes * (q - 1.0) / q
        return t, sent
    size = nbytes
    for q in qs:  # reduce-scatter (or gather) phase, dimension by dimension; the buffer shrinks by q
        if q > 1.0:
            t += (q - 1.0) / q * size / bw_dim + (q - 1.0) * alpha
            sent += (q - 1.0) / q * size
            size = size / q
    if kind == ALL_REDUCE:
        t = 2.0 * t
        sent = 2.0 * sent
    return t, sent


@njit(cache=True)
def collective(kind: int, nbytes: float, p: float,
               up_bw: float, up_alpha: float, domain: float, topology: float, in_switch: float,
               tx: float, ty: float, tz: float, out_bw: float, out_alpha: float):
    """(seconds, scale-up bytes sent, scale-out bytes sent) per chip for one collective.

    Groups within the scale-up domain use the scale-up fabric (switch or torus); larger groups are
    hierarchical over the scale-out NICs (one NIC bandwidth `out_bw` per chip).
    """
    if p <= 1.0 or nbytes <= 0.0:
        return 0.0, 0.0, 0.0
    if kind == ALL_GATHER:
        nbytes = nbytes * p  # the gathered buffer
    elif kind == ALL_TO_ALL:
        nbytes = nbytes * p / (p - 1.0)  # OpTable counts the bytes leaving the chip; S is the send buffer
    topo = int(topology)
    d = domain if up_bw > 0.0 else 1.0
    if topo in (TOPO_TORUS, TOPO_MESH, TOPO_RING):
        if topo == TOPO_RING:
            tx, ty, tz = d, 1.0, 1.0
        d = max(tx, 1.0) * max(ty, 1.0) * max(tz, 1.0) if up_bw > 0.0 else 1.0
    if p <= d:
        if topo == TOPO_FULL and p < d:
            up_bw = up_bw * (p - 1.0) / (d - 1.0)  # only the links to the group's own peers
        if topo in (TOPO_TORUS, TOPO_MESH, TOPO_RING):
            t, s = _torus(kind, nbytes, p, up_bw, up_alpha, tx, ty, tz, topo == TOPO_MESH)
        else:
            t, s = _switch(kind, nbytes, p, up_bw, up_alpha, in_switch if topo == TOPO_SWITCH else 0.0)
        return t, s, 0.0
    # hierarchical: inner groups of d chips on the scale-up fabric, outer groups over the NICs
    if out_bw <= 0.0:
        return INF, 0.0, 0.0
    outer = float(math.ceil(p / d))
    if kind == P2P:
        return nbytes / out_bw + out_alpha, 0.0, nbytes
    ring_like = topo in (TOPO_TORUS, TOPO_MESH, TOPO_RING)
    if kind == ALL_TO_ALL:
        syncs = d - 1.0 if ring_like else 1.0  # a switch reaches every peer at once
        t_in = (d - 1.0) / p * nbytes / up_bw + syncs * up_alpha if d > 1.0 else 0.0
        t_out = (p - d) / p * nbytes / out_bw + (outer - 1.0) * out_alpha
        return max(t_in, t_out), (d - 1.0) / p * nbytes, (p - d) / p * nbytes
    if d > 1.0:
        if ring_like:
            t_in, s_in = _torus(REDUCE_SCATTER, nbytes, d, up_bw, up_alpha, tx, ty, tz, topo == TOPO_MESH)
        else:
            t_in, s_in = _switch(REDUCE_SCATTER, nbytes, d, up_bw, up_alpha, 0.0)
    else:
        t_in, s_in = 0.0, 0.0
    shard = nbytes / d
    if kind == ALL_REDUCE:
        t_out = min(ring_all_reduce(shard, outer, out_bw, out_alpha), tree_all_reduce(shard, outer, out_bw, out_alpha))
        return 2.0 * t_in + t_out, 2.0 * s_in, 2.0 * (outer - 1.0) / outer * shard
    # all-gather / reduce-scatter: one inner phase and one outer phase on the shard
    t_out = ring_gather(shard, outer, out_bw, out_alpha)
    return t_in + t_out, s_in, (outer - 1.0) / outer * shard
