"""CIGARs of mapped reads: packed CIGAR text, and the traceback-free CIGAR of hits whose optimum is ungapped.

Hits whose optimum is ungapped (most reads) get their CIGAR from ``ungapped_tracebacks`` (provably the same
alignment ``sw.align`` returns; the tests compare the two), the others from ``sw.align``'s traceback;
``pack_cigars`` writes both kinds into one packed text buffer in read order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

@njit(cache=True)
def _cigar_length(clip_start, matched, clip_end):
    n = 0
    for value, op in ((clip_start, 0), (matched, 1), (clip_end, 0)):
        if value > 0 or op == 1:
            n += 2
            while value >= 10:
                n += 1
                value //= 10
    return n


@njit(cache=True)
def pack_cigars(n, rows, clip_start, matched, clip_end, gapped, gapped_cigar, gapped_offsets):
    """Packed CIGAR text of ``n`` reads: "*" for rows not in ``rows``; ``rows[h]`` gets gapped CIGAR
    ``gapped[h]`` (its text at ``gapped_offsets[g]:gapped_offsets[g+1]``) when that is >= 0, else the ungapped
    "{clip_start}S{matched}M{clip_end}S" with zero-length clips left out."""
    lengths = np.ones(n, dtype=np.int64)
    for h in range(rows.shape[0]):
        g = gapped[h]
        if g >= 0:
            lengths[rows[h]] = gapped_offsets[g + 1] - gapped_offsets[g]
        else:
            lengths[rows[h]] = _cigar_length(clip_start[h], matched[h], clip_end[h])
    offsets = np.zeros(n + 1, dtype=np.int64)
    for r in range(n):
        offsets[r + 1] = offsets[r] + lengths[r]
    out = np.full(offsets[n], 42, dtype=np.uint8)  # '*'
    for h in range(rows.shape[0]):
        at = offsets[rows[h]]
        g = gapped[h]
        if g >= 0:
            out[at:offsets[rows[h] + 1]] = gapped_cigar[gapped_offsets[g]:gapped_offsets[g + 1]]
            continue
        for value, op in ((clip_start[h], 83), (matched[h], 77), (clip_end[h], 83)):  # 'S', 'M', 'S'
            if value == 0 and op == 83:
                continue
            digits = 1
            scale = 10
            while scale <= value:
                digits += 1
                scale *= 10
            for i in range(digits):
                out[at + digits - 1 - i] = 48 + value % 10
                value //= 10
            out[at + digits] = op
            at += digits + 1
    return out, offsets


@njit(cache=True)
def ungapped_tracebacks(query, query_offsets, target, target_offsets, hits, score, query_end, target_end, code,
                        match, mismatch, n_score, out_ok, out_query_start, out_target_start, out_nm):
    """For each hit, the best ungapped local segment on the diagonal through its best cell (Kadane's scan).
    When that segment scores the Smith–Waterman optimum, ``sw.align`` would trace back exactly along it: every
    cell of the segment then has H equal to the segment's running score (a higher H anywhere would carry through
    to the best cell), so the diagonal-first traceback follows the segment and stops where the running score
    restarted from 0. Those hits get their CIGAR without a traceback (``out_ok``); the rest go to ``sw.align``."""
    for h in range(hits.shape[0]):
        c = hits[h]
        q0 = query_offsets[c]
        t0 = target_offsets[c]
        qe = query_end[c]
        diagonal = target_end[c] - qe
        running = 0
        start = max(0, -diagonal)
        for i in range(max(0, -diagonal), qe + 1):
            a = code[query[q0 + i]]
            b = code[target[t0 + i + diagonal]]
            s = n_score if a > 3 or b > 3 else (match if a == b else mismatch)
            if running + s <= 0:
                running = 0
                start = i + 1
            else:
                running += s
        out_ok[h] = running == score[c]
        if out_ok[h]:
            nm = 0
            for i in range(start, qe + 1):
                a = code[query[q0 + i]]
                if a > 3 or a != code[target[t0 + i + diagonal]]:
                    nm += 1
            out_query_start[h] = start
            out_target_start[h] = start + diagonal
            out_nm[h] = nm
