"""Fold-by-fold, line-by-line memory model of a systolic array with SCALE-Sim v2/v3 semantics (Numba).

One *line* is one cycle of SCALE-Sim's demand matrices. Per fold, each input operand demands a
contiguous range of its prefetch stream (ifmap or filter, in the order SCALE-Sim prefetches it),
spread evenly over the lines on which that operand enters the array; the output buffer receives
the fold's results over the drain lines.

Read buffers (double buffered, half active, half prefetch) hold the stream in `sets` of
ceil(words / 100) elements; a demand outside the active window is a miss that slides the window by
the prefetch half and issues a DRAM burst of ceil(prefetch / bw) lines, each burst advancing that
operand's DRAM clock by lines + 1 cycles. A line stalls when its operand's DRAM clock is ahead of
the array clock; the stall rule and the write buffer's drain (half the buffer per drain, stalling
when the buffer fills before the drain ends) follow SCALE-Sim's read_buffer/write_buffer. With
ideal bandwidth (bw <= 0) nothing stalls; DRAM traffic is still counted.

`simulate` is compiled lazily with `@njit(cache=True)`; `simulate.py_func` with
`per_element=True` is the plain-Python reference (it checks every demanded element's set, like
SCALE-Sim, where the kernel checks the first and last set of each line).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Output slots of `simulate`.
OUT_STALL, OUT_DRAM_IF, OUT_DRAM_F, OUT_DRAM_OF, OUT_MISS_IF, OUT_MISS_F = range(6)


@njit(cache=True)
def _ceil_div(a, b):
    return -(-a // b)


@njit(cache=True)
def _in_window(s, a, a_len, n_sets):
    end = (a + a_len) % n_sets
    if a < end:
        return a <= s < end
    return s >= a or s < end


@njit(cache=True)
def simulate(df, rows, cols, m, k, n, buf_if, buf_f, buf_of, bw, per_element):  # noqa: C901
    """Return [stall_cycles, dram_reads_ifmap, dram_reads_filter, dram_writes_ofmap, misses_if, misses_f].

    df: 0 os, 1 ws, 2 is. buf_*: buffer sizes in words. bw: DRAM words per cycle per operand
    (<= 0 means ideal: no stalls).
    """
    out = np.zeros(6, dtype=np.float64)
    if df == 0:
        sr, sc, t = m, n, k
    elif df == 1:
        sr, sc, t = k, n, m
    else:
        sr, sc, t = k, m, n
    row_folds = _ceil_div(sr, rows)
    col_folds = _ceil_div(sc, cols)
    fold_len = t + rows + cols - 2 if df == 0 else 2 * rows + cols + t - 2
    ideal = bw <= 0.0
    bwi = 1 if ideal else max(1, int(bw))

    # stream sizes (unique words) and padded prefetch-matrix sizes per input operand
    uniq = np.zeros(2, dtype=np.int64)
    padded = np.zeros(2, dtype=np.int64)
    uniq[0] = m * k
    uniq[1] = k * n
    if df == 0:
        padded[0] = row_folds * rows * k
        padded[1] = col_folds * cols * k
    elif df == 1:
        padded[0] = row_folds * rows * m
        padded[1] = col_folds * cols * k
    else:
        padded[0] = col_folds * cols * k
        padded[1] = row_folds * rows * n
    bufs = np.zeros(2, dtype=np.int64)
    bufs[0] = buf_if
    bufs[1] = buf_f

    e_set = np.zeros(2, dtype=np.int64)
    n_sets = np.zeros(2, dtype=np.int64)
    a_len = np.zeros(2, dtype=np.int64)
    p_len = np.zeros(2, dtype=np.int64)
    win = np.zeros(2, dtype=np.int64)
    burst = np.zeros(2, dtype=np.int64)
    dclock = np.zeros(2, dtype=np.float64)
    for o in range(2):
        total = bufs[o]
        active = _ceil_div(total, 2)
        pref = total - active
        e = _ceil_div(total, 100)
        e_set[o] = e
        n_sets[o] = uniq[o] // e + 1 if uniq[o] % e == 0 else _ceil_div(uniq[o], e)
        a_len[o] = min(_ceil_div(active, e), n_sets[o])
        p_len[o] = min(_ceil_div(pref, e), n_sets[o] - a_len[o])
        burst[o] = _ceil_div(pref, bwi)
        dclock[o] = -1.0
        fetch_lines = _ceil_div(padded[o], bwi)
        first = min(_ceil_div(active, bwi), fetch_lines)
        out[OUT_DRAM_IF + o] = first * bwi if not ideal else min(active, uniq[o])

    of_total = buf_of
    of_active = _ceil_div(of_total, 2)
    of_drain = of_total - of_active
    of_free = float(of_total)
    drain_end = -1.0
    of_pending = 0.0  # words written but not yet drained

    stall = 0.0
    line0 = 0
    for fc in range(col_folds):
        c_used = min(cols, sc - fc * cols)
        for fr in range(row_folds):
            r_used = min(rows, sr - fr * rows)
            # (start position, count, first line, number of lines) per input operand
            if df == 0:
                s0, c0, f0, l0 = fr * rows * k, r_used * k, 0, k + r_used - 1
                s1, c1, f1, l1 = fc * cols * k, c_used * k, 0, k + c_used - 1
                wcount, wfirst, wlines = r_used * c_used, t - 1 + rows - r_used, r_used + c_used - 1
            elif df == 1:
                s0, c0, f0, l0 = fr * rows * m, r_used * m, rows, m + r_used - 1
                s1, c1, f1, l1 = fc * cols * k + fr * rows * c_used, r_used * c_used, 0, rows
                wcount, wfirst, wlines = m * c_used, 2 * rows - 1, m + c_used - 1
            else:
                s0, c0, f0, l0 = fc * cols * k + fr * rows * c_used, r_used * c_used, 0, rows
                s1, c1, f1, l1 = fr * rows * n, r_used * n, rows, n + r_used - 1
                wcount, wfirst, wlines = n * c_used, 2 * rows - 1, n + c_used - 1
            starts = (s0, s1)
            counts = (c0, c1)
            firsts = (f0, f1)
            nlines = (l0, l1)
            # lines of this fold on which something happens: all of them (cheap in compiled code)
            for j in range(fold_len):
                now = line0 + j + stall
                worst = 0.0
                for o in range(2):
                    lj = j - firsts[o]
                    if lj < 0 or lj >= nlines[o]:
                        continue
                    lo = starts[o] + (counts[o] * lj) // nlines[o]
                    hi = starts[o] + (counts[o] * (lj + 1)) // nlines[o]
                    if hi <= lo:
                        continue
                    off = 1.0
                    missed = False
                    if per_element:
                        for x in range(lo, hi):
                            s = x // e_set[o]
                            while not _in_window(s, win[o], a_len[o], n_sets[o]):
                                win[o] = (win[o] + p_len[o]) % n_sets[o]
                                out[OUT_MISS_IF + o] += 1.0
                                out[OUT_DRAM_IF + o] += burst[o] * bwi if not ideal else p_len[o] * e_set[o]
                                dclock[o] += burst[o] + 1
                                pot = dclock[o] - (now + off)
                                off += pot
                                if pot > 0:
                                    off += pot
                                missed = True
                    else:
                        for s in (lo // e_set[o], (hi - 1) // e_set[o]):
                            while not _in_window(s, win[o], a_len[o], n_sets[o]):
                                win[o] = (win[o] + p_len[o]) % n_sets[o]
                                out[OUT_MISS_IF + o] += 1.0
                                out[OUT_DRAM_IF + o] += burst[o] * bwi if not ideal else p_len[o] * e_set[o]
                                dclock[o] += burst[o] + 1
                                pot = dclock[o] - (now + off)
                                off += pot
                                if pot > 0:
                                    off += pot
                                missed = True
                    if missed and not ideal:
                        worst = max(worst, off - 1.0)
                # output buffer
                wj = j - wfirst
                if 0 <= wj < wlines:
                    w = (wcount * (wj + 1)) // wlines - (wcount * wj) // wlines
                    if w > 0:
                        of_free -= w
                        of_pending += w
                        if not ideal:
                            cur = now
                            if cur < drain_end:
                                if of_free <= 0:
                                    worst = max(worst, drain_end - cur)
                            elif of_free < of_active:
                                drained = min(float(of_drain), of_pending)
                                of_pending -= drained
                                of_free += drained
                                drain_end = cur + math.ceil(drained / bwi)
                        elif of_free < of_active:
                            drained = min(float(of_drain), of_pending)
                            of_pending -= drained
                            of_free += drained
                stall += worst
            line0 += fold_len
    if ideal:  # every word is read at least once
        for o in range(2):
            out[OUT_DRAM_IF + o] = max(out[OUT_DRAM_IF + o], float(uniq[o]))
    out[OUT_STALL] = stall
    return out
