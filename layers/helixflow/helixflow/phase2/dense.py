"""Dense searcher: top-k reference windows per read by embedding similarity (a blocked matrix multiply).

Reads and reference windows (``reference.windows``: 300 bp every 150 bp) are embedded with the Phase 1
construction (``helixflow.embedding``) and rounded to its float16 storage precision, so a read gets the same
vector whether it came from Phase 1's Parquet or was embedded here from FASTQ. Similarity is the dot product of
L2-normalised vectors (cosine). Per read the ``TOP_K`` = 4 most similar windows are kept (ties go to the lower
window index); each window becomes two candidates, one per strand, because the canonical embedding cannot tell
strands apart - Smith–Waterman does. The candidate region is the window widened by ``PAD`` = 8 bp for indels,
plus, for reads longer than the 151 bp a window is guaranteed to contain, the excess on both sides.
A read is flagged ``overflow`` when its k-th window is within ``OVERFLOW_SIMILARITY`` = 2 % of its best
(more equally similar windows may exist than were kept: repeats).

Two implementations of the same blocked computation, processed in blocks of ``BLOCK_READS`` reads x
``BLOCK_WINDOWS`` windows so memory stays bounded for any genome:
- CPU: the block's similarities with numpy's BLAS matmul, then ``top_k_merge`` (Numba) folds them into a running
  top-k per read;
- CUDA: ``similarity_kernel``, a shared-memory tiled matmul (``TILE`` x ``TILE`` threads per block, one
  similarity per thread, ``TILE``-wide slices of the 256 dimensions staged in shared memory), then
  ``top_k_merge_kernel`` (one thread per read, the same insertion as ``top_k_merge``). Windows stay resident in
  device memory; each read block is copied in once and only the top-k comes back.
Summation order differs between BLAS and the tiled kernel, so the two agree up to float32 rounding (~1e-6):
identical top-k except between windows whose similarities differ by less than that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from helixflow import embedding
from helixflow.phase2.candidates import Candidates
from helixflow.phase2.reads import ReadBatch
from helixflow.phase2.reference import WINDOW_SIZE, WINDOW_STEP, Reference, Windows, windows

TOP_K = 4
PAD = 8
OVERFLOW_SIMILARITY = 0.02
BLOCK_READS = 2048
BLOCK_WINDOWS = 16384
TILE = 16
# Largest read length every window fully contains (see reference.py).
_CONTAINED = WINDOW_SIZE - WINDOW_STEP + 1
_NO_INDEX = np.iinfo(np.int64).max


@njit(cache=True, inline="always")
def _ranks_above(value, index, other_value, other_index):
    return value > other_value or (value == other_value and index < other_index)


@njit(cache=True)
def top_k_merge(scores, column_offset, top_value, top_index):
    """Fold a block of similarities (rows = reads, columns = windows ``column_offset``...) into the running
    top-k arrays (sorted best first; empty slots hold -inf)."""
    k = top_value.shape[1]
    for r in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            value = scores[r, c]
            index = column_offset + c
            if not _ranks_above(value, index, top_value[r, k - 1], top_index[r, k - 1]):
                continue
            j = k - 1
            while j > 0 and _ranks_above(value, index, top_value[r, j - 1], top_index[r, j - 1]):
                top_value[r, j] = top_value[r, j - 1]
                top_index[r, j] = top_index[r, j - 1]
                j -= 1
            top_value[r, j] = value
            top_index[r, j] = index


def _empty_top(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), _NO_INDEX, dtype=np.int64)


def top_k_cpu(queries: np.ndarray, targets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k targets per query by dot product: (values float32 (n, k), indices int64 (n, k))."""
    top_value, top_index = _empty_top(queries.shape[0], k)
    for r0 in range(0, queries.shape[0], BLOCK_READS):
        rows = slice(r0, r0 + BLOCK_READS)
        for c0 in range(0, targets.shape[0], BLOCK_WINDOWS):
            block = queries[rows] @ targets[c0:c0 + BLOCK_WINDOWS].T
            top_k_merge(block, c0, top_value[rows], top_index[rows])
    return top_value, top_index


_cuda_kernels = None


