"""FASTA: the one home of its rules (what a header, a contig and a sequence symbol are).

``scan_fasta`` streams a (decompressed) FASTA byte stream and yields each contig's name and its normalised
sequence lines, raising ``InvalidReference`` at the first defect with its line and byte offset; it keeps
nothing but the contig names, so the Validate Lambda checks a 3 GB genome in constant memory and the Phase 2
reader (``helixflow.phase2.reference.read_fasta``) builds its buffer from the same scan.

Normalisation: uppercase; ACGT kept, U read as T, every other IUPAC code becomes ``N`` (the aligner scores any
non-ACGT symbol alike); any other byte is ``INVALID_SYMBOL``.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from helixflow.errors import InvalidReference, Position

_IUPAC = b"ACGTURYSWKMBDHVN"
# Byte -> normalised symbol; 0 marks a byte that is not a nucleotide code.
NORMALISE = np.zeros(256, dtype=np.uint8)
for _b in _IUPAC:
    for _c in (_b, ord(chr(_b).lower())):
        NORMALISE[_c] = _b if _b in b"ACGT" else (ord("T") if _b == ord("U") else ord("N"))

# The same rules as bytes.translate tables, so a line is checked and normalised at C speed without per-line
# arrays: deleting every valid byte leaves nothing exactly when the line is valid.
_NORMALISE_TABLE = bytes(NORMALISE.tolist())
_VALID_BYTES = bytes(np.flatnonzero(NORMALISE).tolist())

GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Contig:
    name: str
    line: int  # the header's line
    byte_offset: int  # the header's first byte
    lines: list[bytes]  # normalised sequence lines (filled by the scan as it goes; empty when not kept)
    length: int = 0


class _Prefixed(io.RawIOBase):
    """``head`` then the rest of ``body``: lets a non-seekable stream (an S3 body) be sniffed for gzip."""

    def __init__(self, head: bytes, body: BinaryIO) -> None:
        self._head, self._body = head, body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._body.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def open_fasta(handle: BinaryIO) -> BinaryIO:
    """The decompressed stream of ``handle`` (a file or an S3 body; gzip detected by its magic bytes, not by a
    file name)."""
    head = handle.read(2)
    stream = io.BufferedReader(_Prefixed(head, handle), buffer_size=1 << 20)
    return gzip.GzipFile(fileobj=stream) if head == GZIP_MAGIC else stream


def fasta_lines(handle: BinaryIO, *, name: str) -> Iterator[bytes]:
    """The lines of a plain or gzip FASTA stream; a damaged gzip stream is ``CORRUPT_GZIP``."""
    stream = open_fasta(handle)
    try:
        yield from stream
    except (OSError, EOFError, zlib.error) as error:
        raise InvalidReference(f"the gzip stream cannot be read: {error}", code="DAMAGED_GZIP",
                               position=Position(file=name)) from None


def scan_fasta(lines: Iterable[bytes], *, name: str, keep: bool = True) -> Iterator[Contig]:
    """Yield every contig of the FASTA text in ``lines`` once its last line is read (``keep=False`` counts
    lengths without holding sequence). Raises ``InvalidReference`` with line and byte offset."""
    names: set[str] = set()
    current: Contig | None = None
    offset = 0
    line_number = 0
    for line_number, raw in enumerate(lines, start=1):
        line_offset = offset
        offset += len(raw)
        line = raw.rstrip(b"\r\n")
        if line.startswith(b">"):
            where = Position(file=name, line=line_number, byte_offset=line_offset)
            words = line[1:].split(maxsplit=1)
            contig_name = words[0].decode("utf-8", errors="replace") if words else ""
            if not contig_name:
                raise InvalidReference("FASTA header without a name", code="EMPTY_NAME", position=where)
            if contig_name in names:
                raise InvalidReference(f"contig name {contig_name!r} appears twice", code="DUPLICATE_NAME",
                                       position=where)
            if current is not None:
                yield _finished(current, name)
            names.add(contig_name)
            current = Contig(contig_name, line_number, where.byte_offset, [])
        elif line.strip():
            if current is None:
                raise InvalidReference("sequence line before the first '>' header", code="SEQUENCE_BEFORE_HEADER",
                                       position=Position(file=name, line=line_number, byte_offset=line_offset))
            stripped = line.strip()
            if stripped.translate(None, _VALID_BYTES):
                bad = int(np.flatnonzero(NORMALISE[np.frombuffer(stripped, dtype=np.uint8)] == 0)[0])
                column = line.index(stripped) + bad
                raise InvalidReference(
                    f"invalid sequence symbol {chr(stripped[bad])!r} in contig {current.name!r}",
                    code="INVALID_SYMBOL", position=Position(file=name, line=line_number,
                                                              byte_offset=line_offset + column))
            current.length += len(stripped)
            if keep:
                current.lines.append(stripped.translate(_NORMALISE_TABLE))
    if current is None:
        raise InvalidReference("the reference holds no sequence", code="NO_SEQUENCES",
                               position=Position(file=name, line=line_number or None, byte_offset=offset))
    yield _finished(current, name)


def _finished(contig: Contig, name: str) -> Contig:
    if contig.length == 0:
        raise InvalidReference(f"contig {contig.name!r} has no bases", code="EMPTY_SEQUENCE",
                               position=Position(file=name, line=contig.line, byte_offset=contig.byte_offset))
    return contig
