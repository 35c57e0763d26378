"""Compact k-mer embeddings: one fixed-size vector per read (or reference window).

Construction (stable: changing any constant changes every stored vector, so bump ``EMBEDDING_VERSION``):
- bases are 2-bit coded (A=0, C=1, G=2, T=3, case-insensitive); a k-mer containing any other symbol
  (N or IUPAC ambiguity) is skipped;
- each k-mer (k = ``K``) is replaced by its canonical form, the smaller 2-bit code of the k-mer and its reverse
  complement, so a read and its reverse complement get the same vector;
- the canonical code is mixed with splitmix64; the low bits pick one of ``DIMS`` dimensions and bit 32 picks a
  sign (+1/-1) - signed feature hashing, so collisions cancel in expectation instead of inflating similarity;
- the signed counts, clipped to the int8 range (``CODE_LIMIT``), are the stored form: the *codes*, one int8 per
  dimension (``STORAGE_DTYPE``), kept as ``fixed_size_binary(DIMS)`` in the Parquet. A count beyond +-127 needs
  127 copies of k-mers hashed to one slot: a low-complexity read (poly-G), whose direction clipping barely moves;
- the vector is the codes L2-normalised (``unit_vectors``; a read without a valid k-mer gets the zero vector), so
  the dot product of two vectors is their cosine similarity; it rises with the number of k-mers the two reads
  share. Storing the codes instead of the normalised vector loses nothing (the per-read scale 1/||codes|| is
  computed from them, never stored) and compresses better: a 150 bp read's codes are mostly 0 and +-1.

Phase 1 writes the codes (``embed_codes_spans``); Phase 2 embeds reference windows and FASTQ reads with the same
functions (``embed_packed`` = codes, then ``unit_vectors``) and searches them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from helixflow.seq.alphabet import BASE_CODE
from helixflow.seq.hashing import splitmix64
from helixflow.seq.packing import pack

EMBEDDING_VERSION = 2  # 1: float16 unit vectors as list<float16>[256]; 2: int8 codes as fixed_size_binary(256)
K = 11
DIMS = 256
STORAGE_DTYPE = np.int8
CODE_LIMIT = 127


@njit(cache=True, inline="always")
def roll_kmer(fwd: np.uint64, rev: np.uint64, code: int, kmask: np.uint64, shift: np.uint64):
    """Append base ``code`` (0-3) to the 2-bit k-mer ``fwd`` and prepend its complement to the reverse
    complement ``rev``; the canonical k-mer is the smaller of the two. Shared by the embedding and the Phase 2
    minimizer index, so both read k-mers the same way."""
    return (((fwd << np.uint64(2)) | np.uint64(code)) & kmask,
            (rev >> np.uint64(2)) | (np.uint64(3 - code) << shift))


@njit(cache=True, nogil=True)
def _count_one(seq: np.ndarray, counts: np.ndarray, code: np.ndarray, k: int) -> int:
    """Signed k-mer counts of ``seq`` added into ``counts`` (zeroed by the caller); returns the number of valid
    k-mers (those free of N/IUPAC letters)."""
    dims = counts.shape[0]
    # h % dims without a 64-bit division per k-mer when dims is a power of two (DIMS is): the same slot.
    mask = np.uint64(dims - 1)
    power_of_two = (dims & (dims - 1)) == 0
    kmask = np.uint64((1 << (2 * k)) - 1)
    shift = np.uint64(2 * (k - 1))
    fwd = np.uint64(0)
    rev = np.uint64(0)
    valid = 0
    kmers = 0
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
            kmers += 1
            canon = fwd if fwd < rev else rev
            h = splitmix64(canon)
            slot = np.int64(h & mask) if power_of_two else np.int64(h % np.uint64(dims))
            if (h >> np.uint64(32)) & np.uint64(1):
                counts[slot] -= 1
            else:
                counts[slot] += 1
    return kmers


@njit(cache=True, nogil=True, inline="always")
def _codes_one(seq: np.ndarray, out: np.ndarray, counts: np.ndarray, code: np.ndarray, k: int) -> int:
    counts[:] = 0
    kmers = _count_one(seq, counts, code, k)
    for j in range(out.shape[0]):
        out[j] = min(max(counts[j], -CODE_LIMIT), CODE_LIMIT)
    return kmers


@njit(cache=True, nogil=True)
def embed_codes_kernel(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray, code: np.ndarray, k: int,
                       dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes int8 (n, dims), valid k-mers per sequence int64 (n,)) of ``buffer[starts[i]:starts[i] + lengths[i]]``,
    serially: Phase 1's kernels are serial, since Phase 1 scales by chunks (a Lambda or a Ray task each)."""
    n = starts.shape[0]
    out = np.zeros((n, dims), dtype=np.int8)
    kmers = np.zeros(n, dtype=np.int64)
    counts = np.zeros(dims, dtype=np.int32)
    for r in range(n):
        kmers[r] = _codes_one(buffer[starts[r]:starts[r] + lengths[r]], out[r], counts, code, k)
    return out, kmers


