"""BGZF (the blocked gzip of SAM/BAM spec section 4.1: independent gzip members of at most 64 KiB of data, each
carrying its compressed size in a 'BC' extra subfield, then an empty EOF block): the one parser of its block
headers, and a streaming writer.

Every gzip reader reads it as ordinary multi-member gzip; what BGZF adds is random access: a reader can start
at any block boundary, which is what record-aligned byte-range chunks need.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np
from isal import isal_zlib

from helixflow.errors import InvalidFastq, Position

GZIP_MAGIC = b"\x1f\x8b"
HEADER_BYTES = 18  # a gzip header with one extra subfield, 'BC' (BSIZE), as bgzip and htslib write it
_FLAG_EXTRA = 0x04
BLOCK_DATA_BYTES = 65280  # bgzip's block payload: leaves room for incompressible data in a 64 KiB block
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def _block(payload: bytes, level: int) -> bytes:
    deflated = isal_zlib.compress(payload, level, -15)
    block_size = 18 + len(deflated) + 8
    header = struct.pack("<4sIBBHccHH", b"\x1f\x8b\x08\x04", 0, 0, 0xFF, 6, b"B", b"C", 2, block_size - 1)
    return header + deflated + struct.pack("<II", isal_zlib.crc32(payload) & 0xFFFFFFFF, len(payload))


class BgzfWriter:
    def __init__(self, sink: BinaryIO, level: int = 1) -> None:
        self.sink = sink
        self.level = level
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= BLOCK_DATA_BYTES:
            self.sink.write(_block(bytes(self._buffer[:BLOCK_DATA_BYTES]), self.level))
            del self._buffer[:BLOCK_DATA_BYTES]

    def close(self) -> None:
        if self._buffer:
            self.sink.write(_block(bytes(self._buffer), self.level))
            self._buffer.clear()
        self.sink.write(EOF_BLOCK)


def block_size(header: bytes) -> int | None:
    """Compressed size of the BGZF block whose gzip header starts ``header`` (BSIZE + 1, from the 'BC' extra
    subfield), or None when it is not a BGZF block: no gzip magic, no extra field, or no 'BC' subfield within
    the bytes given."""
    if len(header) < 12 or not header.startswith(GZIP_MAGIC) or not header[3] & _FLAG_EXTRA:
        return None
    extra = header[12: 12 + int.from_bytes(header[10:12], "little")]
    while len(extra) >= 4:
        subfield_length = int.from_bytes(extra[2:4], "little")
        if extra[:2] == b"BC":
            return int.from_bytes(extra[4:6], "little") + 1 if subfield_length == 2 and len(extra) >= 6 else None
        extra = extra[4 + subfield_length:]
    return None


def block_size_at(path: str, offset: int) -> int:
    """Compressed size of the BGZF block starting at ``offset`` (from its BC field)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        size = block_size(fh.read(HEADER_BYTES))
    if size is None:
        raise ValueError(f"no BGZF block at offset {offset} of {path}")
    return size


def block_offsets(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(compressed offset, decompressed offset) of every BGZF block, from the block headers and trailers alone."""
    comp, decomp = [], []
    c = d = 0
    with open(path, "rb") as fh:
        while True:
            header = fh.read(HEADER_BYTES)
            if len(header) < HEADER_BYTES:
                break
            size = block_size(header)
            if size is None:
                raise InvalidFastq("not a BGZF block", code="BGZF_BAD_BLOCK",
                                   position=Position(file=path, byte_offset=c))
            fh.seek(c + size - 4)
            isize = struct.unpack("<I", fh.read(4))[0]  # the trailer's ISIZE: this block's decompressed bytes
            comp.append(c)
            decomp.append(d)
            c += size
            d += isize
            fh.seek(c)
    return np.asarray(comp, dtype=np.int64), np.asarray(decomp, dtype=np.int64)
