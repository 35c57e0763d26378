"""Streaming FASTQ reader over batches of records, for plain, gzip and BGZF input.

A batch is one contiguous block of decompressed bytes plus integer arrays that locate each record's header,
sequence and quality inside it, so the kernels work on the raw bytes without building Python objects per read.
Memory is bounded by the block size (``BLOCK_BYTES``, grown only for a single record larger than a block).

Line indexing is vectorised (numpy over newline positions); a record is exactly four lines. The reader assumes
input that ``helixflow.fastq`` validated, but it still raises ``InvalidFastq`` with a code and a position
(1-based record and line, 0-based byte offset into the decompressed stream) instead of mis-parsing when a
header does not start with ``@``, the separator with ``+``, sequence and quality lengths differ, or the file
ends inside a record. A trailing ``\\r`` is not part of a line (CRLF files parse like LF files).

Chunks: ``Chunk`` names a record-aligned piece of a file so that independent workers (the Lambda path) can
process pieces and merge them exactly:
- plain text: ``offset`` is the byte offset of the first record, ``length`` the bytes in the chunk;
- BGZF: ``offset`` is the compressed offset of a BGZF block, ``skip`` the decompressed bytes to skip inside
  it to reach the first record, ``length`` the decompressed bytes in the chunk (a virtual-offset range);
- any gzip (one member, not seekable): ``record_start``/``record_stop`` select records of the stream.
``plan_chunks`` produces such chunks for one file or a mate pair (same records in both mates).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from helixflow.errors import InvalidFastq, Position
from helixflow.fastq.bgzf import block_offsets
from helixflow.fastq.streams import detect_format
from helixflow.phase1.kernels.records import record_lines

BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Chunk:
    path: str
    offset: int = 0
    skip: int = 0
    length: int | None = None
    record_start: int = 0
    record_stop: int | None = None
    first_record: int = 0
    """0-based index in the file of the chunk's first record (only for error positions)."""
    first_byte: int = 0
    """Decompressed offset of the chunk's first byte in the file (only for error positions)."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> "Chunk":
        return cls(**data)


def whole_file(path: str | os.PathLike) -> Chunk:
    return Chunk(path=os.fspath(path))


@dataclass
class RecordBatch:
    """Records ``0..n-1`` of ``data``; ``first_record`` is the 0-based index of record 0 in its file."""

    data: np.ndarray
    name_start: np.ndarray
    name_end: np.ndarray
    seq_start: np.ndarray
    seq_len: np.ndarray
    qual_start: np.ndarray
    first_record: int
    first_byte: int

    @property
    def n(self) -> int:
        return int(self.seq_len.shape[0])

    def record_end(self, i: int) -> int:
        """Byte just past record i's quality line and its newline."""
        end = int(self.qual_start[i] + self.seq_len[i])
        while end < self.data.shape[0] and self.data[end] != 10:
            end += 1
        return end + 1


