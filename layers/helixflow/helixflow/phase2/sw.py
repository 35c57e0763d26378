"""Smith-Waterman-Gotoh local alignment: the batched score-only entry point (CPU or GPU) and the single-pair
traceback.

``score_batch`` runs the CPU kernels (``sw_cpu``) or their CUDA twin (``sw_cuda``); both import only
``_sw_common`` and never each other, and this module is the one place that chooses between them.

Model
- Local alignment with affine gaps (Gotoh). Gap of length L costs ``gap_open + (L-1) * gap_extend``, which is
  parasail's convention (``parasail.sw_*(s1, s2, open, extend, matrix)``); scores equal parasail's with the
  matrix ``matrix_create("ACGTN", match, mismatch)`` whose N row/column (and '*' for other symbols) is set to
  ``n_score``. Requires (``_sw_common.check_scoring``) gap_open >= 1 and
  0 <= gap_extend <= gap_open. (parasail's striped kernels are wrong when gap_open == gap_extend; its serial
  ``parasail.sw`` agrees with these kernels there too.)
- Bases: A/C/G/T in any case; every other symbol scores as N: ``n_score`` against anything, N against N too.
- Ends (``score_batch``): 0-based, inclusive, of the best cell. Ties between cells with the best score are
  broken by the smallest target position, then the smallest query position - parasail's striped kernels use
  the same rule. A best score of 0 (no positive cell, or an empty sequence) reports ends (-1, -1).
  ``sw_cuda.score_batch_cuda`` follows the identical rule.
- Traceback (``align``): starts from that same best cell; at each cell prefers the diagonal, then a deletion,
  then an insertion, and inside a gap prefers opening it here over extending it (shortest gaps); tracing back
  from the end this way places a gap inside a repeat at its leftmost position. It stops at
  the first cell whose score is 0, so leading zero-scoring columns are left out of the alignment.
- CIGAR: SAM ops M (match or mismatch), I (query base not in target), D (target base not in query) and S
  (soft clip of the unaligned query ends), so the CIGAR's query length is always len(query). A score-0
  alignment is all soft clip (``"{len(query)}S"``, or ``""`` for an empty query) with empty spans at 0.
"""

from __future__ import annotations

import numpy as np

from helixflow.phase2 import sw_cpu
from helixflow.phase2._sw_common import Scoring
from helixflow.phase2.device import DEVICES, cuda_available
from helixflow.phase2.sw_cpu import LANES, Alignment, align, cigar_query_length

__all__ = ["Scoring", "Alignment", "score_batch", "align", "LANES", "cigar_query_length"]


def score_batch(query_buf: np.ndarray, query_offsets: np.ndarray,
                target_buf: np.ndarray, target_offsets: np.ndarray,
                scoring: Scoring = Scoring(), *, threads: int | None = None, device: str = "cpu",
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best local alignment score of each pair i = query i vs target i.

    Inputs are packed as ``helixflow.seq.packing.pack`` produces (uint8 buffer, int64 offsets of length n+1).
    Returns (score int32[n], query_end int32[n], target_end int32[n]); ends are 0-based and inclusive of the
    best cell, ties broken by smallest target end then smallest query end, (-1, -1) when the score is 0.

    ``threads``: Numba worker threads for this call on the CPU (default: Numba's current setting).
    ``device``: "cpu" (default), "cuda" (``sw_cuda.score_batch_cuda``) or "auto" (CUDA when
    ``device.cuda_available()``, else CPU). All give identical results.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if device == "cuda" or (device == "auto" and cuda_available()):
        from helixflow.phase2 import sw_cuda  # imports numba.cuda only when asked for

        return sw_cuda.score_batch_cuda(query_buf, query_offsets, target_buf, target_offsets, scoring)
    return sw_cpu.score_batch_cpu(query_buf, query_offsets, target_buf, target_offsets, scoring, threads=threads)
