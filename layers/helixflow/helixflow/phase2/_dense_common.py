"""Shared pieces of the dense searcher's top-k (CPU twin ``dense_cpu``, CUDA twin ``dense_cuda``): the
blocking that bounds memory and the empty top-k arrays. Both twins import this module and neither imports the
other; ``dense`` chooses between them. The block sizes are read at call time, so tests can shrink them."""

from __future__ import annotations

import numpy as np

BLOCK_READS = 2048
BLOCK_WINDOWS = 16384
TILE = 16  # the CUDA similarity kernel's square thread block and shared-memory tile
NO_INDEX = np.iinfo(np.int64).max


def empty_top(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Running top-k arrays for ``n`` reads: values -inf, indices NO_INDEX (below every real entry)."""
    return np.full((n, k), -np.inf, dtype=np.float64), np.full((n, k), NO_INDEX, dtype=np.int64)