def _kernels():
    """Compile the CUDA kernels on first use (importing numba.cuda only when the GPU path runs)."""
    global _cuda_kernels
    if _cuda_kernels is not None:
        return _cuda_kernels
    from numba import cuda, float32

    @cuda.jit
    def similarity_kernel(queries, targets, out):
        # out[i, j] = queries[i] . targets[j]; thread (x, y) owns one output cell of its TILE x TILE block.
        tile_q = cuda.shared.array((TILE, TILE), dtype=float32)
        tile_t = cuda.shared.array((TILE, TILE), dtype=float32)
        i, j = cuda.grid(2)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        dims = queries.shape[1]
        acc = float32(0.0)
        for base in range(0, dims, TILE):
            # tile_q[tx, d] = queries[i, base + d]; tile_t[d, ty] = targets[j, base + d]
            d = base + ty
            tile_q[tx, ty] = queries[i, d] if i < queries.shape[0] and d < dims else float32(0.0)
            d = base + tx
            tile_t[tx, ty] = targets[j, d] if j < targets.shape[0] and d < dims else float32(0.0)
            cuda.syncthreads()
            for d in range(TILE):
                acc += tile_q[tx, d] * tile_t[d, ty]
            cuda.syncthreads()
        if i < out.shape[0] and j < out.shape[1]:
            out[i, j] = acc

    @cuda.jit
    def top_k_merge_kernel(scores, column_offset, top_value, top_index):
        r = cuda.grid(1)
        if r >= scores.shape[0]:
            return
        k = top_value.shape[1]
        for c in range(scores.shape[1]):
            value = scores[r, c]
            index = column_offset + c
            last_value = top_value[r, k - 1]
            if not (value > last_value or (value == last_value and index < top_index[r, k - 1])):
                continue
            j = k - 1
            while j > 0 and (value > top_value[r, j - 1] or
                             (value == top_value[r, j - 1] and index < top_index[r, j - 1])):
                top_value[r, j] = top_value[r, j - 1]
                top_index[r, j] = top_index[r, j - 1]
                j -= 1
            top_value[r, j] = value
            top_index[r, j] = index

    _cuda_kernels = (cuda, similarity_kernel, top_k_merge_kernel)
    return _cuda_kernels


def top_k_cuda(queries: np.ndarray, targets, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``top_k_cpu`` on the GPU. ``targets`` may already be a device array (kept resident between calls)."""
    cuda, similarity_kernel, top_k_merge_kernel = _kernels()
    device_targets = targets if cuda.is_cuda_array(targets) else cuda.to_device(
        np.ascontiguousarray(targets, dtype=np.float32))
    n, m = queries.shape[0], device_targets.shape[0]
    top_value, top_index = _empty_top(n, k)
    block_rows, block_cols = min(BLOCK_READS, max(n, 1)), min(BLOCK_WINDOWS, max(m, 1))
    scores = cuda.device_array((block_rows, block_cols), dtype=np.float32)
    for r0 in range(0, n, BLOCK_READS):
        r1 = min(r0 + BLOCK_READS, n)
        device_queries = cuda.to_device(np.ascontiguousarray(queries[r0:r1], dtype=np.float32))
        device_value = cuda.to_device(top_value[r0:r1])
        device_index = cuda.to_device(top_index[r0:r1])
        for c0 in range(0, m, BLOCK_WINDOWS):
            c1 = min(c0 + BLOCK_WINDOWS, m)
            block = scores[:r1 - r0, :c1 - c0]
            grid = (math.ceil((r1 - r0) / TILE), math.ceil((c1 - c0) / TILE))
            similarity_kernel[grid, (TILE, TILE)](device_queries, device_targets[c0:c1], block)
            threads = 128
            top_k_merge_kernel[math.ceil((r1 - r0) / threads), threads](block, c0, device_value, device_index)
        top_value[r0:r1] = device_value.copy_to_host()
        top_index[r0:r1] = device_index.copy_to_host()
    return top_value, top_index


def storage_precision(vectors: np.ndarray) -> np.ndarray:
    return np.asarray(vectors, dtype=embedding.STORAGE_DTYPE).astype(np.float32)


@dataclass
class DenseSearcher:
    windows: Windows
    vectors: np.ndarray  # float32 (n_windows, DIMS), storage precision
    contig_lengths: np.ndarray  # int64
    device: str = "cpu"
    _device_vectors: object = None

    @classmethod
    def build(cls, reference: Reference, device: str = "cpu") -> DenseSearcher:
        table = windows(reference)
        return cls(table, storage_precision(embedding.embed_packed(*table.packed(reference))), reference.lengths,
                   device)

    def top_k(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.device == "cuda":
            if self._device_vectors is None:
                cuda = _kernels()[0]
                self._device_vectors = cuda.to_device(self.vectors)
            return top_k_cuda(queries, self._device_vectors, TOP_K)
        return top_k_cpu(queries, self.vectors, TOP_K)

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
                          np.repeat(start, 2), np.repeat(end, 2), np.repeat(value[valid], 2), overflow)

