"""Random access to the decompressed bytes of an input as stored, so chunk runners read only their own part.

- plain text: decompressed offset = stored offset;
- BGZF: independent blocks; the plan's pass notes every block's (compressed, decompressed) offset and a chunk
  reads the whole blocks that cover its span (``bgzf_range``);
- plain gzip (one deflate stream, no block boundaries): the plan's pass builds a seek index with
  ``indexed_gzip`` (zran: a deflate checkpoint with its 32 KiB window every ``spacing`` decompressed bytes;
  chosen over rapidgzip after measuring both here: benchmarks/distributed_validation.py) and a chunk reader
  imports it and starts inflating at the checkpoint before its first byte. Nothing is re-compressed.

``scan_input`` is that one pass over a mate (the pipeline runs one per mate, in parallel: ScanMates): it also
feeds a ``CutFinder`` (line count, the offsets of the grid records chunks may start at), hashes the bytes as
stored, counts members, and keeps the first bytes (adapter detection). For plain gzip zran only builds the index
and isal inflates the bytes (``_Inflater``), so every byte is inflated by zlib once and by isal once. zran holds
the GIL for the whole of ``build_full_index`` (measured: a thread hashing beside it gains nothing), so given a way
to open the input again (``reopen``, picklable) a large gzip input's index is built in a second process reading
its own copy of the bytes while this one hashes, inflates and finds cuts: the pass then runs at zran's rate
instead of zran's plus isal's. Sources are seekable binary file-likes: a local file, or
``helixflow.pipeline.storage.S3Reader`` (ranged GETs, nothing on local disk).
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
from isal import isal_zlib

from helixflow.errors import InvalidFastq, Position
from helixflow.fastq.bgzf import HEADER_BYTES, block_size
from helixflow.fastq.chunked import CutFinder
from helixflow.fastq.streams import MAGIC_PEEK, detect_compression

PIECE_BYTES = 4 << 20  # decompressed bytes per read in the pass
READ_BUFFER = 1 << 20  # zran's compressed read buffer
MIN_SPACING = 1 << 20
# Below this much gzip a second process (~0.5 s to start and import) costs more than it saves.
PARALLEL_INDEX_BYTES = 64 << 20


class HashingReader(io.RawIOBase):
    """A seekable source that hashes its bytes in order as they are read, whatever seeks its reader makes
    (zran re-reads a little around each checkpoint); ``sha256()`` hashes what was never read, if anything."""

    def __init__(self, source: BinaryIO, on_new=None) -> None:
        self._source = source
        self._pos = source.tell()
        self._digest = hashlib.sha256()
        self._hashed = 0
        self.bytes_read = 0
        self._on_new = on_new  # also gets each byte once, in order (the gzip pass's own inflater)

    def _new(self, data) -> None:
        self._digest.update(data)
        if self._on_new is not None:
            self._on_new(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if self._pos <= self._hashed < self._pos + n:
            self._new(memoryview(data)[self._hashed - self._pos:])
            self._hashed = self._pos + n
        self._pos += n
        self.bytes_read += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = self._source.seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def sha256(self) -> str:
        self._source.seek(self._hashed)
        for piece in iter(lambda: self._source.read(PIECE_BYTES), b""):
            self._new(piece)
        self._hashed = self._source.tell()
        return self._digest.hexdigest()


@dataclass
class ScanResult:
    """What the plan's one pass over a mate learned; ``index`` is the gzip seek index (zran's export)."""

    compression: str
    compressed_bytes: int
    decompressed_bytes: int
    gzip_members: int
    sha256: str
    head: bytes
    index: bytes | None = None
    blocks: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    trailer_ok: bool = True
    """gzip: the last 8 bytes are the CRC-32 and size of everything inflated. zran stops quietly at a cut-off
    stream or before trailing bytes; this catches both (and is also False for a multi-member gzip file, whose
    last trailer covers its last member only: the caller asks the single-pass validator, which tells them
    apart)."""


class _Inflater:
    """isal inflation of a gzip stream pushed in order, member after member as zran reads them; it stops at
    bytes after a member that start no other (trailing bytes). Its output feeds the pass (cuts, CRC-32, head):
    zran's own ``read`` inflates every byte twice (once to extend its index, once for the caller; measured 2x
    ``build_full_index``'s CPU), so zran only builds the index and isal, ~3x zlib's speed, inflates the data."""

    def __init__(self, sink) -> None:
        self._sink = sink
        self._inflater = isal_zlib.decompressobj(31)
        self._pending = b""
        self._done = False

    def push(self, data) -> None:
        while len(data) and not self._done:
            if self._inflater is None:  # between members
                data, self._pending = self._pending + bytes(data), b""
                if len(data) < 2:
                    self._pending = data
                    return
                if data[:2] != b"\x1f\x8b":
                    self._done = True
                    return
                self._inflater = isal_zlib.decompressobj(31)
            out = self._inflater.decompress(data)
            if out:
                self._sink(out)
            if self._inflater.eof:
                data, self._inflater = self._inflater.unused_data, None
            else:
                data = b""


def index_spacing(chunk_bytes: int) -> int:
    """Checkpoints a quarter chunk apart: a reader inflates at most that much before its first byte, and the
    index (32 KiB per checkpoint) stays ~1/2000 of the decompressed size."""
    return max(MIN_SPACING, chunk_bytes // 4)


def scan_input(source: BinaryIO, *, name: str, finder: CutFinder, spacing: int, head_bytes: int = 0,
               reopen: Callable[[], BinaryIO] | None = None) -> ScanResult:
    """One pass over ``source``; ``reopen`` (picklable: a second process calls it) opens the same bytes again, so
    a large plain gzip input's seek index is built beside the pass instead of inside it."""
    stored_bytes = source.seek(0, io.SEEK_END)
    source.seek(0)
    compression = detect_compression(source.read(MAGIC_PEEK), name)
    source.seek(0)
    inflater = None
    head = bytearray()

    def feed(piece: bytes) -> None:
        finder.feed(piece)
        if len(head) < head_bytes:
            head.extend(piece[:head_bytes - len(head)])

    index = blocks = None
    members = 0
    trailer_ok = True
    crc = 0

    def feed_gzip(piece: bytes) -> None:
        nonlocal crc
        crc = isal_zlib.crc32(piece, crc)
        feed(piece)

    if compression == "gzip":
        inflater = _Inflater(feed_gzip)
    reader = HashingReader(source, inflater.push if inflater else None)
    if compression == "none":
        for piece in iter(lambda: reader.read(PIECE_BYTES), b""):
            feed(piece)
    elif compression == "bgzf":
        blocks = _scan_bgzf(reader, name, feed)
        members = len(blocks[0])
    elif reopen is not None and _indexes_beside(stored_bytes):
        index = _scan_gzip_beside(reader, reopen, name, spacing)
    else:
        index = _scan_gzip(reader, name, spacing)
    sha256 = reader.sha256()  # hashes (and inflates) what zran left unread, if anything
    if compression == "gzip":
        members = 1  # a plain gzip input is one member (see trailer_ok)
        source.seek(-8, io.SEEK_END)
        trailer_ok = source.read(8) == struct.pack("<II", crc & 0xFFFFFFFF, finder.total & 0xFFFFFFFF)
    return ScanResult(compression, stored_bytes, finder.total, members, sha256, bytes(head),
                      index, blocks, trailer_ok)


