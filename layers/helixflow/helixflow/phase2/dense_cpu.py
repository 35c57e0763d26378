"""The dense searcher's top-k on the CPU: numpy's BLAS matmul per block, then ``top_k_merge`` (Numba) folds
the block into a running top-k per read (see ``dense`` for the contract, ``dense_cuda`` for the GPU twin)."""

from __future__ import annotations

import numpy as np
from numba import njit

from helixflow.phase2 import _dense_common as common


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


@njit(cache=True)
def top_k_merge(scores, column_offset, top_value, top_index):
    """Fold a block of similarities (rows = reads, columns = windows ``column_offset``...) into the running
    top-k arrays (sorted best first; empty slots hold -inf)."""
    for r in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            insert_top(scores[r, c], column_offset + c, top_value[r], top_index[r])


def top_k_cpu(queries: np.ndarray, targets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k targets per query by dot product: (values float64 (n, k), indices int64 (n, k)). Pass
    ``storage_precision`` vectors for exact, order-independent results."""
    top_value, top_index = common.empty_top(queries.shape[0], k)
    for r0 in range(0, queries.shape[0], common.BLOCK_READS):
        rows = slice(r0, r0 + common.BLOCK_READS)
        for c0 in range(0, targets.shape[0], common.BLOCK_WINDOWS):
            block = queries[rows] @ targets[c0:c0 + common.BLOCK_WINDOWS].T
            top_k_merge(block, c0, top_value[rows], top_index[rows])
    return top_value, top_index
