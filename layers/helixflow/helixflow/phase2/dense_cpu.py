"""The dense searcher's top-k on the CPU: numpy's BLAS matmul (float32) per block, then ``top_k_merge`` (Numba)
turns the block's dot products into similarities and folds them into a running top-k per read (see ``dense`` for
the contract and why float32 is exact, ``dense_cuda`` for the GPU twin)."""

from __future__ import annotations

import numpy as np
from numba import njit

from helixflow.phase2 import _dense_common as common

# Columns scanned per step of the merge: first a bound on their best similarity (from their largest dot product: one
# comparison per column), then the exact similarities only for the rare step whose bound can enter the top-k.
SCAN_WIDTH = 64


@njit(cache=True, inline="always")
def ranks_above(value, index, other_value, other_index):
    """The top-k order: higher similarity first, the lower index on ties."""
    return value > other_value or (value == other_value and index < other_index)


@njit(cache=True, inline="always")
def insert_top(value, index, top_value, top_index):
    """Insert (value, index) into one read's running top-k (sorted best first) if it ranks there."""
    k = top_value.shape[0]
    if not ranks_above(value, index, top_value[k - 1], top_index[k - 1]):
        return
    j = k - 1
    while j > 0 and ranks_above(value, index, top_value[j - 1], top_index[j - 1]):
        top_value[j] = top_value[j - 1]
        top_index[j] = top_index[j - 1]
        j -= 1
    top_value[j] = value
    top_index[j] = index


@njit(cache=True, inline="always")
def similarity(dot, query_inverse_norm, target_inverse_norm):
    """The cosine from an exact dot product of codes, in the one order every path uses (see ``dense``)."""
    return (np.float64(dot) * query_inverse_norm) * target_inverse_norm


@njit(cache=True)
def largest(dots, r, c0, c1):
    """The largest of ``dots[r, c0:c1]`` (a view indexed by the loop counter: a computed column index costs a
    negative-index check per element, which kept the loop from vectorising)."""
    row = dots[r, c0:c1]
    best = row[0]
    for c in range(1, row.shape[0]):
        best = max(best, row[c])
    return best


@njit(cache=True)
def top_k_merge(dots, column_offset, query_inverse_norms, target_inverse_norms, top_value, top_index):
    """Fold a block of dot products (rows = reads, columns = targets ``column_offset``...) into the running top-k
    arrays (sorted best first; empty slots hold -inf) as similarities."""
    width = dots.shape[1]
    steps = (width + SCAN_WIDTH - 1) // SCAN_WIDTH
    # Per step, the target inverse norms that make its similarities largest: products of positive numbers round
    # monotonically, so similarity(largest dot, q, max) bounds a step with a positive dot and (.., min) one without.
    high = np.empty(steps)
    low = np.empty(steps)
    for s in range(steps):
        norms = target_inverse_norms[column_offset + s * SCAN_WIDTH:column_offset + min((s + 1) * SCAN_WIDTH, width)]
        high[s], low[s] = norms.max(), norms.min()
    for r in range(dots.shape[0]):
        q = query_inverse_norms[r]
        for s in range(steps):
            c0, c1 = s * SCAN_WIDTH, min((s + 1) * SCAN_WIDTH, width)
            best = largest(dots, r, c0, c1)
            if similarity(best, q, high[s] if best > 0 else low[s]) < top_value[r, -1]:
                continue  # nothing here ranks (an equal value could, on a lower index: scanned below)
            for c in range(c0, c1):
                insert_top(similarity(dots[r, c], q, target_inverse_norms[column_offset + c]), column_offset + c,
                           top_value[r], top_index[r])


def top_k_cpu(queries, targets, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k targets per query by cosine (``dense.SearchVectors`` both): (values float64 (n, k), indices int64
    (n, k))."""
    top_value, top_index = common.empty_top(len(queries), k)
    for r0 in range(0, len(queries), common.BLOCK_READS):
        rows = slice(r0, r0 + common.BLOCK_READS)
        for c0 in range(0, len(targets), common.BLOCK_WINDOWS):
            dots = queries.codes[rows] @ targets.codes[c0:c0 + common.BLOCK_WINDOWS].T
            top_k_merge(dots, c0, queries.inverse_norms[rows], targets.inverse_norms, top_value[rows],
                        top_index[rows])
    return top_value, top_index