def _zran_index(source: BinaryIO, spacing: int) -> bytes:
    import indexed_gzip

    with indexed_gzip.IndexedGzipFile(fileobj=io.BufferedReader(source, READ_BUFFER), spacing=spacing,
                                      readbuf_size=READ_BUFFER) as gz:
        gz.build_full_index()
        out = io.BytesIO()
        gz.export_index(fileobj=out)
    return out.getvalue()


def _gzip_errors() -> tuple[type[BaseException], ...]:
    import indexed_gzip

    return indexed_gzip.ZranError, isal_zlib.error, OSError, ValueError


def _not_indexable(name: str, exc: BaseException | str) -> InvalidFastq:
    # The validator names gzip defects exactly (member, offsets, record): the caller runs it on this input.
    return InvalidFastq(f"the gzip stream cannot be indexed: {exc}", code="CORRUPT_GZIP",
                        position=Position(file=name))


def _scan_gzip(reader: HashingReader, name: str, spacing: int) -> bytes:
    """zran's seek index of the stream; the reader's inflater sees every byte zran reads, once."""
    try:
        return _zran_index(reader, spacing)
    except _gzip_errors() as exc:
        raise _not_indexable(name, exc) from None


def _indexes_beside(stored_bytes: int) -> bool:
    return stored_bytes >= PARALLEL_INDEX_BYTES and len(os.sched_getaffinity(0)) > 1


