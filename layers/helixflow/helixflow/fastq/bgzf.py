"""A streaming BGZF writer (the blocked gzip of SAM/BAM spec section 4.1: independent gzip members of at most
64 KiB of data, each carrying its compressed size in a 'BC' extra field, then an empty EOF block).

Every gzip reader reads it as ordinary multi-member gzip; what BGZF adds is random access: a reader can start
at any block boundary, which is what record-aligned byte-range chunks need.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from isal import isal_zlib

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


def block_size_at(path: str, offset: int) -> int:
    """Compressed size of the BGZF block starting at ``offset`` (from its BC field)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        header = fh.read(18)
    if len(header) < 18 or header[12:14] != b"BC":
        raise ValueError(f"no BGZF block at offset {offset} of {path}")
    return struct.unpack("<H", header[16:18])[0] + 1
