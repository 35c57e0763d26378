"""64-bit hashing for the kernels: splitmix64 (Steele, Lea and Flood 2014) and FNV-1a over byte ranges.

``splitmix64`` adds the golden-ratio increment ``GOLDEN_GAMMA`` and applies the finaliser ``mix64``; ``mix64``
alone is a bijection of 64-bit words, which the minimizer index uses so distinct k-mers never collide. Changing
any constant here changes every stored embedding and every minimizer order (see ``helixflow.embedding``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: splitmix64's increment
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True, inline="always")
def mix64(x):
    """splitmix64's finaliser."""
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & MASK64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & MASK64
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def splitmix64(x):
    return mix64((x + GOLDEN_GAMMA) & MASK64)


@njit(cache=True, nogil=True, inline="always")
def hash_bytes(data, start, stop):
    """FNV-1a of ``data[start:stop]`` with the length folded in, then splitmix64 to spread the low bits."""
    h = _FNV_OFFSET
    for i in range(start, stop):
        h = ((h ^ np.uint64(data[i])) * _FNV_PRIME) & MASK64
    return splitmix64(h ^ np.uint64(stop - start))