@njit(cache=True, parallel=True)
def embed_codes_parallel_kernel(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray, code: np.ndarray,
                                k: int, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The same on every core: Phase 2 embeds a whole reference's windows (or all reads of a FASTQ) at once."""
    n = starts.shape[0]
    out = np.zeros((n, dims), dtype=np.int8)
    kmers = np.zeros(n, dtype=np.int64)
    for r in prange(n):
        counts = np.zeros(dims, dtype=np.int32)
        kmers[r] = _codes_one(buffer[starts[r]:starts[r] + lengths[r]], out[r], counts, code, k)
    return out, kmers


@njit(cache=True, parallel=True)
def unit_vectors_kernel(codes: np.ndarray) -> np.ndarray:
    n, dims = codes.shape
    out = np.zeros((n, dims), dtype=np.float32)
    for r in prange(n):
        norm = 0.0
        for j in range(dims):
            norm += float(codes[r, j]) * float(codes[r, j])
        if norm > 0.0:
            inv = 1.0 / np.sqrt(norm)
            for j in range(dims):
                out[r, j] = codes[r, j] * inv
    return out


def _check_k(k: int) -> None:
    if not 1 <= k <= 31:
        raise ValueError(f"k must be in 1..31, got {k}")


def embed_codes_packed(buffer: np.ndarray, offsets: np.ndarray, k: int = K, dims: int = DIMS, *,
                       parallel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The stored form of sequences packed in ``buffer`` (uint8), sequence i at ``buffer[offsets[i]:offsets[i+1]]``:
    (codes int8 (n, dims), valid k-mers per sequence int64 (n,)); on every core with ``parallel``."""
    offsets = np.asarray(offsets, dtype=np.int64)
    return embed_codes_spans(buffer, offsets[:-1], np.diff(offsets), k, dims, parallel=parallel)


def embed_codes_spans(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, k: int = K, dims: int = DIMS, *,
                      parallel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The same for sequences read in place, sequence i at ``data[starts[i]:starts[i] + lengths[i]]`` (Phase 1
    embeds the trimmed spans of a batch's records without copying them out first)."""
    _check_k(k)
    kernel = embed_codes_parallel_kernel if parallel else embed_codes_kernel
    return kernel(np.ascontiguousarray(data, dtype=np.uint8), np.ascontiguousarray(starts, dtype=np.int64),
                  np.ascontiguousarray(lengths, dtype=np.int64), BASE_CODE, k, dims)


def unit_vectors(codes: np.ndarray) -> np.ndarray:
    """The embedding vectors of stored codes: float32 (n, dims), rows L2-normalised (zero rows stay zero)."""
    return unit_vectors_kernel(np.ascontiguousarray(codes, dtype=np.int8))


def embed_packed(buffer: np.ndarray, offsets: np.ndarray, k: int = K, dims: int = DIMS) -> np.ndarray:
    """Embed packed sequences (see ``embed_codes_packed``; on every core). Returns float32 (n, dims), rows
    L2-normalised."""
    return unit_vectors(embed_codes_packed(buffer, offsets, k, dims, parallel=True)[0])


def embed(sequences: Sequence[bytes], k: int = K, dims: int = DIMS) -> np.ndarray:
    """Embed a list of sequences (bytes). Returns float32 (n, dims)."""
    buffer, offsets = pack(sequences)
    return embed_packed(buffer, offsets, k, dims)


def codes_from_column(column) -> np.ndarray:
    """The codes of an Arrow ``embedding`` column (``fixed_size_binary(DIMS)``, chunked or not) as int8
    (n, DIMS), from its data buffer without per-row objects."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = array.type.byte_width
    if len(array) == 0:
        return np.zeros((0, width), dtype=np.int8)
    data = np.frombuffer(array.buffers()[1], dtype=np.int8)
    return data[array.offset * width:(array.offset + len(array)) * width].reshape(len(array), width)


def codes_column(codes: np.ndarray):
    """Arrow ``fixed_size_binary(DIMS)`` array of int8 codes (n, DIMS), zero-copy."""
    import pyarrow as pa

    codes = np.ascontiguousarray(codes, dtype=np.int8)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(codes.shape[1]), codes.shape[0],
                                                [None, pa.py_buffer(codes)])


def parquet_schema():
    """Schema of results/<sample>/<run_id>/embeddings/<sample>.parquet: one row per read that passed filtering.

    ``mate`` is 1 or 2 for paired input and 0 for single-end; ``embedding`` holds the ``DIMS`` int8 codes as raw
    bytes (no per-value nesting, so no repetition/definition levels to write or read). The trimmed sequences and
    qualities are not repeated here: row i is record i of the trimmed FASTQ (mates interleaved: R1 of a pair,
    then its R2), which Phase 2 reads beside it (``helixflow.phase2.reads``); with them this file was 2.8x its
    own size (199 against 71 B per 150 bp read). Files written before that (version 2 too) also hold
    ``sequence`` and ``quality`` strings, and Phase 2 still reads them alone. The construction parameters ride
    along as schema metadata so a reader can refuse vectors built differently."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("read_id", pa.string(), nullable=False),
            pa.field("mate", pa.int8(), nullable=False),
            pa.field("embedding", pa.binary(DIMS), nullable=False),
        ],
        metadata={
            b"helixflow.embedding.version": str(EMBEDDING_VERSION).encode(),
            b"helixflow.embedding.k": str(K).encode(),
            b"helixflow.embedding.dims": str(DIMS).encode(),
            b"helixflow.embedding.canonical": b"true",
            b"helixflow.embedding.hash": b"splitmix64-signed",
            b"helixflow.embedding.storage": b"int8-signed-counts",
        },
    )