def _index_in_child(reopen: Callable[[], BinaryIO], spacing: int, reply) -> None:
    """The second process: zran's index of its own copy of the input, sent back as ("index", bytes), or
    ("defect", message) for a stream zran cannot read."""
    try:
        with reopen() as source:
            reply.send(("index", _zran_index(source, spacing)))
    except _gzip_errors() as exc:
        reply.send(("defect", str(exc)))


def _scan_gzip_beside(reader: HashingReader, reopen: Callable[[], BinaryIO], name: str, spacing: int) -> bytes:
    """zran's index built by a second process (spawned: no state of this one's threads or clients is inherited)
    while this one reads the stream once through ``reader`` (hash, isal inflation, cuts). Both failures name the
    input the same way; the child never outlives the pass."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_index_in_child, args=(reopen, spacing, send), daemon=True)
    child.start()
    send.close()
    try:
        try:
            for _ in iter(lambda: reader.read(PIECE_BYTES), b""):
                pass
        except _gzip_errors() as exc:
            raise _not_indexable(name, exc) from None
        try:
            kind, value = receive.recv()
        except EOFError:
            raise RuntimeError(f"the seek-index process for {name} ended without a reply "
                               f"(exit code {child.exitcode})") from None
        if kind == "defect":
            raise _not_indexable(name, value)
        return value
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()


def _scan_bgzf(reader: HashingReader, name: str, feed) -> tuple[np.ndarray, np.ndarray]:
    source = io.BufferedReader(reader, PIECE_BYTES)
    comp, decomp = [], []
    c = d = 0
    while header := source.read(HEADER_BYTES):
        size = block_size(header)
        block = header + source.read(size - HEADER_BYTES) if size else b""
        if size is None or len(block) < size:
            raise InvalidFastq("not a complete BGZF block", code="CORRUPT_GZIP",
                               position=Position(file=name, byte_offset=d))
        try:
            data = isal_zlib.decompress(block, 31)  # the gzip wrapper: the block's CRC-32 and size are checked
        except isal_zlib.error as exc:
            raise InvalidFastq(f"BGZF block at compressed byte {c} is corrupt: {exc}", code="CORRUPT_GZIP",
                               position=Position(file=name, byte_offset=d)) from None
        comp.append(c)
        decomp.append(d)
        feed(data)
        c += size
        d += len(data)
    return np.asarray(comp, np.int64), np.asarray(decomp, np.int64)


def bgzf_range(blocks: tuple[np.ndarray, np.ndarray], start: int, end: int,
               compressed_bytes: int) -> tuple[int, int, int]:
    """(compressed start, compressed end, decompressed bytes to skip) of the whole blocks covering
    decompressed [start, end)."""
    comp, decomp = blocks
    first = max(0, int(np.searchsorted(decomp, start, side="right")) - 1)
    after = int(np.searchsorted(decomp, end, side="left"))
    stop = int(comp[after]) if after < len(comp) else compressed_bytes
    return int(comp[first]), stop, start - int(decomp[first])


def read_span(source: BinaryIO, compression: str, start: int, size: int, *, index: bytes | None = None,
              skip: int = 0) -> bytes:
    """``size`` decompressed bytes from ``start`` (fewer at the end). ``source`` holds the whole object, except
    for BGZF, where it holds only ``bgzf_range``'s blocks (``skip`` into them)."""
    if compression == "none":
        source.seek(start)
        return source.read(size)
    if compression == "bgzf":
        from isal import igzip

        return igzip.decompress(source.read())[skip:skip + size]
    import indexed_gzip

    with indexed_gzip.IndexedGzipFile(fileobj=io.BufferedReader(source, READ_BUFFER), readbuf_size=READ_BUFFER) as gz:
        gz.import_index(fileobj=io.BytesIO(index))
        gz.seek(start)
        return gz.read(size)
