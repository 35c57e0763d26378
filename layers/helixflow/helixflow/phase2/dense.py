"""Dense searcher: top-k reference windows per read by embedding similarity (a blocked matrix multiply).

Reads and reference windows (``reference.windows``: 300 bp every 150 bp) are embedded with the Phase 1
construction (``helixflow.embedding``: int8 codes, L2-normalised) and rounded to the search precision
``SEARCH_DTYPE`` (float16), so a read gets the same vector whether its codes came from Phase 1's Parquet or it was
embedded here from FASTQ. Similarity is the dot product of
L2-normalised vectors (cosine). Per read the ``TOP_K`` = 4 most similar windows are kept (ties go to the lower
window index); each window becomes two candidates, one per strand, because the canonical embedding cannot tell
strands apart - Smith–Waterman does. The candidate region is the window widened by ``PAD`` = 8 bp for indels,
plus, for reads longer than the 151 bp a window is guaranteed to contain, the excess on both sides.
A read is flagged ``overflow`` when its k-th window is within ``OVERFLOW_SIMILARITY`` = 2 % of its best
(more equally similar windows may exist than were kept: repeats).

Two implementations of the same blocked computation (twins that share only ``_dense_common``; ``top_k`` here
chooses), processed in blocks of ``BLOCK_READS`` reads x ``BLOCK_WINDOWS`` windows so memory stays bounded for
any genome:
- CPU (``dense_cpu.py``): the block's similarities with numpy's BLAS matmul, then ``top_k_merge`` (Numba) folds them into a running
  top-k per read;
- CUDA (``dense_cuda.py``): ``similarity_kernel``, a shared-memory tiled matmul (``TILE`` x ``TILE`` threads per block, one
  similarity per thread, ``TILE``-wide slices of the 256 dimensions staged in shared memory), then
  ``top_k_merge_kernel`` (one thread per read, the same insertion as ``top_k_merge``). Windows stay resident in
  device memory; each read block is copied in once and only the top-k comes back.
Exact arithmetic, so results never depend on blocking, BLAS or device: vectors are rounded to float16 (the
search precision) and multiplied in float64. A product of two float16 values has at most 22 significant bits
and the nonzero embedding values (count / norm) lie in [2^-11, 1] in magnitude for sequences up to ~4 kb, so
every product is exact in float64 and a sum of 256 of them spans at most 22 + 22 + 8 = 52 bits: the dot
products are exact whatever the summation order. CPU and GPU, one MPI rank
or many, produce the same top-k, ties included. (The price is float64 arithmetic and 8 bytes per value.)
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
# float16 keeps every product of two vector values exact in float64 (module docstring); it was the storage dtype
# up to embedding version 1, so the search's numbers did not change when storage moved to int8 codes.
SEARCH_DTYPE = np.float16
PAD = 8
OVERFLOW_SIMILARITY = 0.02
# Largest read length every window fully contains (see reference.py).
_CONTAINED = WINDOW_SIZE - WINDOW_STEP + 1


def top_k(queries: np.ndarray, targets, k: int, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Top-k targets per query by dot product on ``device`` ("cpu" or "cuda"): (values float64 (n, k), indices
    int64 (n, k)), identical on both. For "cuda" ``targets`` may already be a device array. Pass
    ``storage_precision`` vectors for exact, order-independent results."""
    if device == "cuda":
        from helixflow.phase2 import dense_cuda  # imports numba.cuda only when asked for

        return dense_cuda.top_k_cuda(queries, targets, k)
    return top_k_cpu(queries, targets, k)


def storage_precision(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors rounded to the search precision, as float64 (see the module docstring: exact products)."""
    return np.asarray(vectors, dtype=SEARCH_DTYPE).astype(np.float64)


@dataclass
class DenseSearcher:
    windows: Windows
    vectors: np.ndarray  # float64 (n_windows, DIMS), storage precision
    contig_lengths: np.ndarray  # int64
    device: str = "cpu"
    _device_vectors: object = None

    @classmethod
    def build(cls, reference: Reference, device: str = "cpu") -> DenseSearcher:
        table = windows(reference)
        return cls(table, storage_precision(embedding.embed_packed(*table.packed(reference))), reference.lengths,
                   device)

    def top_k(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.device == "cuda" and self._device_vectors is None:
            from helixflow.phase2 import dense_cuda

            self._device_vectors = dense_cuda.cuda.to_device(self.vectors)  # resident between batches
        return top_k(queries, self._device_vectors if self.device == "cuda" else self.vectors, TOP_K, self.device)

    def search(self, batch: ReadBatch) -> Candidates:
        n = len(batch)
        k = min(TOP_K, len(self.windows))
        value, index = self.top_k(storage_precision(batch.embed()))
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

