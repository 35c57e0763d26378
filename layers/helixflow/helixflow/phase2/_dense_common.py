"""Shared pieces of the dense searcher's top-k (CPU twin ``dense_cpu``, CUDA twin ``dense_cuda``): the
blocking that bounds memory (CPU and device sizes) and the empty top-k arrays. Both twins import this module and neither imports the
other; ``dense`` chooses between them. The block sizes are read at call time, so tests can shrink them."""

from __future__ import annotations

import numpy as np

# 256 x 2048 float32 dot products (2 MiB) stay in cache between the matmul that writes them and the merge that
# reads them; 2048 x 16384 (128 MiB) went through memory and cost a quarter more.
BLOCK_READS = 256
BLOCK_WINDOWS = 2048
# On a GPU a block is one launch, and the merge runs one thread per read: a larger block keeps the device busy.
DEVICE_BLOCK_READS = 8192
DEVICE_BLOCK_WINDOWS = 16384
TILE = 16  # the CUDA similarity kernel's square thread block and shared-memory tile
NO_INDEX = np.iinfo(np.int64).max


def empty_top(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Running top-k arrays for ``n`` reads: values -inf, indices NO_INDEX (below every real entry)."""
    return np.full((n, k), -np.inf, dtype=np.float64), np.full((n, k), NO_INDEX, dtype=np.int64)