def _decompressed_stream(raw: io.BufferedReader, fmt: str, threads: int):
    if fmt == "none":
        return raw
    from isal import igzip, igzip_threaded

    if threads > 0:
        # isal's reader thread keeps two blocks ahead: blocks of half a batch let it hold a whole batch ready
        # (its 1 MiB default left the transform waiting for most of every 8 MiB batch: 0.9 s of 2 M reads).
        return igzip_threaded.open(raw, "rb", threads=1, block_size=BLOCK_BYTES // 2)
    return igzip.IGzipFile(fileobj=raw, mode="rb")


class FastqReader:
    """Iterates ``RecordBatch`` objects over one ``Chunk``. ``progress`` reports compressed bytes consumed."""

    def __init__(self, chunk: Chunk, *, decompress_thread: bool = True, block_bytes: int | None = None):
        self.chunk = chunk
        self.format = detect_format(chunk.path)
        self._raw = open(chunk.path, "rb")
        self._raw.seek(chunk.offset)
        self._stream = _decompressed_stream(self._raw, self.format, 1 if decompress_thread else 0)
        self._block = block_bytes or BLOCK_BYTES
        self._pending = b""
        self._remaining = chunk.length
        self._eof = False
        self._record = chunk.first_record
        self._byte = chunk.first_byte
        self._to_skip_records = chunk.record_start
        self._records_left = None if chunk.record_stop is None else chunk.record_stop - chunk.record_start
        self._skip_bytes(chunk.skip)

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def __enter__(self) -> "FastqReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def compressed_position(self) -> int:
        return self._raw.tell()

    def _skip_bytes(self, n: int) -> None:
        while n > 0:
            got = self._stream.read(min(n, self._block))
            if not got:
                raise InvalidFastq("chunk starts past the end of the file", code="CHUNK_OUT_OF_RANGE",
                                   position=Position(file=self.chunk.path, byte_offset=self._byte))
            n -= len(got)

    def _read_more(self, want: int) -> bytes:
        if self._remaining is not None:
            want = min(want, self._remaining)
        data = self._stream.read(want) if want > 0 else b""
        if self._remaining is not None:
            self._remaining -= len(data)
        if not data:
            self._eof = True
        return data

    def next_batch(self, limit: int | None = None) -> RecordBatch | None:
        """The next records (at most ``limit``), or None at the end of the chunk."""
        while True:
            if self._records_left == 0:
                return None
            batch = self._next_raw_batch(limit if self._records_left is None
                                         else min(limit or self._records_left, self._records_left))
            if batch is None:
                return None
            if self._to_skip_records:
                drop = min(self._to_skip_records, batch.n)
                self._to_skip_records -= drop
                batch = slice_batch(batch, drop, batch.n)
                if batch.n == 0:
                    continue
            if self._records_left is not None:
                self._records_left -= batch.n
            return batch

    def push_back(self, batch: RecordBatch, keep: int) -> None:
        """Un-read records ``keep..n-1`` of the batch last returned (mates must advance in lockstep)."""
        if keep >= batch.n:
            return
        start = int(batch.name_start[keep]) - 1
        tail = batch.data[start:].tobytes()
        consumed_end = batch.record_end(batch.n - 1)
        self._pending = tail[: consumed_end - start] + self._pending
        self._record -= batch.n - keep
        self._byte -= consumed_end - start
        if self._records_left is not None:
            self._records_left += batch.n - keep

    def _next_raw_batch(self, limit: int | None) -> RecordBatch | None:
        want = self._block
        while True:
            if not self._eof and len(self._pending) < want:
                self._pending += self._read_more(want - len(self._pending))
            if not self._pending:
                return None
            data = np.frombuffer(self._pending, dtype=np.uint8)
            index = _index_records(data, self._eof, limit)
            if index is None:
                if self._eof:
                    self._raise_truncated(data)
                want = max(want, len(self._pending)) * 2
                continue
            batch = _batch_from_index(data, index, self._record, self._byte, self.chunk.path)
            self._pending = self._pending[index.consumed:]
            self._record += batch.n
            self._byte += index.consumed
            return batch

    def _raise_truncated(self, data: np.ndarray) -> None:
        lines = int(np.count_nonzero(data == 10)) + (1 if data.shape[0] and data[-1] != 10 else 0)
        record = self._record + 1
        raise InvalidFastq(f"the file ends inside a record ({lines} of 4 lines present)",
                           code="TRUNCATED_RECORD",
                           position=Position(file=self.chunk.path, record=record, line=4 * (record - 1) + lines + 1,
                                             byte_offset=self._byte + data.shape[0]))


@dataclass
class _Index:
    consumed: int
    line_start: np.ndarray
    """(n, 4) first byte of each record's four lines."""
    line_end: np.ndarray
    """(n, 4) end of each line, excluding the newline and a trailing carriage return."""


def _index_records(data: np.ndarray, at_eof: bool, limit: int | None) -> _Index | None:
    """Locate complete records in ``data``. None when not even one record is complete."""
    newlines = np.flatnonzero(data == 10)
    if at_eof and data.shape[0] and data[-1] != 10:
        newlines = np.append(newlines, data.shape[0])
    n = newlines.shape[0] // 4
    if limit is not None:
        n = min(n, limit)
    if n == 0:
        return None
    starts, ends = record_lines(data, newlines, n)
    return _Index(min(int(newlines[4 * n - 1]) + 1, data.shape[0]), starts, ends)


def _batch_from_index(data: np.ndarray, index: _Index, first_record: int, first_byte: int,
                      path: str) -> RecordBatch:
    starts, line_end = index.line_start, index.line_end
    seq_len = line_end[:, 1] - starts[:, 1]
    bad_header = (data[starts[:, 0]] != 64) | (line_end[:, 0] == starts[:, 0])
    bad_plus = data[np.minimum(starts[:, 2], data.shape[0] - 1)] != 43
    bad_len = (line_end[:, 3] - starts[:, 3]) != seq_len
    if bad_header.any() or bad_plus.any() or bad_len.any():
        checks = [(bad_header, 0, "HEADER_NOT_AT", "header line does not start with '@'"),
                  (bad_plus, 2, "SEPARATOR_NOT_PLUS", "separator line does not start with '+'"),
                  (bad_len, 3, "SEQ_QUAL_LENGTH_MISMATCH", "sequence and quality lengths differ")]
        first = min(int(np.argmax(mask)) for mask, *_ in checks if mask.any())
        for mask, line, code, message in checks:
            if mask[first]:
                record = first_record + first + 1
                raise InvalidFastq(message, code=code,
                                   position=Position(file=path, record=record, line=4 * (record - 1) + line + 1,
                                                     byte_offset=first_byte + int(starts[first, line])))
    return RecordBatch(data[: index.consumed], starts[:, 0] + 1, line_end[:, 0], starts[:, 1], seq_len,
                       starts[:, 3], first_record, first_byte)


def slice_batch(batch: RecordBatch, lo: int, hi: int) -> RecordBatch:
    return replace(batch, name_start=batch.name_start[lo:hi], name_end=batch.name_end[lo:hi],
                   seq_start=batch.seq_start[lo:hi], seq_len=batch.seq_len[lo:hi],
                   qual_start=batch.qual_start[lo:hi], first_record=batch.first_record + lo)


def iter_batches(chunk: Chunk, *, decompress_thread: bool = True) -> Iterator[RecordBatch]:
    with FastqReader(chunk, decompress_thread=decompress_thread) as reader:
        while (batch := reader.next_batch()) is not None:
            yield batch


# --- chunk planning -------------------------------------------------------------------------------------

def _record_boundaries(path: str, every_bytes: int) -> tuple[list[int], list[int], int]:
    """Decompressed offsets and record indexes of record starts roughly every ``every_bytes``."""
    offsets, records = [0], [0]
    total_records = 0
    next_cut = every_bytes
    for batch in iter_batches(whole_file(path)):
        ends_at = batch.first_byte + batch.data.shape[0]
        while next_cut < ends_at:
            starts = batch.first_byte + batch.name_start - 1
            i = int(np.searchsorted(starts, next_cut))
            if i < batch.n:
                offsets.append(int(starts[i]))
                records.append(batch.first_record + i)
            next_cut += every_bytes
        total_records = batch.first_record + batch.n
    return offsets, records, total_records


def plan_chunks(path: str, target_bytes: int, mate: str | None = None) -> list[Chunk] | list[tuple[Chunk, Chunk]]:
    """Record-aligned chunks of about ``target_bytes`` decompressed bytes each.

    For a mate pair the cuts fall on the same record indexes in both files (the cut points are taken from the
    first mate), and the result is a list of (R1 chunk, R2 chunk)."""
    offsets, records, total = _record_boundaries(path, target_bytes)
    if mate is None:
        return _chunks_at(path, offsets, records, total)
    mate_offsets = _offsets_of_records(mate, records)
    return list(zip(_chunks_at(path, offsets, records, total), _chunks_at(mate, mate_offsets, records, total)))


def _offsets_of_records(path: str, records: list[int]) -> list[int]:
    wanted = list(records)
    found = []
    for batch in iter_batches(whole_file(path)):
        while wanted and wanted[0] < batch.first_record + batch.n:
            found.append(batch.first_byte + int(batch.name_start[wanted[0] - batch.first_record]) - 1)
            wanted.pop(0)
        if not wanted:
            break
    if wanted:
        raise InvalidFastq("the mate file has fewer records than the first file", code="PAIR_COUNT_MISMATCH",
                           position=Position(file=path, record=wanted[0] + 1))
    return found


def _chunks_at(path: str, offsets: list[int], records: list[int], total_records: int) -> list[Chunk]:
    fmt = detect_format(path)
    ends = offsets[1:] + [None]
    rec_ends = records[1:] + [total_records]
    chunks = []
    if fmt == "gzip":
        for off, rec, rec_end in zip(offsets, records, rec_ends):
            chunks.append(Chunk(path, record_start=rec, record_stop=rec_end, first_record=0, first_byte=0))
        return chunks
    if fmt == "bgzf":
        comp, decomp = block_offsets(path)
    for off, end, rec in zip(offsets, ends, records):
        length = None if end is None else end - off
        if fmt == "none":
            chunks.append(Chunk(path, offset=off, length=length, first_record=rec, first_byte=off))
        else:
            block = int(np.searchsorted(decomp, off, side="right")) - 1
            chunks.append(Chunk(path, offset=int(comp[block]), skip=off - int(decomp[block]), length=length,
                                first_record=rec, first_byte=off))
    return chunks
