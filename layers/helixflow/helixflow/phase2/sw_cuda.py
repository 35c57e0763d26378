"""Smith-Waterman-Gotoh score-only kernel for NVIDIA GPUs (numba-cuda), the twin of ``sw_cpu.score_batch_cpu``.

Same model, scores, ends and tie rule as ``helixflow.phase2.sw`` (see its docstring): affine gaps in parasail's
convention, non-ACGT symbols score ``n_score``, ends 0-based inclusive, ties to the smallest target position
then the smallest query position, (-1, -1) for a zero score.

``from numba import cuda`` resolves to the numba-cuda package (``numba_cuda/numba/cuda``) when numba-cuda is
installed, which is the maintained CUDA target; nothing here uses the deprecated built-in one.

Layout: inter-sequence, one thread per pair, pairs sorted by length so the threads of a warp sweep similar
lengths. A thread walks its query in strips of ``STRIP_ROWS`` rows; a strip's H and E values and its query
codes live in per-thread local arrays indexed only by unrolled constant loops, so they stay in registers.
For each target column the strip computes ``STRIP_ROWS`` cells top-down, carrying F; the strip's last row (H
and the F entering the next strip) goes to a global workspace laid out [column, thread] so that a warp's
accesses are coalesced. Scores are int32, exact (``_sw_common.check_packed`` bounds them).
"""

from __future__ import annotations

import time

import numpy as np
from numba import cuda, int32

from helixflow.phase2._sw_common import Scoring, check_packed, length_order
from helixflow.seq.alphabet import BASE_CODE, N_CODE

__all__ = ["score_batch_cuda", "THREADS_PER_BLOCK", "STRIP_ROWS"]

THREADS_PER_BLOCK = 128
# Query rows a thread keeps in registers per sweep over the target.
STRIP_ROWS = 8
# Upper bound for the strip-edge workspace of one launch (two int32 per target column per pair); bigger
# batches run as several launches.
WORKSPACE_BYTES = 1 << 30


@cuda.jit(cache=True)
def _sw_kernel(qbuf, qoff, tbuf, toff, order, first, count, code, match, mismatch, n_score, gap_open,
               gap_extend, h_edge, f_edge, out_score, out_qend, out_tend):
    tid = cuda.grid(1)
    if tid >= count:
        return
    p = order[first + tid]
    q0 = qoff[p]
    qlen = qoff[p + 1] - q0
    t0 = toff[p]
    tlen = toff[p + 1] - t0

    q_codes = cuda.local.array(STRIP_ROWS, int32)
    h_col = cuda.local.array(STRIP_ROWS, int32)   # H of the previous column, per strip row
    e_col = cuda.local.array(STRIP_ROWS, int32)   # E entering this column, per strip row
    best = 0
    best_i = -1
    best_j = -1
    for strip in range(0, qlen, STRIP_ROWS):
        rows = min(STRIP_ROWS, qlen - strip)
        for r in range(STRIP_ROWS):
            q_codes[r] = code[qbuf[q0 + strip + r]] if r < rows else N_CODE
            h_col[r] = 0
            e_col[r] = 0   # boundary E/F at 0 instead of -inf: they enter H only through max(0, ...)
        strip_best = 0
        strip_i = -1
        strip_j = -1
        diag_above = 0     # H(strip - 1, j - 1)
        for j in range(tlen):
            b = code[tbuf[t0 + j]]
            if strip > 0:
                h_above = h_edge[j, tid]
                f = f_edge[j, tid]
            else:
                h_above = 0
                f = 0
            diag = diag_above
            diag_above = h_above
            for r in range(STRIP_ROWS):
                if r < rows:
                    a = q_codes[r]
                    if a == N_CODE or b == N_CODE:
                        s = n_score
                    elif a == b:
                        s = match
                    else:
                        s = mismatch
                    e = e_col[r]
                    h = max(max(diag + s, e), max(f, 0))
                    diag = h_col[r]
                    h_col[r] = h
                    h_open = h - gap_open
                    e_col[r] = max(e - gap_extend, h_open)
                    f = max(f - gap_extend, h_open)
                    # Columns outer, rows inner, strictly larger wins: smallest column, then smallest row.
                    if h > strip_best:
                        strip_best = h
                        strip_i = strip + r
                        strip_j = j
            # Only a full strip has a next strip to read these, so the last row is always STRIP_ROWS - 1
            # (a constant index keeps h_col in registers).
            h_edge[j, tid] = h_col[STRIP_ROWS - 1]
            f_edge[j, tid] = f
        # Rows of this strip come after every earlier strip's, so on equal score only a smaller column wins.
        if strip_best > best or (strip_best == best and strip_best > 0 and strip_j < best_j):
            best = strip_best
            best_i = strip_i
            best_j = strip_j
    out_score[p] = best
    out_qend[p] = best_i
    out_tend[p] = best_j


def score_batch_cuda(query_buf: np.ndarray, query_offsets: np.ndarray,
                     target_buf: np.ndarray, target_offsets: np.ndarray,
                     scoring: Scoring = Scoring(), *, timings: dict | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GPU twin of ``sw_cpu.score_batch_cpu``: same inputs, same (score, query_end, target_end) int32 arrays.

    ``timings``: if given, filled with ``kernel_s`` (kernel time alone, from CUDA events) and ``total_s``
    (the whole call including transfers), for benchmarks.
    """
    started = time.perf_counter()
    qbuf, qoff, tbuf, toff = check_packed(query_buf, query_offsets, target_buf, target_offsets, scoring)
    n = qoff.shape[0] - 1
    score = np.zeros(n, dtype=np.int32)
    qend = np.full(n, -1, dtype=np.int32)
    tend = np.full(n, -1, dtype=np.int32)
    if n == 0:
        return score, qend, tend
    tlen = np.diff(toff)
    order = length_order(np.diff(qoff), tlen)
    # The workspace holds one column slot per target position of the longest target, per thread.
    longest = max(int(tlen.max()), 1)
    per_launch = max(1, min(n, WORKSPACE_BYTES // (8 * longest)))

    d_qbuf = cuda.to_device(qbuf if qbuf.size else np.zeros(1, np.uint8))
    d_tbuf = cuda.to_device(tbuf if tbuf.size else np.zeros(1, np.uint8))
    d_qoff = cuda.to_device(qoff)
    d_toff = cuda.to_device(toff)
    d_order = cuda.to_device(order)
    d_code = cuda.to_device(BASE_CODE)
    d_score = cuda.to_device(score)
    d_qend = cuda.to_device(qend)
    d_tend = cuda.to_device(tend)
    d_h_edge = cuda.device_array((longest, per_launch), dtype=np.int32)
    d_f_edge = cuda.device_array((longest, per_launch), dtype=np.int32)
    start_event, stop_event = cuda.event(), cuda.event()
    start_event.record()
    for first in range(0, n, per_launch):
        count = min(per_launch, n - first)
        blocks = (count + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
        _sw_kernel[blocks, THREADS_PER_BLOCK](
            d_qbuf, d_qoff, d_tbuf, d_toff, d_order, first, count, d_code, scoring.match, scoring.mismatch,
            scoring.n_score, scoring.gap_open, scoring.gap_extend, d_h_edge, d_f_edge, d_score, d_qend,
            d_tend)
    stop_event.record()
    stop_event.synchronize()
    d_score.copy_to_host(score)
    d_qend.copy_to_host(qend)
    d_tend.copy_to_host(tend)
    if timings is not None:
        timings["kernel_s"] = start_event.elapsed_time(stop_event) / 1000.0  # milliseconds
        timings["total_s"] = time.perf_counter() - started
    return score, qend, tend
