"""Validation of a file (or a mate pair) cut into record-aligned chunks, one runner per chunk, with the answer
one pass gives: the same code, message and global record, line and byte position of the first defect.

Why it is the same answer:
- ``plan_cuts`` cuts where a record starts by the file's own line count (line ``4r + 1`` starts record
  ``r + 1``), never by guessing from the bytes, so each chunk's first record is the record one pass would be on;
  the cuts fall on grid records (every ``grid_records(chunk_bytes)``-th), whose offsets each mate's own pass
  notes, so the cuts of mate 2 fall on the same record numbers as mate 1's without one pass waiting on the other.
- A runner scans its chunk with ``Scanner(start=ChunkStart(...))``: record and line numbers count from the
  records before the chunk, byte offsets from its first decompressed byte, and the line ending is line 1's (the
  plan reads it), so every message and position is the file's.
- A record cut by the chunk's end (it is the next chunk's, but naming a defect in the last record may need the
  lines after it, e.g. wrapped FASTQ) is read from ``LOOKAHEAD_BYTES`` past the end: the runner validates
  records up to the chunk's last one (``stop_after``) and only looks at the rest. A diagnosis that needs more
  than the lookahead (a wrapped record of over ~4 MiB) is the one place a chunk could answer differently.
- Mates run in lockstep per chunk (``check_pair``); a mate that ends early ends inside the chunk where its
  last record is, so ``PAIR_COUNT_MISMATCH`` comes from that chunk with the file's record counts.
- ``combine_verdicts`` takes the first chunk (input order) with a defect: chunks are in record order and a
  chunk's own defect is its earliest. Defects in later chunks are not looked at, so a runner that started past a
  broken record (its line count is off) cannot mislead. With no defect, the per-file statistics add up exactly
  and the quality-encoding rule runs on them as in one pass (``PHRED64_NOT_SUPPORTED`` last).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from helixflow.errors import InvalidFastq, Position
from helixflow.fastq.pairs import check_pair
from helixflow.fastq.rules import DEFAULT_MAX_LINE_LENGTH
from helixflow.fastq.scan import ChunkStart, FileReport, Scanner, quality_encoding
from helixflow.fastq.streams import DEFAULT_CHUNK_SIZE
from helixflow.fastq.validator import ValidationReport, check_encoding

LOOKAHEAD_BYTES = 4 << 20


# --------------------------------------------------------------------------------------------- the cuts

GRID_BYTES = 64 << 10
MAX_GRID = 4096


def grid_records(chunk_bytes: int) -> int:
    """Chunks start only at record numbers that are multiples of this (the grid), so each mate's pass notes
    the offsets of those records alone and needs nothing of the other mate. One grid step per ``GRID_BYTES`` of
    chunk (256 MiB chunks: every 4096th record, ~1.5 MB of 150 bp reads) keeps a chunk within ~1% of
    ``chunk_bytes`` for records up to ~650 bytes, and the grid of a 50 GB gzip mate at ~120k offsets; small
    chunks (the tests') have a grid of 1, i.e. any record."""
    return max(1, min(MAX_GRID, chunk_bytes // GRID_BYTES))


class CutFinder:
    """Feed one mate's decompressed bytes in order: it counts lines, notes line 1's ending and the decompressed
    offset of every ``grid``-th record (``grid_offsets[k]``: where record ``k * grid`` starts, 0-based; a record
    number past the last record starts at the end). Both mates run the same pass, independently and in parallel;
    ``plan_cuts`` then picks mate 1's cuts from its grid and ``offsets_at`` finds the same records in mate 2's."""

    def __init__(self, *, grid: int = 1) -> None:
        self.grid = grid
        self.grid_offsets = [0]
        self.newlines = 0
        self.total = 0
        self.crlf: bool | None = None
        self._last = b""
        self._next = 4 * grid  # the newline that ends the record before the next grid record

    def feed(self, piece: bytes) -> None:
        if not piece:
            return
        # One vectorised newline scan per piece and a strided pick of the grid records' newlines: no per-line
        # arrays (measured: half the old per-line bookkeeping; bytes.count alone is slower than this scan).
        lf = np.flatnonzero(np.frombuffer(piece, np.uint8) == 10)
        count = len(lf)
        if self.crlf is None and count:
            first = int(lf[0])
            self.crlf = (piece[first - 1] if first else (self._last[-1] if self._last else None)) == 13
        if self.newlines + count >= self._next:  # a grid record starts in (or right after) this piece
            at = lf[self._next - self.newlines - 1::4 * self.grid] + (1 + self.total)
            self.grid_offsets.extend(at.tolist())
            self._next += 4 * self.grid * len(at)
        self.newlines += count
        self.total += len(piece)
        self._last = piece[-1:]

    @property
    def records_total(self) -> int:
        """Complete 4-line groups (a missing final newline still ends the last line)."""
        return (self.newlines + (self._last not in (b"", b"\n"))) // 4


def plan_cuts(grid_offsets: list[int], grid: int, every_bytes: int, total: int) -> tuple[list[int], list[int]]:
    """(decompressed offset, 0-based record number) of every chunk start of mate 1: the first grid record at or
    after every ``every_bytes`` (with a grid of 1 the rule of ``helixflow.phase1.reader.plan_chunks``). A record
    longer than a chunk gives one cut, not an empty chunk; a cut at the very end of the data is dropped."""
    offsets, records = [0], [0]
    grid_at = np.asarray(grid_offsets, np.int64)
    next_cut = every_bytes
    while True:
        i = int(np.searchsorted(grid_at, next_cut))
        if i >= len(grid_at) or grid_at[i] >= total:
            return offsets, records
        offsets.append(int(grid_at[i]))
        records.append(i * grid)
        next_cut = (int(grid_at[i]) // every_bytes + 1) * every_bytes


def offsets_at(grid_offsets: list[int], grid: int, records: list[int], total: int) -> list[int]:
    """Where mate 2's records numbered ``records`` (grid records: mate 1's cuts) start; a record mate 2 does not
    have starts at its end, so the chunk that holds mate 2's end reports the pair-count mismatch."""
    return [grid_offsets[r // grid] if r // grid < len(grid_offsets) else total for r in records]


# ------------------------------------------------------------------------------------------- one chunk

@dataclass
class MateStats:
    """What a chunk's scan learned about one mate (its records only)."""

    records: int = 0
    bases: int = 0
    min_length: int | None = None
    max_length: int = 0
    saw_quality: bool = False
    saw_low_quality: bool = False
    first_high_quality: dict[str, Any] | None = None
    crlf: bool | None = None


@dataclass
class ChunkVerdict:
    mates: list[MateStats]
    defect: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ChunkVerdict":
        return cls(mates=[MateStats(**m) for m in data["mates"]], defect=data.get("defect"))


@dataclass(frozen=True)
class MateChunk:
    """One mate's part of a chunk: its decompressed bytes from the chunk's first record through the lookahead
    (to the end of the file for the last chunk), and where it starts in the file."""

    name: str
    data: bytes
    start: ChunkStart = field(default_factory=ChunkStart)


def validate_chunk(mates: list[MateChunk], *, stop_after: int | None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                   max_line_length: int = DEFAULT_MAX_LINE_LENGTH) -> ChunkVerdict:
    """Validate records ``start.records + 1`` .. ``stop_after`` (file numbers; None: to the end of the data,
    the last chunk) of one file or both mates, with the validator's rules and codes."""
    scanners = [Scanner(io.BytesIO(m.data), name=m.name, chunk_size=chunk_size, max_line_length=max_line_length,
                        progress=None, collect_ids=len(mates) == 2, start=m.start, stop_after=stop_after)
                for m in mates]
    defect = None
    try:
        if len(scanners) == 1:
            for _ in scanners[0].batches():
                pass
        else:
            check_pair(*scanners)
    except InvalidFastq as exc:
        defect = exc.to_dict()
    stats = []
    for scanner, mate in zip(scanners, mates, strict=True):
        high = scanner.first_high_quality
        stats.append(MateStats(
            records=scanner.records - mate.start.records, bases=scanner.bases, min_length=scanner.min_length,
            max_length=scanner.max_length, saw_quality=scanner.saw_quality, saw_low_quality=scanner.saw_low_quality,
            first_high_quality=asdict(high) if high else None, crlf=scanner.crlf))
    return ChunkVerdict(stats, defect)


# ------------------------------------------------------------------------------------------- the run

@dataclass(frozen=True)
class FileFacts:
    """What the chunk plan's pass learned of a file as stored (the report's fields no chunk can know)."""

    file: str
    compression: str
    gzip_members: int
    compressed_bytes: int
    decompressed_bytes: int
    sha256: str
    records: int  # 4-line groups in the file: the longer mate's count in PAIR_COUNT_MISMATCH


def defect_error(defect: dict[str, Any]) -> InvalidFastq:
    return InvalidFastq(defect["message"], code=defect["code"], details=defect.get("details"),
                        position=Position(defect.get("file"), defect.get("record"), defect.get("line"),
                                          defect.get("byte_offset")))


def combine_verdicts(verdicts: list[ChunkVerdict], files: list[FileFacts], *,
                     allow_phred64: bool = False) -> ValidationReport:
    """The run's verdict from its chunks' (in input order): raise the first defect, else the report one pass
    over the whole input gives."""
    for verdict in verdicts:
        if verdict.defect is not None:
            defect = verdict.defect
            if defect["code"] == "PAIR_COUNT_MISMATCH":
                # The chunk read the longer mate only to its own end: the plan's pass counted all of it.
                counts = defect["details"]["records"]
                longer = max(files, key=lambda f: f.records)
                defect = {**defect, "details": {"records": {**counts, longer.file: longer.records}}}
            raise defect_error(defect)
    reports, first_highs = [], []
    for m, facts in enumerate(files):
        parts = [v.mates[m] for v in verdicts]
        lengths = [p.min_length for p in parts if p.records]
        high = next((p.first_high_quality for p in parts if p.first_high_quality), None)
        first_high = Position(**high) if high else None
        saw_low = any(p.saw_low_quality for p in parts)
        reports.append(FileReport(
            file=facts.file, compression=facts.compression, gzip_members=facts.gzip_members,
            compressed_bytes=facts.compressed_bytes, decompressed_bytes=facts.decompressed_bytes,
            sha256=facts.sha256, records=sum(p.records for p in parts), bases=sum(p.bases for p in parts),
            min_length=min(lengths) if lengths else 0, max_length=max(p.max_length for p in parts),
            quality_encoding=quality_encoding(any(p.saw_quality for p in parts), saw_low, first_high),
            line_endings="crlf" if parts[0].crlf else "lf"))
        first_highs.append(first_high)
    reports = tuple(reports)
    if not allow_phred64:
        check_encoding(reports, first_highs)
    return ValidationReport(reports)
