"""Reference genome: FASTA reading and the overlapping windows the dense searcher embeds.

The reference is held as one uint8 buffer (normalised by ``helixflow.seq.fasta``: uppercase, every IUPAC
ambiguity code ``N``) with int64 contig offsets, so Numba kernels and MPI
broadcasts take it as plain arrays.

Windows: ``WINDOW_SIZE`` = 300 bp every ``WINDOW_STEP`` = 150 bp along each contig (the last window is
anchored at the contig end so the tail is covered). Any stretch of up to ``WINDOW_SIZE - WINDOW_STEP + 1`` =
151 bp lies entirely inside at least one window, so a 150 bp read always has a window holding all of its
k-mers; longer reads get their verification region extended (see ``dense.py``). Each window stands for both
strands: the Phase 1 embedding is canonical (a sequence and its reverse complement get the same vector), so
the strand is decided later by Smith–Waterman, which aligns the read and its reverse complement.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from helixflow.errors import InvalidReference, Position
from helixflow.seq.fasta import fasta_lines, scan_fasta
from helixflow.seq.packing import gather_index

WINDOW_SIZE = 300
WINDOW_STEP = 150

@dataclass(frozen=True)
class Reference:
    names: tuple[str, ...]
    buffer: np.ndarray  # uint8, contigs back to back
    offsets: np.ndarray  # int64 (n_contigs + 1,)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def contig(self, index: int) -> np.ndarray:
        return self.buffer[self.offsets[index]:self.offsets[index + 1]]


def read_fasta(path: str | os.PathLike) -> Reference:
    """Read a (optionally gzipped) FASTA file. Raises ``InvalidReference`` on the first defect."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InvalidReference(f"reference FASTA not found: {path}", code="REFERENCE_NOT_FOUND",
                               position=Position(file=path))
    with open(path, "rb") as handle:
        contigs = list(scan_fasta(fasta_lines(handle, name=path), name=path))
    sequences = [b"".join(contig.lines) for contig in contigs]
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sequences], out=offsets[1:])
    return Reference(tuple(c.name for c in contigs), np.frombuffer(b"".join(sequences), dtype=np.uint8).copy(),
                     offsets)


@dataclass(frozen=True)
class Windows:
    contig: np.ndarray  # int32
    start: np.ndarray  # int64, contig-local, 0-based
    end: np.ndarray  # int64, exclusive

    def __len__(self) -> int:
        return int(self.contig.shape[0])

    def packed(self, reference: Reference) -> tuple[np.ndarray, np.ndarray]:
        """Window sequences as (buffer, offsets) views for ``embedding.embed_packed``."""
        index, offsets = gather_index(reference.offsets[self.contig] + self.start, self.end - self.start)
        return reference.buffer[index], offsets


def windows(reference: Reference, size: int = WINDOW_SIZE, step: int = WINDOW_STEP) -> Windows:
    """Overlapping windows along every contig (a contig shorter than ``size`` is one window)."""
    if not 0 < step <= size:
        raise ValueError(f"need 0 < step <= size, got step={step}, size={size}")
    contigs, starts = [], []
    for index, length in enumerate(reference.lengths.tolist()):
        last = max(length - size, 0)
        contig_starts = np.arange(0, last + 1, step, dtype=np.int64)
        if contig_starts[-1] != last:
            contig_starts = np.append(contig_starts, last)
        contigs.append(np.full(contig_starts.size, index, dtype=np.int32))
        starts.append(contig_starts)
    contig = np.concatenate(contigs)
    start = np.concatenate(starts)
    end = np.minimum(start + size, reference.lengths[contig])
    return Windows(contig, start, end)
