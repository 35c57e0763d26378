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

    def __len__(self) -> int:
        return int(self.read.shape[0])

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.int32), np.zeros(0, np.int64),
                   np.zeros(0, np.int64), np.zeros(0, np.float32))
