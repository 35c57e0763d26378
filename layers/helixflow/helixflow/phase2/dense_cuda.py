"""CUDA form of the dense searcher's top-k (see ``dense.py`` for the contract; ``dense_cpu.top_k_cpu`` is its CPU
twin and the tests compare the two under ``NUMBA_ENABLE_CUDASIM=1``). Imported only when the GPU path runs."""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from helixflow.phase2 import _dense_common as common

# Threads per block of the top-k merge (one thread per read).
MERGE_THREADS = 128


@cuda.jit
def similarity_kernel(queries, targets, out):
    """out[i, j] = queries[i] . targets[j]; thread (x, y) of the grid owns cell (i, j). Each block stages
    TILE-wide slices of its TILE queries and TILE targets in shared memory, so every global value is read once
    per block instead of once per thread."""
    tile_q = cuda.shared.array((common.TILE, common.TILE), dtype=float64)
    tile_t = cuda.shared.array((common.TILE, common.TILE), dtype=float64)
    i, j = cuda.grid(2)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    dims = queries.shape[1]
    acc = float64(0.0)
    for base in range(0, dims, common.TILE):
        # tile_q[tx, d] = queries[i, base + d] and tile_t[d, ty] = targets[j, base + d]; out-of-range -> 0.
        d = base + ty
        tile_q[tx, ty] = queries[i, d] if i < queries.shape[0] and d < dims else float64(0.0)
        d = base + tx
        tile_t[tx, ty] = targets[j, d] if j < targets.shape[0] and d < dims else float64(0.0)
        cuda.syncthreads()
        for d in range(common.TILE):
            acc += tile_q[tx, d] * tile_t[d, ty]
        cuda.syncthreads()
    if i < out.shape[0] and j < out.shape[1]:
        out[i, j] = acc


@cuda.jit
def top_k_merge_kernel(scores, column_offset, top_value, top_index):
    """``dense_cpu.top_k_merge`` with one thread per read."""
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


def top_k_cuda(queries: np.ndarray, targets, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``dense_cpu.top_k_cpu`` on the GPU. ``targets`` may already be a device array (kept resident between calls);
    blocks of ``common.BLOCK_READS`` x ``common.BLOCK_WINDOWS`` bound device memory."""
    device_targets = cuda.to_device(np.ascontiguousarray(targets, dtype=np.float64)) \
        if isinstance(targets, np.ndarray) else targets
    n, m = queries.shape[0], device_targets.shape[0]
    top_value, top_index = common.empty_top(n, k)
    block_rows, block_cols = min(common.BLOCK_READS, max(n, 1)), min(common.BLOCK_WINDOWS, max(m, 1))
    scores = cuda.device_array((block_rows, block_cols), dtype=np.float64)
    for r0 in range(0, n, common.BLOCK_READS):
        r1 = min(r0 + common.BLOCK_READS, n)
        device_queries = cuda.to_device(np.ascontiguousarray(queries[r0:r1], dtype=np.float64))
        device_value = cuda.to_device(top_value[r0:r1])
        device_index = cuda.to_device(top_index[r0:r1])
        for c0 in range(0, m, common.BLOCK_WINDOWS):
            c1 = min(c0 + common.BLOCK_WINDOWS, m)
            block = scores[:r1 - r0, :c1 - c0]
            grid = (math.ceil((r1 - r0) / common.TILE), math.ceil((c1 - c0) / common.TILE))
            similarity_kernel[grid, (common.TILE, common.TILE)](device_queries, device_targets[c0:c1], block)
            top_k_merge_kernel[math.ceil((r1 - r0) / MERGE_THREADS), MERGE_THREADS](block, c0, device_value,
                                                                                   device_index)
        top_value[r0:r1] = device_value.copy_to_host()
        top_index[r0:r1] = device_index.copy_to_host()
    return top_value, top_index
