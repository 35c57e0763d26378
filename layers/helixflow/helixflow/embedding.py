"""Compact k-mer embeddings: one fixed-size vector per read (or reference window).

Construction (stable: changing any constant changes every stored vector, so bump ``EMBEDDING_VERSION``):
- bases are 2-bit coded (A=0, C=1, G=2, T=3, case-insensitive); a k-mer containing any other symbol
  (N or IUPAC ambiguity) is skipped;
- each k-mer (k = ``K``) is replaced by its canonical form, the smaller 2-bit code of the k-mer and its reverse
  complement, so a read and its reverse complement get the same vector;
- the canonical code is mixed with splitmix64; the low bits pick one of ``DIMS`` dimensions and bit 32 picks a
  sign (+1/-1) - signed feature hashing, so collisions cancel in expectation instead of inflating similarity;
- the counts are L2-normalised (a read without a valid k-mer gets the zero vector), so the dot product of two
  vectors is their cosine similarity; it rises with the number of k-mers the two reads share;
- stored as float16 (``STORAGE_DTYPE``), computed in float32.

Phase 1 writes these vectors; Phase 2 embeds reference windows with the same function and searches them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from helixflow.seq.alphabet import BASE_CODE
from helixflow.seq.hashing import splitmix64
from helixflow.seq.packing import pack

EMBEDDING_VERSION = 1
K = 11
DIMS = 256
STORAGE_DTYPE = np.float16


@njit(cache=True, inline="always")
def roll_kmer(fwd: np.uint64, rev: np.uint64, code: int, kmask: np.uint64, shift: np.uint64):
    """Append base ``code`` (0-3) to the 2-bit k-mer ``fwd`` and prepend its complement to the reverse
    complement ``rev``; the canonical k-mer is the smaller of the two. Shared by the embedding and the Phase 2
    minimizer index, so both read k-mers the same way."""
    return (((fwd << np.uint64(2)) | np.uint64(code)) & kmask,
            (rev >> np.uint64(2)) | (np.uint64(3 - code) << shift))


@njit(cache=True)
def _embed_one(seq: np.ndarray, out: np.ndarray, code: np.ndarray, k: int) -> None:
    dims = out.shape[0]
    kmask = np.uint64((1 << (2 * k)) - 1)
    shift = np.uint64(2 * (k - 1))
    fwd = np.uint64(0)
    rev = np.uint64(0)
    valid = 0
    for i in range(seq.shape[0]):
        c = code[seq[i]]
        if c > 3:
            valid = 0
            fwd = np.uint64(0)
            rev = np.uint64(0)
            continue
        fwd, rev = roll_kmer(fwd, rev, c, kmask, shift)
        valid += 1
        if valid >= k:
            canon = fwd if fwd < rev else rev
            h = splitmix64(canon)
            slot = np.int64(h % np.uint64(dims))
            if (h >> np.uint64(32)) & np.uint64(1):
                out[slot] -= 1.0
            else:
                out[slot] += 1.0
    norm = 0.0
    for j in range(dims):
        norm += out[j] * out[j]
    if norm > 0.0:
        inv = 1.0 / np.sqrt(norm)
        for j in range(dims):
            out[j] *= inv


@njit(cache=True, parallel=True)
def embed_packed_kernel(buffer: np.ndarray, offsets: np.ndarray, code: np.ndarray, k: int,
                        dims: int) -> np.ndarray:
    n = offsets.shape[0] - 1
    out = np.zeros((n, dims), dtype=np.float32)
    for r in prange(n):
        _embed_one(buffer[offsets[r]:offsets[r + 1]], out[r], code, k)
    return out


def embed_packed(buffer: np.ndarray, offsets: np.ndarray, k: int = K, dims: int = DIMS) -> np.ndarray:
    """Embed sequences stored back to back in ``buffer`` (uint8), sequence i at
    ``buffer[offsets[i]:offsets[i+1]]``. Returns float32 (n, dims), rows L2-normalised."""
    if not 1 <= k <= 31:
        raise ValueError(f"k must be in 1..31, got {k}")
    return embed_packed_kernel(np.ascontiguousarray(buffer, dtype=np.uint8),
                               np.ascontiguousarray(offsets, dtype=np.int64), BASE_CODE, k, dims)


def embed(sequences: Sequence[bytes], k: int = K, dims: int = DIMS) -> np.ndarray:
    """Embed a list of sequences (bytes). Returns float32 (n, dims)."""
    buffer, offsets = pack(sequences)
    return embed_packed(buffer, offsets, k, dims)


def parquet_schema():
    """Schema of results/<sample>/<run_id>/embeddings/<sample>.parquet: one row per read that passed filtering.

    ``mate`` is 1 or 2 for paired input and 0 for single-end; ``sequence``/``quality`` are the trimmed read, so
    Phase 2 can align and write SAM without reopening the FASTQ. The construction parameters ride along as
    schema metadata so a reader can refuse vectors built differently."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("read_id", pa.string(), nullable=False),
            pa.field("mate", pa.int8(), nullable=False),
            pa.field("sequence", pa.string(), nullable=False),
            pa.field("quality", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float16(), DIMS), nullable=False),
        ],
        metadata={
            b"helixflow.embedding.version": str(EMBEDDING_VERSION).encode(),
            b"helixflow.embedding.k": str(K).encode(),
            b"helixflow.embedding.dims": str(DIMS).encode(),
            b"helixflow.embedding.canonical": b"true",
            b"helixflow.embedding.hash": b"splitmix64-signed",
        },
    )
