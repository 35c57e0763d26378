"""Packed sequences: many byte strings back to back in one uint8 buffer, string i at
``buffer[offsets[i]:offsets[i + 1]]`` (int64 offsets of length n + 1). Every kernel that takes sequences takes
them this way; this module builds and slices such buffers with numpy (the Numba forms used on hot paths are in
``packed_kernels``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    """int64 offsets (n + 1,) of strings with these lengths placed back to back."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def gather_index(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, offsets): ``source[index]`` is the ranges [start, start + length) of ``source`` back to back,
    and ``offsets`` locates each range in it."""
    offsets = offsets_from_lengths(lengths)
    return np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1]), offsets


def gather(source: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The ranges [start, start + length) of ``source``, back to back."""
    return source[gather_index(starts, lengths)[0]]


def pack(sequences: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate byte strings into (buffer, offsets)."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    return np.frombuffer(b"".join(sequences), dtype=np.uint8), offsets_from_lengths(lengths)


def pack_text(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate strings, UTF-8 encoded, into (buffer, offsets): one encode of the joined text when it is ASCII
    (then characters are bytes; read ids and contig names almost always are), one per string otherwise."""
    joined = "".join(values)
    if not joined.isascii():
        return pack([value.encode() for value in values])
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    return np.frombuffer(joined.encode(), dtype=np.uint8), offsets_from_lengths(lengths)
