"""Plain-Python, element-by-element reference of the systolic memory model (small shapes only).

It builds the operand streams explicitly, with NumPy, instead of from closed forms: every ifmap and
filter element gets an id; the *fetch order* of each read buffer is the order in which its DRAM
prefetches deliver elements (per dataflow: the operand's fold blocks stacked and walked
anti-diagonal by anti-diagonal or row by row); the *demand matrices* list, per array cycle (line),
which elements the array reads and how many outputs it writes (skewed fold blocks, fold by fold,
column fold outer). It then replays every demanded element through the buffer semantics documented
in `kernel` (window of sets, slides, DRAM clock, write-buffer drains). The compiled kernel derives
the same positions from closed forms and processes ranges of lines at once; tests compare the two.
"""

from __future__ import annotations

import math

import numpy as np

from cosim.engines.cycle.geometry import fold_geometry

DF_NAMES = ("os", "ws", "is")


def _skew(mat: np.ndarray) -> np.ndarray:
    """Delay column c by c lines (the wavefront of a systolic array)."""
    rows, cols = mat.shape
    out = np.full((rows + cols - 1, cols), -1, dtype=np.int64)
    for c in range(cols):
        out[c:c + rows, c] = mat[:, c]
    return out


def _pad(mat: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.full((rows, cols), -1, dtype=np.int64)
    out[:mat.shape[0], :mat.shape[1]] = mat
    return out


def _diagonal_walk(mat: np.ndarray) -> np.ndarray:
    """Elements of `mat` anti-diagonal by anti-diagonal; within one, column ascending."""
    h, w = mat.shape
    out = []
    for d in range(h + w - 1):
        for c in range(max(0, d - h + 1), min(d, w - 1) + 1):
            out.append(mat[d - c, c])
    return np.asarray(out, dtype=np.int64)


def _ids(rows: int, cols: int) -> np.ndarray:
    return np.arange(rows * cols, dtype=np.int64).reshape(rows, cols)


def streams(df: str, R: int, C: int, m: int, k: int, n: int):
    """(fetch order of ifmap, fetch order of filter, per-fold demand blocks).

    Each fold entry is (ifmap_demand, filter_demand, ofmap_writes_per_line) over its lines.
    """
    ifm, flt = _ids(m, k), _ids(k, n)  # ifmap M x K, filter K x N
    g = fold_geometry(R, C, df, m, k, n)
    if df == "os":  # rows <- M, cols <- N, time <- K
        if_blocks = [_pad(ifm[fr * R:(fr + 1) * R, :].T, k, R) for fr in range(g.row_folds)]
        f_blocks = [_pad(flt[:, fc * C:(fc + 1) * C], k, C) for fc in range(g.col_folds)]
        if_order = _diagonal_walk(np.vstack(if_blocks))
        f_order = _diagonal_walk(np.vstack(f_blocks))
    elif df == "ws":  # rows <- K, cols <- N, time <- M
        if_blocks = [_pad(ifm[:, fr * R:(fr + 1) * R], m, R) for fr in range(g.row_folds)]
        f_blocks = [_pad(flt[:, fc * C:(fc + 1) * C], k, C) for fc in range(g.col_folds)]
        if_order = _diagonal_walk(np.vstack(if_blocks))
        f_order = np.vstack(f_blocks).ravel()
    else:  # is: rows <- K, cols <- M, time <- N
        if_blocks = [_pad(ifm[fc * C:(fc + 1) * C, :].T, k, C) for fc in range(g.col_folds)]
        f_blocks = [_pad(flt[fr * R:(fr + 1) * R, :].T, n, R) for fr in range(g.row_folds)]
        if_order = np.vstack(if_blocks).ravel()
        f_order = _diagonal_walk(np.vstack(f_blocks))
    folds = []
    for fc in range(g.col_folds):
        for fr in range(g.row_folds):
            r_used = min(R, g.sr - fr * R)
            c_used = min(C, g.sc - fc * C)
            if df == "os":
                a = _skew(np.vstack([if_blocks[fr], np.full((C - 1, R), -1)]))
                b = _skew(np.vstack([f_blocks[fc], np.full((R - 1, C), -1)]))
                out = np.zeros((R, C), dtype=np.int64)
                out[R - r_used:, :c_used] = 1  # outputs leave bottom row first
                o = _skew(np.vstack([np.zeros((k - 1, C), dtype=np.int64), out]))
            elif df == "ws":
                a = _skew(np.vstack([np.full((R, R), -1), if_blocks[fr], np.full((C - 1, R), -1)]))
                w = _pad(flt[fr * R:fr * R + r_used, fc * C:fc * C + c_used], R, C)[::-1]
                b = np.vstack([w, np.full((R + C + m - 2, C), -1)])
                out = np.zeros((m, C), dtype=np.int64)
                out[:, :c_used] = 1
                o = _skew(np.vstack([np.zeros((2 * R - 1, C), dtype=np.int64), out]))
            else:
                w = _pad(ifm[fc * C:fc * C + c_used, fr * R:fr * R + r_used].T, R, C)[::-1]
                a = np.vstack([w, np.full((R + C + n - 2, C), -1)])
                b = _skew(np.vstack([np.full((R, R), -1), f_blocks[fr], np.full((C - 1, R), -1)]))
                out = np.zeros((n, C), dtype=np.int64)
                out[:, :c_used] = 1
                o = _skew(np.vstack([np.zeros((2 * R - 1, C), dtype=np.int64), out]))
            o = np.where(o < 0, 0, o).sum(axis=1)
            assert a.shape[0] == b.shape[0] == o.shape[0] == g.fold_cycles
            folds.append((a, b, o))
    return if_order, f_order, folds


class _ReadBuffer:
    """Double-buffered read SRAM: a window of `active` sets over the fetch order, slid by `step`."""

    def __init__(self, padded_order: np.ndarray, size_words: int, bw: int):
        order = padded_order[padded_order >= 0]  # padding of ragged folds is fetched but never stored
        total = len(order)
        self.bw = bw
        active = math.ceil(size_words / 2)
        pref = size_words - active
        e = math.ceil(size_words / 100)
        self.set_of = {int(x): i // e for i, x in enumerate(order)}
        self.n_sets = total // e + 1
        self.active = min(math.ceil(active / e), self.n_sets)
        self.step = min(math.ceil(pref / e), self.n_sets - self.active)
        self.burst = math.ceil(pref / bw)
        self.start = 0
        self.dram_clock = -1  # the initial fill completes the cycle before the first line
        self.dram_words = min(math.ceil(active / bw), math.ceil(len(padded_order) / bw)) * bw
        self.slides = 0

    def has(self, s: int) -> bool:
        return self.active >= self.n_sets or (s - self.start) % self.n_sets < self.active

    def read_line(self, elems, cycle: int) -> int:
        """Serve one demand line; return its extra cycles (may be negative: no stall)."""
        x = cycle + 1  # one cycle hit latency
        for el in elems:
            if el < 0:
                continue
            s = self.set_of[int(el)]
            while not self.has(s):
                self.start = (self.start + self.step) % self.n_sets
                self.slides += 1
                self.dram_words += self.burst * self.bw
                self.dram_clock += self.burst + 1
                late = self.dram_clock - x
                x = self.dram_clock + max(late, 0)
        return x - cycle - 1


class _WriteBuffer:
    """Output SRAM: fills, and drains `drain` words in bursts of `bw`-word DRAM lines once half full."""

    def __init__(self, size_words: int, bw: int):
        self.bw = bw
        self.total = size_words
        self.active = math.ceil(size_words / 2)
        self.drain_lines = math.ceil((size_words - self.active) / bw)
        self.free = size_words
        self.drain_end = 0
        self.unflushed = 0  # words stored since the last flush into the DRAM queue
        self.queue: list[int] = []  # words per queued DRAM line (full or a flushed partial line)
        self.written = 0

    def write_line(self, count: int, cycle: int) -> int:
        now = cycle
        for _ in range(count):
            self.free -= 1
            self.unflushed += 1
            if now < self.drain_end:
                if self.free <= 0:
                    now = self.drain_end
            elif self.free < self.active:
                full, part = divmod(self.unflushed, self.bw)
                self.queue += [self.bw] * full + ([part] if part else [])
                self.unflushed = 0
                lines, self.queue = self.queue[:self.drain_lines], self.queue[self.drain_lines:]
                if not lines:
                    continue
                words = (len(lines) - 1) * self.bw + lines[-1]
                self.written += words
                self.free += words
                self.drain_end = now + len(lines) - 1
        return now - cycle


def simulate_reference(df: int | str, rows: int, cols: int, m: int, k: int, n: int, buf_if: int, buf_f: int,
                       buf_of: int, bw: float) -> dict:
    """Stall cycles, total cycles and DRAM reads of one GEMM, element by element (bw > 0)."""
    name = DF_NAMES[df] if isinstance(df, int) else df
    bwi = max(1, int(bw))
    if_order, f_order, folds = streams(name, rows, cols, m, k, n)
    rb = [_ReadBuffer(if_order, buf_if, bwi), _ReadBuffer(f_order, buf_f, bwi)]
    wb = _WriteBuffer(buf_of, bwi)
    stall = 0
    line = 0
    total = 0
    for a, b, o in folds:
        for j in range(a.shape[0]):
            cycle = line + stall
            s0 = rb[0].read_line(a[j], cycle)
            s1 = rb[1].read_line(b[j], cycle)
            s2 = wb.write_line(int(o[j]), cycle)
            total = max(total, cycle + s2)
            stall += max(s0, s1, s2, 0)
            line += 1
    return {"stall_cycles": stall, "total_cycles": total, "dram_reads_ifmap": rb[0].dram_words,
            "dram_reads_filter": rb[1].dram_words, "slides_ifmap": rb[0].slides, "slides_filter": rb[1].slides}
