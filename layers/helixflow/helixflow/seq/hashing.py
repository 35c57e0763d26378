"""64-bit hashing for the kernels: splitmix64 (Steele, Lea and Flood 2014) and FNV-1a over the words of byte ranges.

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
    """Hash of ``data[start:stop]``: FNV-1a's step over its 8-byte words (little-endian) and then its last bytes
    packed into one word, the length folded in, then splitmix64 to spread the bits. A word per step, where
    FNV-1a's byte per step made a chain of a multiply per base (a tenth of Phase 1's transform). Equal byte ranges
    hash equal; the duplication and read samples only need the hashes spread uniformly."""
    h = _FNV_OFFSET
    span = data[start:stop]
    n = span.shape[0]
    whole = n >> 3
    words = span[:whole << 3].view(np.uint64)
    for i in range(whole):
        h = ((h ^ words[i]) * _FNV_PRIME) & MASK64
    tail = np.uint64(0)
    for i in range(whole << 3, n):
        tail = (tail << np.uint64(8)) | np.uint64(span[i])
    h = ((h ^ tail) * _FNV_PRIME) & MASK64
    return splitmix64(h ^ np.uint64(n))
