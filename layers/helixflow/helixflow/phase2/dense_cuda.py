"""CUDA form of the dense searcher's top-k (see ``dense.py`` for the contract; ``dense_cpu.top_k_cpu`` is its CPU
twin and the tests compare the two under ``NUMBA_ENABLE_CUDASIM=1``). Imported only when the GPU path runs."""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64

from helixflow.phase2 import _dense_common as common

# Threads per block of the top-k merge (one thread per read).
MERGE_THREADS = 128


@cuda.jit
def similarity_kernel(queries, targets, out):
    """out[i, j] = queries[i] . targets[j] (codes, float32: exact, see ``dense``); thread (x, y) of the grid owns
    cell (i, j). Each block stages TILE-wide slices of its TILE queries and TILE targets in shared memory, so every
    global value is read once per block instead of once per thread."""
    tile_q = cuda.shared.array((common.TILE, common.TILE), dtype=float32)
    tile_t = cuda.shared.array((common.TILE, common.TILE), dtype=float32)
    i, j = cuda.grid(2)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    dims = queries.shape[1]
    acc = float32(0.0)
    for base in range(0, dims, common.TILE):
        # tile_q[tx, d] = queries[i, base + d] and tile_t[d, ty] = targets[j, base + d]; out-of-range -> 0.
        d = base + ty
        tile_q[tx, ty] = queries[i, d] if i < queries.shape[0] and d < dims else float32(0.0)
        d = base + tx
        tile_t[tx, ty] = targets[j, d] if j < targets.shape[0] and d < dims else float32(0.0)
        cuda.syncthreads()
        for d in range(common.TILE):
            acc += tile_q[tx, d] * tile_t[d, ty]
        cuda.syncthreads()
    if i < out.shape[0] and j < out.shape[1]:
        out[i, j] = acc


@cuda.jit
def top_k_merge_kernel(dots, column_offset, query_inverse_norms, target_inverse_norms, top_value, top_index):
    """``dense_cpu.top_k_merge`` with one thread per read (the same similarity: ``dense_cpu.similarity``)."""
    r = cuda.grid(1)
    if r >= dots.shape[0]:
        return
    k = top_value.shape[1]
    q = query_inverse_norms[r]
    for c in range(dots.shape[1]):
        index = column_offset + c
        value = (float64(dots[r, c]) * q) * target_inverse_norms[index]
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


def to_device(vectors):
    """``dense.SearchVectors`` with both arrays copied to the device (kept resident between searches)."""
    return type(vectors)(cuda.to_device(vectors.codes), cuda.to_device(vectors.inverse_norms))


def top_k_cuda(queries, targets, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``dense_cpu.top_k_cpu`` on the GPU. ``targets`` may already be on the device (``to_device``); blocks of
    ``common.DEVICE_BLOCK_READS`` x ``common.DEVICE_BLOCK_WINDOWS`` bound device memory."""
    device_targets = to_device(targets) if isinstance(targets.codes, np.ndarray) else targets
    n, m = len(queries), device_targets.codes.shape[0]
    top_value, top_index = common.empty_top(n, k)
    rows_per_block, columns_per_block = common.DEVICE_BLOCK_READS, common.DEVICE_BLOCK_WINDOWS
    block_rows, block_cols = min(rows_per_block, max(n, 1)), min(columns_per_block, max(m, 1))
    dots = cuda.device_array((block_rows, block_cols), dtype=np.float32)
    for r0 in range(0, n, rows_per_block):
        r1 = min(r0 + rows_per_block, n)
        device_queries = cuda.to_device(np.ascontiguousarray(queries.codes[r0:r1]))
        device_inverse_norms = cuda.to_device(np.ascontiguousarray(queries.inverse_norms[r0:r1]))
        device_value = cuda.to_device(top_value[r0:r1])
        device_index = cuda.to_device(top_index[r0:r1])
        for c0 in range(0, m, columns_per_block):
            c1 = min(c0 + columns_per_block, m)
            block = dots[:r1 - r0, :c1 - c0]
            grid = (math.ceil((r1 - r0) / common.TILE), math.ceil((c1 - c0) / common.TILE))
            similarity_kernel[grid, (common.TILE, common.TILE)](device_queries, device_targets.codes[c0:c1], block)
            top_k_merge_kernel[math.ceil((r1 - r0) / MERGE_THREADS), MERGE_THREADS](
                block, c0, device_inverse_norms, device_targets.inverse_norms, device_value, device_index)
        top_value[r0:r1] = device_value.copy_to_host()
        top_index[r0:r1] = device_index.copy_to_host()
    return top_value, top_index
