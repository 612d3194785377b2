"""Event-driven memory model of a systolic array with SCALE-Sim v2/v3 semantics (Numba).

The array issues one *line* of demands per cycle (SCALE-Sim's demand matrices): per fold, each input
operand reads a contiguous, ordered range of positions of its *fetch order* (the order in which its
DRAM prefetches deliver words), and the output writes a count of results. Per dataflow the fetch
order is one of two layouts (derived in `reference.streams`, which builds them explicitly):

* diagonal stream: the operand's fold blocks (H rows x W cols, the last block W_last wide) stacked
  and walked anti-diagonal by anti-diagonal; line j of a fold reads one anti-diagonal of its block.
* row stream: the same stacking walked row by row; a fold reads its R rows, one per line, last first.

Read buffer (double buffered, half active): the fetch order is cut into sets of ceil(words / 100)
words; the active window holds `A` consecutive sets (circularly). A demanded word outside the window
slides the window by `P` sets (the prefetch half) and costs a DRAM burst of ceil(prefetch / bw) lines
plus one cycle; the operand's DRAM clock L advances by that, and the line's service time x becomes
L + max(L - x, 0) (SCALE-Sim counts a late prefetch twice). The array stalls on a line by the largest
lateness over ifmap, filter and ofmap. Write buffer: each result takes a word; when fewer than half
the words are free a drain of ceil(half / bw) DRAM lines starts (partially filled lines are flushed
as they are); a write while a drain is in progress and the buffer is full waits for the drain.

Lines on which nothing can happen are skipped: a read line is an event only when its set range
changes (found by bisection on the monotone position functions), an output line only when the
cumulative writes reach the next drain or full-buffer threshold (closed form). `simulate` is
compiled lazily with `@njit(cache=True)`; `reference.simulate_reference` is the element-by-element
check.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Output slots of `simulate`.
OUT_STALL, OUT_DRAM_IF, OUT_DRAM_F, OUT_DRAM_OF, OUT_MISS_IF, OUT_MISS_F, OUT_EVENTS = range(7)
N_OUT = 7

# stream kinds
_DIAG, _ROW = 0, 1


@njit(cache=True)
def _cdiv(a, b):
    return -(-a // b)


@njit(cache=True)
def _tri(dd, h, w):
    """sum_{c=0}^{w-1} clamp(dd - c, 0, h): lattice points (r, c), r < h, c < w, r + c < dd."""
    if dd <= 0 or h <= 0 or w <= 0:
        return 0
    n1 = min(max(dd - h + 1, 0), w)  # columns where the whole height counts
    total = n1 * h
    ca = n1
    cb = min(w - 1, dd - 1)
    if cb >= ca:
        cnt = cb - ca + 1
        total += cnt * dd - (ca + cb) * cnt // 2
    return total


@njit(cache=True)
def _diag_pos(r, c, nb, h, w, wl):
    """Position of valid element (r, c) in the anti-diagonal walk of nb stacked h x w blocks."""
    d = r + c
    r_last = (nb - 1) * h  # first row of the last (possibly narrower) block
    before = _tri(d, r_last, w) + _tri(d - r_last, h, wl)
    c_lo = max(0, d - (nb * h - 1))
    skip_hi = min(c - 1, d - r_last)
    skip_lo = max(c_lo, wl)
    invalid = skip_hi - skip_lo + 1 if skip_hi >= skip_lo else 0
    return before + (c - c_lo) - invalid


@njit(cache=True)
def _line_range(st, fold_b, fold_u, fold_sub, j, rows, out2):
    """First and last fetch position read on line j of a fold, or (-1, -1) when it reads nothing.

    st: [kind, nb, h, w, wl, j0]; fold_b: block; fold_u: used columns (diag: used array rows/cols
    of the block, row stream: used width); fold_sub: row stream only, used rows of the fold.
    """
    kind, nb, h, w, wl, j0 = st[0], st[1], st[2], st[3], st[4], st[5]
    if kind == _DIAG:
        jj = j - j0
        c_lo = max(0, jj - h + 1)
        c_hi = min(jj, fold_u - 1)
        if jj < 0 or c_hi < c_lo:
            out2[0] = -1
            out2[1] = -1
            return
        base = fold_b * h + jj
        out2[0] = _diag_pos(base - c_lo, c_lo, nb, h, w, wl)
        out2[1] = _diag_pos(base - c_hi, c_hi, nb, h, w, wl)
    else:
        p = rows - 1 - j
        if p < 0 or p >= fold_sub:
            out2[0] = -1
            out2[1] = -1
            return
        krow = j0 * rows + p  # j0 holds the row fold index for row streams
        wb = w if fold_b < nb - 1 else wl
        start = fold_b * h * w + krow * wb
        out2[0] = start
        out2[1] = start + fold_u - 1


@njit(cache=True)
def _in_window(s, a, n_sets, active):
    if active >= n_sets:
        return True
    return (s - a) % n_sets < active


@njit(cache=True)
def _ofmap_cum(jj, base, h, u):
    """Results written on fold lines [0, jj): outputs (q, c) leave on line base + q + c."""
    return _tri(jj - base, h, u)


@njit(cache=True)
def _first_reaching(lo, hi, target, base, h, u):
    """First line l in [lo, hi) with cumulative writes through l (inclusive) >= target (hi if none)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if _ofmap_cum(mid + 1, base, h, u) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True)
