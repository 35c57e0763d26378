"""The results contract both searchers (``index`` and ``dense``) return.

A candidate is a reference region a read may come from, with the read orientation to try: strand 0 aligns the
read as given, strand 1 its reverse complement, always against the forward reference, so a Smith–Waterman hit
converts to SAM coordinates directly. Candidates are grouped by read (ascending) and, within a read, ordered
by the searcher's own evidence (``evidence`` descending: minimizer votes or cosine similarity). The mapper
verifies every candidate with Smith–Waterman and ranks by alignment score, so the two searchers are
interchangeable: they may disagree on evidence, not on what the mapper does with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidates:
    read: np.ndarray  # int64
    strand: np.ndarray  # int8
    contig: np.ndarray  # int32
    start: np.ndarray  # int64, contig-local, 0-based
    end: np.ndarray  # int64, exclusive
    evidence: np.ndarray  # float32
    # Per read (not per candidate): the searcher saw more loci as good as these than it returned, so the
    # true locus may be missing from the list (the mapper then never raises the read's MAPQ through its mate).
    overflow: np.ndarray  # bool (n_reads,)

    def __len__(self) -> int:
        return int(self.read.shape[0])

