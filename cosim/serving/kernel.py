"""The serving event loop: replicas, a router, a scheduler and a paged KV cache, one iteration at a time.

One Numba kernel (`simulate_kernel`) runs the whole simulation on flat arrays; its plain-Python
twin (`simulate_reference`, the same source run by the interpreter) is what the tests compare it
with. Time advances from one scheduler iteration to the next on the replica whose clock is
earliest; arrivals are routed when the global clock reaches them.

Conventions (per request, tokens):
* `pf_rem`: prompt tokens still to prefill; `ctx`: tokens whose KV is cached; `gen`: tokens
  generated so far. Finishing a prefill produces a token (gen += 1): the first token, or after a
  recompute preemption the next one. A decode iteration feeds the last token (ctx += 1) and
  produces one (gen += 1); it attends to ctx + 1 keys.
* Paged KV: a request holds ceil(tokens / block_size) blocks; a replica owns `total_blocks`.

Schedulers (`sched`):
* 0 static: a batch (<= max_seqs, prompts <= max_tokens, KV reserved for prompt + output) is
  prefilled together, then decoded padded until its longest member is done; members stream
  their tokens but free their slot only when the whole batch ends.
* 1 continuous (vLLM-like): an iteration is either a prefill of newly admitted whole prompts
  (<= max_tokens, <= max_seqs running) or a decode of every running sequence; prefill first.
* 2 chunked prefill (Sarathi-like): each iteration carries every decode plus prefill chunks up
  to a budget of max_tokens tokens.
Preemption when a decode finds no free block: the most recently admitted running request is
evicted (recompute: its KV is dropped and it is re-prefilled; swap: its KV is moved to host memory
and moved back later, each way costing `swap_s_per_token` per cached token).
`prefill_only` (disaggregated prefill pool) ends a request when its first token is produced.

Closed loop (`concurrency` N > 0; 0: open loop, arrivals as given): N clients each send a request, wait for
its last token and send the next at once. The clients' first sends are the arrivals given for requests
0..N-1 (all 0, or staggered); every completion adds one more send time; requests take the send times in
index order, each the earliest not yet used. Completions on
different replicas are processed out of time order, so a release is routed only once its time is at or
before every busy replica's clock (no later-processed completion can then be earlier), which keeps arrivals
routed in non-decreasing time order. The arrival times used are returned.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cosim.serving.steptime import combine, interp_extrap

# request status codes
NOT_ARRIVED, WAITING, RUNNING, DONE, SWAPPED = 0, 1, 2, 3, 4
ROUTER_CODES = {"round_robin": 0, "least_work": 1}
SCHED_CODES = {"static": 0, "continuous": 1, "chunked": 2}
PREEMPT_CODES = {"recompute": 0, "swap": 1}
# timeline columns
TL_REPLICA, TL_START, TL_END, TL_SEQS, TL_TOKENS, TL_PREFILL_TOKENS, TL_USED_BLOCKS, TL_WAITING = range(8)
TL_COLUMNS = 8



@njit(cache=True)
def _grow(tl: np.ndarray) -> np.ndarray:
    out = np.zeros((tl.shape[0] * 2, tl.shape[1]), dtype=np.float64)
    out[: tl.shape[0]] = tl
    return out


@njit(cache=True)
def _blocks_for(tokens: int, block: int) -> int:
    return (tokens + block - 1) // block


@njit(cache=True)
def _push_front(i, r, head, tail, nxt, nwait):
    nxt[i] = head[r]
    head[r] = i
    if tail[r] < 0:
        tail[r] = i
    nwait[r] += 1


@njit(cache=True)
def _pop_front(r, head, tail, nxt, nwait):
    h = head[r]
    head[r] = nxt[h]
    if head[r] < 0:
        tail[r] = -1
    nxt[h] = -1
    nwait[r] -= 1
    return h


@njit(cache=True)
def _admit_head(r, c, need, t0, head, tail, nxt, nwait, status, held, used, sched_t, run, nrun, q):
    """Move the replica's first waiting request into the running batch with `c` prompt tokens this
    iteration and `need` more KV blocks (the caller has checked they are free)."""
    h = _pop_front(r, head, tail, nxt, nwait)
    status[h] = RUNNING
    held[h] += need
    used[r] += need
    if np.isnan(sched_t[h]):
        sched_t[h] = t0
    j = nrun[r]
    run[r, j] = h
    q[j] = c
    nrun[r] += 1
    return h


@njit(cache=True)
def _heap_push(heap, m, x):
    """Insert x into the binary min-heap heap[:m]; returns the new size."""
    j = m
    heap[j] = x
    while j > 0:
        p = (j - 1) // 2
        if heap[p] <= heap[j]:
            break
        heap[p], heap[j] = heap[j], heap[p]
        j = p
    return m + 1


@njit(cache=True)
def _heap_pop(heap, m):
    """Remove and return the least of the binary min-heap heap[:m] (m > 0); the size becomes m - 1."""
    top = heap[0]
    m -= 1
    heap[0] = heap[m]
    j = 0
    while True:
        a = 2 * j + 1
        if a >= m:
            break
        if a + 1 < m and heap[a + 1] < heap[a]:
            a += 1
        if heap[j] <= heap[a]:
            break
        heap[j], heap[a] = heap[a], heap[j]
        j = a
    return top


@njit(cache=True)
def kv_read_tokens(context: float, window: float, window_share: float) -> float:
    """Cached tokens one decoding sequence at `context` reads, counted as full-attention layers' tokens: a
    `window_share` of the attention layers read at most `window` of them (sliding windows; 0: none)."""
    if window <= 0.0 or context <= window:
        return context
    return (1.0 - window_share) * context + window_share * window


@njit(cache=True)
def _simulate(arrival, prompt, ctx0, gen0, out, n_replicas, router, sched, prefill_only, max_seqs,
              max_tokens, block, total_blocks, preempt_mode, swap_s_per_token,
              tok_grid, lin_s, kv_grid, dec_s, pair_grid, pre_s, prompt_floor_s, graph_sizes, per_seq_s,
              kv_window, kv_window_share, concurrency):
    n = arrival.shape[0]
    R = n_replicas
    # ---- arrivals: as given (open loop), or released by completions (closed loop, see the module doc)
    arrival = arrival.copy()
    closed = concurrency > 0
    heap = np.zeros(n if closed else 0, dtype=np.float64)  # send times not yet given to a request
    nheap = 0
    nrel = concurrency if concurrency < n else n  # requests released so far
    for k in range(nrel if closed else 0):  # the clients' first sends: at t = 0, or staggered
        nheap = _heap_push(heap, nheap, arrival[k])
    # ---- per-request state
    rep = np.full(n, -1, dtype=np.int64)
    status = np.zeros(n, dtype=np.int64)
    pf_rem = prompt.copy()
    ctx = ctx0.copy()
    gen = gen0.copy()
    held = np.zeros(n, dtype=np.int64)
    first_t = np.full(n, np.nan)
    finish_t = np.full(n, np.nan)
    sched_t = np.full(n, np.nan)
    npreempt = np.zeros(n, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    # ---- per-replica state
    clock = np.zeros(R, dtype=np.float64)
    busy_s = np.zeros(R, dtype=np.float64)
    used = np.zeros(R, dtype=np.int64)
    head = np.full(R, -1, dtype=np.int64)
    tail = np.full(R, -1, dtype=np.int64)
    nwait = np.zeros(R, dtype=np.int64)
    run = np.full((R, max_seqs), -1, dtype=np.int64)
    nrun = np.zeros(R, dtype=np.int64)
    work = np.zeros(R, dtype=np.float64)
    q = np.zeros(max_seqs, dtype=np.int64)
    tl = np.zeros((1024, TL_COLUMNS), dtype=np.float64)
    nsteps = 0
    ia = 0
    done = 0
    rr = 0
    while done < n:
        # ---- the replica with work whose clock is earliest
        rmin = -1
        tmin = np.inf
        for r in range(R):
            if (nrun[r] > 0 or nwait[r] > 0) and clock[r] < tmin:
                tmin = clock[r]
                rmin = r
        # ---- route arrivals up to that time
        route = False
        if ia < n:
            if closed:
                if nheap > 0 and (rmin < 0 or heap[0] <= tmin):
                    arrival[ia] = _heap_pop(heap, nheap)
                    nheap -= 1
                    route = True
            elif rmin < 0 or arrival[ia] <= tmin:
                route = True
        if route:
            i = ia
            ia += 1
            if router == 0:
                r = rr % R
                rr += 1
            else:
                r = 0
                best = np.inf
                for k in range(R):
                    if work[k] < best:
                        best = work[k]
                        r = k
            rep[i] = r
            if nrun[r] == 0 and nwait[r] == 0 and clock[r] < arrival[i]:
                clock[r] = arrival[i]
            status[i] = WAITING
            if tail[r] < 0:
                head[r] = i
            else:
                nxt[tail[r]] = i
            tail[r] = i
            nxt[i] = -1
            nwait[r] += 1
            work[r] += pf_rem[i] + (out[i] - gen[i])
            continue
        # ---- one iteration on replica r
        if rmin < 0:
            raise ValueError("serving kernel: no replica has work and no request is left to arrive")
        r = rmin
        t0 = clock[r]
        free = total_blocks - used[r]
        ntok = 0
        npf = 0
        kv = 0.0
        pairs = 0.0
        extra = 0.0
        for j in range(max_seqs):
            q[j] = 0
        if sched == 0:
            if nrun[r] == 0:
                # static: form a batch, reserving KV for prompt + output
                while head[r] >= 0 and nrun[r] < max_seqs:
                    h = head[r]
                    need = _blocks_for(ctx[h] + pf_rem[h] + (out[h] - gen[h]), block)
                    if nrun[r] > 0 and npf + pf_rem[h] > max_tokens:
                        break
                    if need > free:
                        break
                    _pop_front(r, head, tail, nxt, nwait)
                    status[h] = RUNNING
                    held[h] = need
                    used[r] += need
                    free -= need
                    sched_t[h] = t0
                    j = nrun[r]
                    run[r, j] = h
                    q[j] = pf_rem[h]
                    npf += pf_rem[h]
                    pairs += ctx[h] * pf_rem[h] + pf_rem[h] * (pf_rem[h] + 1) // 2
                    nrun[r] += 1
                ntok = npf
            else:
                # static: padded decode of the whole batch
                for j in range(nrun[r]):
                    h = run[r, j]
                    q[j] = 1
                    kv += kv_read_tokens(ctx[h] + 1.0, kv_window, kv_window_share)
                ntok = nrun[r]
        else:
            budget = max_tokens
            # requests ready to decode (swapped out, or pre-filled elsewhere) join first
            while head[r] >= 0 and pf_rem[head[r]] == 0 and nrun[r] < max_seqs:
                h = head[r]
                need = _blocks_for(ctx[h] + 1, block)
                if need > free:
                    break
                _pop_front(r, head, tail, nxt, nwait)
                if status[h] == SWAPPED:
                    extra += swap_s_per_token * ctx[h]
                status[h] = RUNNING
                held[h] = _blocks_for(ctx[h], block)
                used[r] += held[h]
                free -= held[h]
                if np.isnan(sched_t[h]):
                    sched_t[h] = t0
                run[r, nrun[r]] = h
                nrun[r] += 1
            do_prefill = False
            if sched == 1 and head[r] >= 0 and pf_rem[head[r]] > 0 and nrun[r] < max_seqs:
                h = head[r]
                if _blocks_for(ctx[h] + pf_rem[h], block) - held[h] <= free:
                    do_prefill = True
            if do_prefill:
                # continuous: an iteration that prefills whole newly admitted prompts
                while head[r] >= 0 and pf_rem[head[r]] > 0 and nrun[r] < max_seqs:
                    h = head[r]
                    if npf > 0 and npf + pf_rem[h] > budget:
                        break
                    need = _blocks_for(ctx[h] + pf_rem[h], block) - held[h]
                    if need > free:
                        break
                    _admit_head(r, pf_rem[h], need, t0, head, tail, nxt, nwait, status, held, used, sched_t,
                                run, nrun, q)
                    free -= need
                    npf += pf_rem[h]
                    pairs += ctx[h] * pf_rem[h] + pf_rem[h] * (pf_rem[h] + 1) // 2
                ntok = npf
            else:
                # decodes first; evict the most recently admitted request while blocks are short
                nb = nrun[r]
                need_dec = 0
                for j in range(nb):
                    h = run[r, j]
                    if pf_rem[h] == 0:
                        need_dec += _blocks_for(ctx[h] + 1, block) - held[h]
                while need_dec > free and nb > 1:
                    v = run[r, nb - 1]
                    nb -= 1
                    if pf_rem[v] == 0:
                        need_dec -= _blocks_for(ctx[v] + 1, block) - held[v]
                    used[r] -= held[v]
                    free += held[v]
                    held[v] = 0
                    npreempt[v] += 1
                    if preempt_mode == 1 and pf_rem[v] == 0:
                        extra += swap_s_per_token * ctx[v]
                        status[v] = SWAPPED
                    else:
                        # recompute: re-prefill every token it holds (plus the last generated one)
                        back = ctx[v] + (1 if pf_rem[v] == 0 else 0)
                        work[r] += back
                        pf_rem[v] += back
                        ctx[v] = 0
                        status[v] = WAITING
                    _push_front(v, r, head, tail, nxt, nwait)
                nrun[r] = nb
                for j in range(nb):
                    h = run[r, j]
                    if pf_rem[h] == 0:
                        q[j] = 1
                        kv += kv_read_tokens(ctx[h] + 1.0, kv_window, kv_window_share)
                        ntok += 1
                        budget -= 1
                        nd = _blocks_for(ctx[h] + 1, block) - held[h]
                        held[h] += nd
                        used[r] += nd
                        free -= nd
                if sched == 2:
                    # chunked prefill: continue partial prefills, then admit new prompts, within budget
                    for j in range(nb):
                        h = run[r, j]
                        if pf_rem[h] > 0 and budget > 0:
                            c = pf_rem[h] if pf_rem[h] < budget else budget
                            nd = _blocks_for(ctx[h] + c, block) - held[h]
                            if nd > free:
                                continue
                            held[h] += nd
                            used[r] += nd
                            free -= nd
                            q[j] = c
                            budget -= c
                            npf += c
                            pairs += ctx[h] * c + c * (c + 1) // 2
                    while budget > 0 and head[r] >= 0 and pf_rem[head[r]] > 0 and nrun[r] < max_seqs:
                        h = head[r]
                        c = pf_rem[h] if pf_rem[h] < budget else budget
                        nd = _blocks_for(ctx[h] + c, block) - held[h]
                        if nd > free:
                            break
                        _admit_head(r, c, nd, t0, head, tail, nxt, nwait, status, held, used, sched_t, run, nrun, q)
                        free -= nd
                        budget -= c
                        npf += c
                        pairs += ctx[h] * c + c * (c + 1) // 2
                    ntok += npf
        nb = nrun[r]
        if ntok == 0:
            # nothing fits (partial prefills holding all blocks): evict the newest and retry
            if nb > 1:
                v = run[r, nb - 1]
                nrun[r] = nb - 1
                used[r] -= held[v]
                held[v] = 0
                npreempt[v] += 1
                back = ctx[v] + (1 if pf_rem[v] == 0 else 0)
                work[r] += back
                pf_rem[v] += back
                ctx[v] = 0
                status[v] = WAITING
                _push_front(v, r, head, tail, nxt, nwait)
                continue
            raise ValueError("serving kernel: a request cannot be scheduled on an empty replica")
        lin_tok = float(ntok)
        if npf == 0 and graph_sizes.shape[0] > 0:  # a generation-only step replays a CUDA graph padded up
            at = np.searchsorted(graph_sizes, lin_tok)  # (cosim.engines.graph_padding); above the largest: eager
            if at < graph_sizes.shape[0]:
                lin_tok = graph_sizes[at]
        gpu = combine(interp_extrap(tok_grid, lin_s, lin_tok), interp_extrap(kv_grid, dec_s, kv),
                      interp_extrap(pair_grid, pre_s, pairs)) + per_seq_s * nb  # per running sequence
        if npf > 0 and gpu < prompt_floor_s:  # a prompt step launched without CUDA graphs waits for the host
            gpu = prompt_floor_s
        dt = extra + gpu
        t1 = t0 + dt
        clock[r] = t1
        busy_s[r] += dt
        # ---- apply the iteration
        k = 0
        nact = 0
        all_finished = True
        for j in range(nb):
            h = run[r, j]
            c = q[j]
            if c > 0:
                nact += 1
                ctx[h] += c
                if not np.isnan(finish_t[h]):
                    pass  # padded member of a static batch: compute only
                elif pf_rem[h] > 0:
                    pf_rem[h] -= c
                    work[r] -= c
                    if pf_rem[h] == 0:
                        gen[h] += 1
                        work[r] -= 1
                        if np.isnan(first_t[h]):
                            first_t[h] = t1
                else:
                    gen[h] += 1
                    work[r] -= 1
                    if np.isnan(first_t[h]):
                        first_t[h] = t1
            finished = gen[h] >= out[h] or (prefill_only and pf_rem[h] == 0 and gen[h] > gen0[h])
            if finished and np.isnan(finish_t[h]):
                finish_t[h] = t1
                if closed and nrel < n:  # its client sends the next request now
                    nheap = _heap_push(heap, nheap, t1)
                    nrel += 1
                if out[h] > gen[h]:
                    work[r] -= out[h] - gen[h]
            if not finished:
                all_finished = False
            if sched != 0 and finished:
                status[h] = DONE
                used[r] -= held[h]
                held[h] = 0
                done += 1
                continue
            run[r, k] = h
            k += 1
        if sched == 0 and all_finished:
            for j in range(k):
                h = run[r, j]
                status[h] = DONE
                used[r] -= held[h]
                held[h] = 0
                done += 1
            k = 0
        nrun[r] = k
        if nsteps >= tl.shape[0]:
            tl = _grow(tl)
        tl[nsteps, TL_REPLICA] = r
        tl[nsteps, TL_START] = t0
        tl[nsteps, TL_END] = t1
        tl[nsteps, TL_SEQS] = nact
        tl[nsteps, TL_TOKENS] = ntok
        tl[nsteps, TL_PREFILL_TOKENS] = npf
        tl[nsteps, TL_USED_BLOCKS] = used[r]
        tl[nsteps, TL_WAITING] = nwait[r]
        nsteps += 1
    return rep, first_t, finish_t, sched_t, npreempt, busy_s, tl[:nsteps].copy(), arrival


def simulate_kernel(*args):
    """Run the compiled event loop (arguments as `_simulate`); returns per-request, timeline and arrival arrays."""
    return _simulate(*args)


def simulate_reference(*args):
    """The same event loop run by the Python interpreter (slow; tests compare it with the kernel)."""
    return _simulate.py_func(*args)