def simulate(df, rows, cols, m, k, n, buf_if, buf_f, buf_of, bw):  # noqa: C901
    """Return [stall, dram_words_ifmap, dram_words_filter, dram_words_ofmap, slides_if, slides_f, events].

    df: 0 os, 1 ws, 2 is. buf_*: buffer sizes in words. bw: DRAM words per cycle per operand
    (<= 0 means ideal: no stalls; DRAM words are still counted).
    """
    out = np.zeros(N_OUT, dtype=np.float64)
    if df == 0:
        sr, sc, t = m, n, k
    elif df == 1:
        sr, sc, t = k, n, m
    else:
        sr, sc, t = k, m, n
    row_folds = _cdiv(sr, rows)
    col_folds = _cdiv(sc, cols)
    fold_len = t + rows + cols - 2 if df == 0 else 2 * rows + cols + t - 2
    ideal = bw <= 0.0
    bwi = 1 if ideal else max(1, int(bw))

    # streams: [kind, nb, h, w, wl, j0]; blocks indexed by row fold (which=0) or column fold (which=1)
    st = np.zeros((2, 6), dtype=np.int64)
    which = np.zeros(2, dtype=np.int64)
    wl_r = sr - (row_folds - 1) * rows
    wl_c = sc - (col_folds - 1) * cols
    if df == 0:
        st[0, :] = (_DIAG, row_folds, k, rows, wl_r, 0)
        st[1, :] = (_DIAG, col_folds, k, cols, wl_c, 0)
        which[0], which[1] = 0, 1
    elif df == 1:
        st[0, :] = (_DIAG, row_folds, m, rows, wl_r, rows)
        st[1, :] = (_ROW, col_folds, k, cols, wl_c, 0)
        which[0], which[1] = 0, 1
    else:
        st[0, :] = (_ROW, col_folds, k, cols, wl_c, 0)
        st[1, :] = (_DIAG, row_folds, n, rows, wl_r, rows)
        which[0], which[1] = 1, 0

    # read buffers
    bufs = np.array([buf_if, buf_f], dtype=np.int64)
    e_set = np.zeros(2, dtype=np.int64)
    n_sets = np.zeros(2, dtype=np.int64)
    act = np.zeros(2, dtype=np.int64)
    step = np.zeros(2, dtype=np.int64)
    burst = np.zeros(2, dtype=np.int64)
    pref_words = np.zeros(2, dtype=np.int64)
    win = np.zeros(2, dtype=np.int64)
    dclock = np.full(2, -1.0)
    valid = np.array([m * k, k * n], dtype=np.int64)
    for o in range(2):
        total = bufs[o]
        active = _cdiv(total, 2)
        pref = total - active
        e = _cdiv(total, 100)
        e_set[o] = e
        n_sets[o] = valid[o] // e + 1
        act[o] = min(_cdiv(active, e), n_sets[o])
        step[o] = min(_cdiv(pref, e), n_sets[o] - act[o])
        burst[o] = _cdiv(pref, bwi)
        pref_words[o] = pref
        padded = st[o, 1] * st[o, 2] * st[o, 3]
        if ideal:
            out[OUT_DRAM_IF + o] = min(active, valid[o])
        else:
            out[OUT_DRAM_IF + o] = min(_cdiv(active, bwi), _cdiv(padded, bwi)) * bwi

    # write buffer: a ring of queued DRAM-line segments (full lines, then one partial line)
    of_total = buf_of
    of_active = _cdiv(of_total, 2)
    drain_lines = _cdiv(of_total - of_active, bwi)
    free = of_total
    drain_end = 0.0
    unflushed = 0
    cap = 64
    seg_full = np.zeros(cap, dtype=np.int64)
    seg_part = np.zeros(cap, dtype=np.int64)
    head = 0
    count = 0
    written = 0

    rng = np.zeros(2, dtype=np.int64)
    fb = np.zeros(2, dtype=np.int64)
    fu = np.zeros(2, dtype=np.int64)
    fsub = np.zeros(2, dtype=np.int64)
    nxt = np.zeros(2, dtype=np.int64)
    lo_s = np.zeros(2, dtype=np.int64)
    hi_s = np.zeros(2, dtype=np.int64)
    stall = 0.0
    line0 = 0
    events = 0
    for fc in range(col_folds):
        c_used = min(cols, sc - fc * cols)
        for fr in range(row_folds):
            r_used = min(rows, sr - fr * rows)
            for o in range(2):
                fb[o] = fr if which[o] == 0 else fc
                if st[o, 0] == _DIAG:
                    fu[o] = r_used if which[o] == 0 else c_used
                    fsub[o] = 0
                    first = st[o, 5]
                else:
                    fu[o] = c_used
                    fsub[o] = r_used
                    st[o, 5] = fr  # row fold index for the row stream's rows
                    first = rows - r_used
                nxt[o] = fold_len if act[o] >= n_sets[o] else first
            if df == 0:
                of_base, of_h, of_u = k - 1 + rows - r_used, r_used, c_used
            else:
                of_base, of_h, of_u = 2 * rows - 1, t, c_used
            fold_writes = of_h * of_u
            j = 0  # output lines [0, j) are applied
            while True:
                # next output event: the line on which a write fills the buffer during a drain
                # (lines before jd) or brings it below half free (lines from jd on)
                e_of = fold_len
                if not ideal:
                    done = _ofmap_cum(j, of_base, of_h, of_u)
                    if fold_writes - done > 0:
                        jd = min(max(j, int(drain_end - stall - line0)), fold_len)
                        need = free if free > 0 else 1
                        if jd > j and _ofmap_cum(jd, of_base, of_h, of_u) - done >= need:
                            e_of = _first_reaching(j, jd, done + need, of_base, of_h, of_u)
                        elif jd < fold_len:
                            need2 = max(free - of_active + 1, _ofmap_cum(jd, of_base, of_h, of_u) - done + 1)
                            if fold_writes - done >= need2:
                                e_of = _first_reaching(jd, fold_len, done + need2, of_base, of_h, of_u)
                jn = min(e_of, min(nxt[0], nxt[1]))
                if jn >= fold_len:  # rest of the fold: writes only, none reaching a threshold
                    rest = fold_writes - _ofmap_cum(j, of_base, of_h, of_u)
                    free -= rest
                    unflushed += rest
                    break
                events += 1
                # apply output writes of lines [j, jn)
                upto = _ofmap_cum(jn, of_base, of_h, of_u)
                before = _ofmap_cum(j, of_base, of_h, of_u)
                free -= upto - before
                unflushed += upto - before
                cycle = line0 + jn + stall
                worst = 0.0
                for o in range(2):
                    if nxt[o] != jn:
                        continue
                    _line_range(st[o], fb[o], fu[o], fsub[o], jn, rows, rng)
                    if rng[0] < 0:  # past the operand's lines in this fold
                        nxt[o] = fold_len
                        continue
                    e = e_set[o]
                    s_lo = rng[0] // e
                    s_hi = rng[1] // e
                    x = cycle + 1.0
                    for s in range(s_lo, s_hi + 1):
                        if _in_window(s, win[o], n_sets[o], act[o]):
                            continue
                        # slides until s enters the window: the window moves by step <= active sets,
                        # so it cannot jump over s
                        ahead = (s - win[o]) % n_sets[o]
                        ns = (ahead - act[o]) // step[o] + 1
                        win[o] = (win[o] + ns * step[o]) % n_sets[o]
                        out[OUT_MISS_IF + o] += ns
                        if ideal:
                            out[OUT_DRAM_IF + o] += ns * pref_words[o]
                            continue
                        out[OUT_DRAM_IF + o] += ns * burst[o] * bwi
                        # service time after each slide: x_i = L_i + max(L_i - x_(i-1), 0) with
                        # L_i = L_0 + i * cost; the excess over L_i alternates with period 2
                        cost = float(burst[o] + 1)
                        d1 = dclock[o] + cost - x
                        if d1 < 0.0:
                            d1 = 0.0
                        if ns == 1:
                            dk = d1
                        else:
                            d2 = cost - d1 if cost > d1 else 0.0
                            d3 = cost - d2 if cost > d2 else 0.0
                            dk = d2 if ns % 2 == 0 else d3
                        dclock[o] += ns * cost
                        x = dclock[o] + dk
                    if not ideal and x - cycle - 1.0 > worst:
                        worst = x - cycle - 1.0
                    # skip lines whose set range stays the same and inside the window
                    inside = (s_hi - s_lo < act[o] and _in_window(s_lo, win[o], n_sets[o], act[o])
                              and _in_window(s_hi, win[o], n_sets[o], act[o]))
                    if not inside:
                        nxt[o] = jn + 1
                        continue
                    lo_s[o] = s_lo
                    hi_s[o] = s_hi
                    a_, b_ = jn + 1, fold_len
                    # predicate "same sets" holds on a prefix of the lines after jn (monotone positions)
                    while a_ < b_:
                        mid = (a_ + b_) // 2
                        _line_range(st[o], fb[o], fu[o], fsub[o], mid, rows, rng)
                        if rng[0] >= 0 and rng[0] // e == s_lo and rng[1] // e == s_hi:
                            a_ = mid + 1
                        else:
                            b_ = mid
                    nxt[o] = a_
                # output writes on line jn, element by element in bulk
                w = _ofmap_cum(jn + 1, of_base, of_h, of_u) - upto
                now = float(cycle)
                while w > 0 and not ideal:
                    if now < drain_end:
                        take = free if free > 0 else 1
                        if take > w:
                            free -= w
                            unflushed += w
                            w = 0
                        else:
                            free -= take
                            unflushed += take
                            w -= take
                            now = drain_end
                    else:
                        take = free - of_active + 1
                        if take < 1:
                            take = 1
                        if take > w:
                            free -= w
                            unflushed += w
                            w = 0
                        else:
                            free -= take
                            unflushed += take
                            w -= take
                            # flush stored words as DRAM lines, then drain up to drain_lines of them
                            full = unflushed // bwi
                            part = unflushed - full * bwi
                            unflushed = 0
                            if full > 0 or part > 0:
                                if count == cap:
                                    nf = np.zeros(2 * cap, dtype=np.int64)
                                    npt = np.zeros(2 * cap, dtype=np.int64)
                                    for i in range(count):
                                        nf[i] = seg_full[(head + i) % cap]
                                        npt[i] = seg_part[(head + i) % cap]
                                    seg_full, seg_part, head, cap = nf, npt, 0, 2 * cap
                                tail = (head + count) % cap
                                seg_full[tail] = full
                                seg_part[tail] = part
                                count += 1
                            lines = 0
                            last = 0
                            while lines < drain_lines and count > 0:
                                if seg_full[head] > 0:
                                    tk = min(seg_full[head], drain_lines - lines)
                                    seg_full[head] -= tk
                                    lines += tk
                                    last = bwi
                                elif seg_part[head] > 0:
                                    lines += 1
                                    last = seg_part[head]
                                    seg_part[head] = 0
                                if seg_full[head] == 0 and seg_part[head] == 0:
                                    head = (head + 1) % cap
                                    count -= 1
                            if lines > 0:
                                words = (lines - 1) * bwi + last
                                written += words
                                free += words
                                drain_end = now + lines - 1
                if ideal:
                    free -= w
                if not ideal and now - cycle > worst:
                    worst = now - cycle
                stall += worst
                j = jn + 1
            line0 += fold_len
    if ideal:  # every word is read at least once
        for o in range(2):
            out[OUT_DRAM_IF + o] = max(out[OUT_DRAM_IF + o], float(valid[o]))
    out[OUT_STALL] = stall
    out[OUT_DRAM_OF] = written
    out[OUT_EVENTS] = events
    return out
