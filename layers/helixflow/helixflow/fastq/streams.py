"""Open a binary source and yield its decompressed bytes in bounded chunks.

The format is decided by the first bytes (magic numbers), never by the file name, because objects arrive
under arbitrary keys:

* gzip magic ``1f 8b``: gzip, decompressed member by member with ISA-L (``isal.isal_zlib``), so that
  multi-member files (``cat a.gz b.gz``, ``pigz --independent``) and BGZF (gzip members carrying a ``BC``
  extra subfield, as written by ``bgzip`` and htslib) are read to the end. The format is reported as
  ``"bgzf"`` when the first member carries the ``BC`` subfield, ``"gzip"`` otherwise.
* bzip2, xz, zstd, lz4 and zip magic: ``UNSUPPORTED_COMPRESSION`` (named, so the user knows to recompress).
* anything else: ``"none"``, passed through as uncompressed text; the FASTQ validator decides whether it is
  FASTQ.

``detect_compression`` (first bytes) and ``detect_format`` (a path) are the one format detector: the
validator, the Phase 1 reader and the Lambda chunk planner all call them, so they agree on "none" / "gzip" /
"bgzf".

Decompression is a loop over ``decompressobj`` that this module controls rather than ``gzip.GzipFile``,
which makes the three gzip defects distinguishable and locatable:

* ``TRUNCATED_GZIP``: the input ends inside a member (an interrupted upload or copy).
* ``TRAILING_GARBAGE``: bytes after the last member that do not start another member. Strict on purpose,
  including the zero padding that ``gzip -d`` tolerates with a warning: an object in the bucket should be
  exactly what was written.
* ``CORRUPT_GZIP``: invalid deflate data, a bad header, or a CRC-32 / length mismatch in a member trailer.

Each carries the decompressed byte offset reached (``Position.byte_offset``) and, in ``details``, the
failing member (``member``, 1-based), where it starts in the compressed file (``member_offset``) and in the
decompressed stream (``member_start``), and how far the inflater had consumed its input
(``compressed_offset``). Record and line are filled in by the validator, which knows them.

The positions do not depend on ``chunk_size`` or on how the source splits its reads: the inflater is fed
the compressed bytes in fixed ``read_size`` pieces and each call is capped at ``INFLATE_STEP`` output bytes,
so the sequence of calls, and hence where the failing one starts, is a function of the file's bytes alone;
the output is then cut into ``chunk_size`` chunks. A failing call's own output is lost (zlib reports the
error instead), so ``byte_offset`` for ``CORRUPT_GZIP`` is exact to within ``INFLATE_STEP`` bytes.

Memory is bounded: the source is read ``read_size`` bytes at a time and every decompression call is capped
at ``INFLATE_STEP`` output bytes, so a highly compressible member cannot expand into one huge buffer.
The SHA-256 of the bytes as stored is computed on the way (cheap next to inflating them), for manifests.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from typing import Protocol

from isal import isal_zlib

from helixflow.errors import InvalidFastq, Position
from helixflow.fastq.bgzf import GZIP_MAGIC, HEADER_BYTES, block_size

DEFAULT_CHUNK_SIZE = 1 << 20  # decompressed bytes per chunk handed to the validator
DEFAULT_READ_SIZE = 1 << 18  # compressed bytes per read from the source
INFLATE_STEP = 1 << 16  # decompressed bytes per inflate call, whatever the chunk size (see above)

_GZIP_WBITS = 31  # 16 + 15: a gzip wrapper around a 32 KiB-window deflate stream

# Magic numbers of containers we recognise but do not read. Checked in order; the first match wins.
_UNSUPPORTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"PK\x03\x04", "zip"),
)
MAGIC_PEEK = HEADER_BYTES  # enough for every magic above and for a gzip header up to the BGZF 'BC' subfield


def detect_compression(head: bytes, name: str) -> str:
    """"none", "gzip" or "bgzf" from the first ``MAGIC_PEEK`` bytes (fewer only when the input is shorter);
    ``InvalidFastq`` UNSUPPORTED_COMPRESSION for a container we recognise but do not read."""
    for magic, label in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            raise InvalidFastq(
                f"the input is {label}-compressed; only uncompressed, gzip and BGZF FASTQ are supported "
                f"(recompress with gzip or bgzip)",
                code="UNSUPPORTED_COMPRESSION", position=Position(file=name, byte_offset=0),
                details={"compression": label})
    if not head.startswith(GZIP_MAGIC):
        return "none"
    return "bgzf" if block_size(head) is not None else "gzip"


def detect_format(path: str | os.PathLike) -> str:
    """``detect_compression`` of a local file."""
    with open(path, "rb") as fh:
        return detect_compression(fh.read(MAGIC_PEEK), os.fspath(path))


class BinarySource(Protocol):
    """What the validator reads: a local file opened 'rb' or a botocore StreamingBody."""

    def read(self, size: int = -1, /) -> bytes: ...


class DecompressedStream:
    """Iterate decompressed chunks of ``source``; after iteration, the counters describe the input.

    ``compression`` is known right after construction (it reads the first bytes to decide), so a caller can
    report the format even when validation later fails.
    """

    def __init__(self, source: BinarySource, *, name: str, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 read_size: int = DEFAULT_READ_SIZE, progress: Callable[[int], None] | None = None,
                 compression: str | None = None) -> None:
        self.name = name
        self._source = source
        self._chunk_size = chunk_size
        self._read_size = read_size
        self._progress = progress
        self._sha256 = hashlib.sha256()
        self._source_done = False
        self.compressed_bytes = 0  # bytes read from the source so far
        self.decompressed_bytes = 0  # bytes yielded so far
        self.gzip_members = 0
        self.member_start = 0  # decompressed offset where the current (or last) gzip member starts
        self.member_open = False  # inside a gzip member whose end (and CRC check) is not reached yet
        self._head = self._read_exactly(MAGIC_PEEK)
        # A caller that already decompressed (a chunk of a larger file) says so: its bytes are text, even
        # where they happen to start like a container.
        self.compression = compression or detect_compression(self._head, self.name)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes read from the source (the whole input once iteration has finished)."""
        return self._sha256.hexdigest()

    def __iter__(self) -> Iterator[bytes]:
        if self.compression == "none":
            return self._plain_chunks()
        return self._rechunked(self._gzip_chunks())

    # -- reading the source ---------------------------------------------------------------------------------

    def _read(self, size: int | None = None) -> bytes:
        """One read from the source; b"" only at its end."""
        if self._source_done:
            return b""
        data = self._source.read(size or self._read_size)
        if not data:
            self._source_done = True
            return b""
        self.compressed_bytes += len(data)
        self._sha256.update(data)
        if self._progress is not None:
            self._progress(len(data))
        return data

    def _read_exactly(self, size: int) -> bytes:
        """Exactly ``size`` bytes, fewer only at the end: a streaming body may return fewer than asked for
        before its end, and the inflater's input pieces must not depend on that."""
        data = b""
        while len(data) < size:
            more = self._read(size - len(data))
            if not more:
                break
            data += more
        return data

    # -- plain ----------------------------------------------------------------------------------------------

    def _plain_chunks(self) -> Iterator[bytes]:
        pending = self._head
        while True:
            while len(pending) < self._chunk_size:
                # Uncompressed input is read a whole chunk at a time: no inflating to interleave with.
                more = self._read(self._chunk_size - len(pending))
                if not more:
                    break
                pending += more
            if not pending:
                return
            chunk, pending = pending[: self._chunk_size], pending[self._chunk_size:]
            self.decompressed_bytes += len(chunk)
            yield chunk

    # -- gzip -----------------------------------------------------------------------------------------------

    def _gzip_chunks(self) -> Iterator[bytes]:
        data = self._head  # compressed bytes not yet given to a decompressor
        data_offset = 0  # compressed offset of data[0]
        while True:
            # Between members: the rest must be empty or start another member.
            if len(data) < len(GZIP_MAGIC):
                data += self._read_exactly(len(GZIP_MAGIC) - len(data))
            if not data:
                return
            if not data.startswith(GZIP_MAGIC):
                raise self._error(
                    "TRAILING_GARBAGE",
                    f"the bytes after the last gzip member (from compressed byte {data_offset}) do not start "
                    f"another gzip member",
                    member_offset=data_offset, compressed_offset=data_offset)
            member_offset = data_offset
            self.gzip_members += 1
            self.member_start = self.decompressed_bytes
            self.member_open = True
            inflater = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
            while not inflater.eof:
                if not data:
                    data = self._read_exactly(self._read_size)
                if not data:
                    # The source is exhausted. The inflater may still hold output it produced without needing
                    # more input (capped by INFLATE_STEP last time); drain that before judging the member cut.
                    out = self._inflate(inflater, b"", member_offset, data_offset)
                    if out:
                        self.decompressed_bytes += len(out)
                        yield out
                        continue
                    raise self._error(
                        "TRUNCATED_GZIP",
                        f"the gzip stream ends inside member {self.gzip_members} (started at compressed byte "
                        f"{member_offset}); the file was cut short",
                        member_offset=member_offset, compressed_offset=data_offset)
                out = self._inflate(inflater, data, member_offset, data_offset)
                # Input the inflater did not take is either held back by the output cap (unconsumed_tail) or,
                # once the member has ended, the bytes after it (unused_data).
                rest = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                # At its end ISA-L has checked the member's CRC and length: its data can be trusted.
                self.member_open = not inflater.eof
                data_offset += len(data) - len(rest)
                data = rest
                if out:
                    self.decompressed_bytes += len(out)
                    yield out

    def _rechunked(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        """Cut the inflate outputs (at most INFLATE_STEP bytes each; a BGZF member inflates to at most 64 KiB)
        into chunks of exactly chunk_size, the last one shorter: the validator's per-chunk overhead stays small
        next to its per-byte work, and a small chunk size really puts chunk boundaries everywhere."""
        size = self._chunk_size
        pending = b""
        try:
            for piece in pieces:
                pending += piece
                start = 0  # cut by offset: re-slicing the rest after every chunk is quadratic for tiny chunks
                while len(pending) - start >= size:
                    yield pending[start:start + size]
                    start += size
                pending = pending[start:]
        except InvalidFastq:
            # Hand over what was inflated before the defect first: the validator needs it to place the gzip
            # error at the right record and line (or to find a defect that comes earlier in the file).
            if pending:
                yield pending
            raise
        if pending:
            yield pending

    def _inflate(self, inflater, data: bytes, member_offset: int, data_offset: int) -> bytes:
        try:
            return inflater.decompress(data, INFLATE_STEP)
        except isal_zlib.error as exc:
            raise self._error(
                "CORRUPT_GZIP",
                f"gzip member {self.gzip_members} (starts at compressed byte {member_offset}, decompressed byte "
                f"{self.member_start}) is corrupt: {exc}; inflating it stopped at compressed byte {data_offset}, "
                f"decompressed byte {self.decompressed_bytes} (within {INFLATE_STEP} bytes)",
                member_offset=member_offset, compressed_offset=data_offset) from None

    def _error(self, code: str, message: str, *, member_offset: int, compressed_offset: int) -> InvalidFastq:
        return InvalidFastq(
            message, code=code, position=Position(file=self.name, byte_offset=self.decompressed_bytes),
            details={"member": self.gzip_members, "member_offset": member_offset,
                     "member_start": self.member_start, "compressed_offset": compressed_offset})
