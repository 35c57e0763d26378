"""Dense searcher: top-k reference windows per read by embedding similarity (a blocked matrix multiply).

Reads and reference windows (``reference.windows``: 300 bp every 150 bp) are embedded with the Phase 1
construction (``helixflow.embedding``: int8 codes), so a read gets the same codes whether they came from Phase 1's
Parquet or it was embedded here from FASTQ. The similarity of a read and a window is the cosine of their codes,
computed exactly (``SearchVectors``): the dot product of the integer codes, then times each side's 1/||codes||.
Per read the ``TOP_K`` = 4 most similar windows are kept (ties go to the lower
window index); each window becomes two candidates, one per strand, because the canonical embedding cannot tell
strands apart - Smith–Waterman does. The candidate region is the window widened by ``PAD`` = 8 bp for indels,
plus, for reads longer than the 151 bp a window is guaranteed to contain, the excess on both sides.
A read is flagged ``overflow`` when its k-th window is within ``OVERFLOW_SIMILARITY`` = 2 % of its best
(more equally similar windows may exist than were kept: repeats).

Two implementations of the same blocked computation (twins that share only ``_dense_common``; ``top_k`` here
chooses), processed in blocks of ``BLOCK_READS`` reads x ``BLOCK_WINDOWS`` windows so memory stays bounded for
any genome:
- CPU (``dense_cpu.py``): the block's dot products with numpy's BLAS matmul in float32, then ``top_k_merge``
  (Numba) turns them into similarities and folds them into a running top-k per read;
- CUDA (``dense_cuda.py``): ``similarity_kernel``, a shared-memory tiled matmul (``TILE`` x ``TILE`` threads per
  block, one dot product per thread, ``TILE``-wide slices of the 256 dimensions staged in shared memory), then
  ``top_k_merge_kernel`` (one thread per read, the same similarity and insertion as ``top_k_merge``). Windows stay
  resident in device memory; each read block is copied in once and only the top-k comes back.
Exact arithmetic, so results never depend on blocking, BLAS or device: the codes are integers of at most
``CODE_LIMIT`` = 127 in magnitude, so every product and every partial sum of a 256-dimension dot product is an
integer below 256 x 127^2 < 2^24, exact in float32 whatever the summation order (and with FMA). The similarity
is then ``(dot * inverse_norm[read]) * inverse_norm[window]`` in float64, two correctly rounded products of
the same numbers everywhere. CPU and GPU, one MPI rank or many, produce the same top-k, ties included.
(An earlier form multiplied float16-rounded unit vectors in float64, also exact, but float64 matmul runs at a
third of float32's speed on the CPU and needs twice the memory.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from helixflow import embedding
from helixflow.phase2.candidates import Candidates
from helixflow.phase2.dense_cpu import top_k_cpu
from helixflow.phase2.reads import ReadBatch
from helixflow.phase2.reference import WINDOW_SIZE, WINDOW_STEP, Reference, Windows, windows

TOP_K = 4
PAD = 8
OVERFLOW_SIMILARITY = 0.02
# Largest read length every window fully contains (see reference.py).
_CONTAINED = WINDOW_SIZE - WINDOW_STEP + 1
# The largest dot product of two code vectors must stay an exact float32 integer (module docstring).
assert embedding.DIMS * embedding.CODE_LIMIT ** 2 < 2 ** 24


@dataclass(frozen=True)
class SearchVectors:
    """Embeddings in the search's exact form (see the module docstring)."""

    codes: np.ndarray  # float32 (n, DIMS): the int8 codes, integer-valued
    inverse_norms: np.ndarray  # float64 (n,): 1 / ||codes||, 0 for a sequence without a valid k-mer

    def __len__(self) -> int:
        return self.codes.shape[0]


def search_vectors(codes: np.ndarray) -> SearchVectors:
    """The search form of stored int8 codes (n, DIMS)."""
    codes = np.asarray(codes, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", codes, codes, dtype=np.float64))
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return SearchVectors(np.ascontiguousarray(codes), inverse)


def top_k(queries: SearchVectors, targets: SearchVectors, k: int, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Top-k targets per query by cosine on ``device`` ("cpu" or "cuda"): (values float64 (n, k), indices
    int64 (n, k)), identical on both. For "cuda" ``targets`` may already be on the device
    (``dense_cuda.to_device``)."""
    if device == "cuda":
        from helixflow.phase2 import dense_cuda  # imports numba.cuda only when asked for

        return dense_cuda.top_k_cuda(queries, targets, k)
    return top_k_cpu(queries, targets, k)


@dataclass
class DenseSearcher:
    windows: Windows
    vectors: SearchVectors  # one per window
    contig_lengths: np.ndarray  # int64
    device: str = "cpu"
    _device_vectors: SearchVectors | None = None

    @classmethod
    def build(cls, reference: Reference, device: str = "cpu") -> DenseSearcher:
        table = windows(reference)
        codes, _ = embedding.embed_codes_packed(*table.packed(reference), parallel=True)
        return cls(table, search_vectors(codes), reference.lengths, device)

    def top_k(self, queries: SearchVectors) -> tuple[np.ndarray, np.ndarray]:
        if self.device == "cuda" and self._device_vectors is None:
            from helixflow.phase2 import dense_cuda

            self._device_vectors = dense_cuda.to_device(self.vectors)  # resident between batches
        return top_k(queries, self._device_vectors if self.device == "cuda" else self.vectors, TOP_K, self.device)

    def search(self, batch: ReadBatch) -> Candidates:
        n = len(batch)
        k = min(TOP_K, len(self.windows))
        value, index = self.top_k(search_vectors(batch.embedding_codes()))
        value, index = value[:, :k], index[:, :k]
        # A read without a valid k-mer has the zero vector: no window is evidence for it.
        valid = value > 0
        read = np.repeat(np.arange(n, dtype=np.int64), valid.sum(axis=1))
        window = index[valid]
        lengths = np.diff(batch.seq_offsets)[read]
        extend = np.maximum(lengths - _CONTAINED, 0) + PAD
        contig = self.windows.contig[window]
        start = np.maximum(self.windows.start[window] - extend, 0)
        end = np.minimum(self.windows.end[window] + extend, self.contig_lengths[contig])
        overflow = (value[:, -1] > 0) & (value[:, -1] >= (1 - OVERFLOW_SIMILARITY) * value[:, 0])
        # Both strands per window, forward first; reads stay grouped in ascending order.
        return Candidates(np.repeat(read, 2), np.tile(np.array([0, 1], np.int8), read.size), np.repeat(contig, 2),
                          np.repeat(start, 2), np.repeat(end, 2), np.repeat(value[valid], 2).astype(np.float32), overflow)

