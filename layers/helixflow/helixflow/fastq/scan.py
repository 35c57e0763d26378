"""One FASTQ file, chunk by chunk: the vectorised pass over whole chunks that checks every record, with
records cut by a chunk boundary carried into the next chunk (see ``validator``, "How it is fast")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from helixflow.errors import InvalidFastq, Position
from helixflow.fastq.diagnose import NEED_MORE, NeedMore, diagnose
from helixflow.fastq.rules import (AT, CR, LF, PHRED33_ONLY_BELOW, PHRED64_ABOVE, PLUS, QUALITY_FIRST, QUALITY_LAST,
                                   SEQUENCE_ALPHABET, SPACE, TAB, is_control, plus_text_ok, show_byte)
from helixflow.fastq.streams import BinarySource, DecompressedStream
from helixflow.seq.packing import gather
from helixflow.seq.read_ids import mate_id_spans

# Byte classes, one bit each; a byte may be in several.
_IN_SEQUENCE = 1
_IN_QUALITY = 2
_IN_TEXT = 4  # header and '+' lines
_QUALITY_LOW = 8  # a quality character below ';': proves Phred+33
_QUALITY_HIGH = 16  # a quality character above 'J': hints Phred+64


def _class_table() -> bytes:
    table = bytearray(256)
    for byte in range(256):
        bits = 0
        if byte in SEQUENCE_ALPHABET:
            bits |= _IN_SEQUENCE
        if QUALITY_FIRST <= byte <= QUALITY_LAST:
            bits |= _IN_QUALITY
            if byte < PHRED33_ONLY_BELOW:
                bits |= _QUALITY_LOW
            if byte > PHRED64_ABOVE:
                bits |= _QUALITY_HIGH
        if not is_control(byte):
            bits |= _IN_TEXT
        table[byte] = bits
    # Line terminators pass every line's check; stray CRs are caught by counting them separately.
    table[LF] = table[CR] = _IN_SEQUENCE | _IN_QUALITY | _IN_TEXT
    return bytes(table)


_CLASS_TABLE = _class_table()
# What each of a record's four lines asks of its bytes. The quality line keeps the LOW/HIGH bits too, so that
# OR-ing the masked classes tells which quality ranges occurred, and only quality lines can contribute them.
_LINE_MASKS = np.array([_IN_TEXT, _IN_SEQUENCE, _IN_TEXT, _IN_QUALITY | _QUALITY_LOW | _QUALITY_HIGH], np.uint8)


@dataclass(frozen=True)
class FileReport:
    """What validation learned about one file."""

    file: str
    compression: str  # "none", "gzip" or "bgzf"
    gzip_members: int
    compressed_bytes: int  # bytes as stored
    decompressed_bytes: int
    sha256: str  # of the bytes as stored
    records: int
    bases: int
    min_length: int
    max_length: int
    quality_encoding: str | None  # "phred33", "phred64", or None without any quality character
    line_endings: str  # "lf" or "crlf"


def quality_encoding(saw_quality: bool, saw_low_quality: bool, first_high_quality: Position | None) -> str | None:
    """The encoding rule of ``validator`` (Phred+33 unless only high characters occur) from what a scan saw."""
    if saw_low_quality or (saw_quality and first_high_quality is None):
        return "phred33"
    if first_high_quality is not None:
        return "phred64"
    return None


@dataclass(frozen=True)
class ChunkStart:
    """Where a record-aligned chunk of a larger file begins, so its positions are the file's: the records and
    decompressed bytes before it, and the line ending that line 1 of the file chose (None in chunk 0, which
    holds line 1)."""

    records: int = 0
    byte: int = 0
    crlf: bool | None = None


@dataclass
class Batch:
    """Records that passed every per-file check, in order. Read ids are filled only for pairs."""

    count: int
    ids: np.ndarray | None = None  # the normalised read ids, concatenated (uint8)
    id_lengths: np.ndarray | None = None
    header_offsets: np.ndarray | None = None  # decompressed offsets of the header lines


class Scanner:
    """Streams one file, checks it chunk by chunk and yields the good records in batches."""

    def __init__(self, source: BinarySource, *, name: str, chunk_size: int, max_line_length: int,
                 progress: Callable[[int], None] | None, collect_ids: bool, start: ChunkStart | None = None,
                 stop_after: int | None = None) -> None:
        """``start``: the source is a decompressed chunk of a file beginning there (positions stay the file's).
        ``stop_after``: check records up to that (file) record number only; bytes after it are the next
        chunk's, read only where naming a defect needs lines beyond the record (a record cut by the chunk
        end is diagnosed exactly as in one pass over the file)."""
        self.name = name
        self._max_line = max_line_length
        self._collect_ids = collect_ids
        self._start = start or ChunkStart()
        self._stop = stop_after
        self.records = self._start.records  # records validated so far (in the file)
        self.bases = 0
        self.min_length: int | None = None
        self.max_length = 0
        self.crlf: bool | None = self._start.crlf  # decided by the terminator of line 1
        self.saw_quality = False
        self.saw_low_quality = False
        self.first_high_quality: Position | None = None
        self._stream = self._wrap_stream_errors(
            lambda: DecompressedStream(source, name=name, chunk_size=chunk_size, progress=progress,
                                       compression="none" if start else None), carry=b"")

    # -- driving ------------------------------------------------------------------------------------------

    def batches(self) -> Iterator[Batch]:
        carry = b""  # always starts at a record boundary, i.e. on line 4 * records + 1
        carry_offset = self._start.byte
        # Only the file's first bytes are checked for being FASTQ at all; a later chunk starts at a record.
        started = self._start.records > 0 or self._start.byte > 0
        chunks = iter(self._stream)
        while not self._done():
            chunk = self._wrap_stream_errors(lambda: next(chunks, None), carry=carry)
            if chunk is None:
                break
            buf = carry + chunk if carry else chunk
            records_before = self.records
            try:
                if not started:
                    # Wait for a few bytes so the NOT_FASTQ message can name what the file is instead.
                    if len(buf) < 8:
                        carry = buf
                        continue
                    self._check_start(buf)
                    started = True
                consumed = yield from self._scan(buf, carry_offset, eof=False)
            except InvalidFastq as defect:
                raise self._unless_member_corrupt(defect, chunks, 4 * records_before + buf.count(b"\n")) from None
            carry = buf[consumed:]
            carry_offset += consumed
        if self._done():
            return
        if not started:
            if not carry:
                raise InvalidFastq("the file is empty", code="EMPTY_FILE",
                                   position=Position(self.name, 1, 1, 0))
            self._check_start(carry)
        if carry:
            yield from self._scan(carry, carry_offset, eof=True)

    def _done(self) -> bool:
        return self._stop is not None and self.records >= self._stop

    def report(self) -> FileReport:
        encoding = quality_encoding(self.saw_quality, self.saw_low_quality, self.first_high_quality)
        s = self._stream
        return FileReport(
            file=self.name, compression=s.compression, gzip_members=s.gzip_members,
            compressed_bytes=s.compressed_bytes, decompressed_bytes=s.decompressed_bytes, sha256=s.sha256,
            records=self.records, bases=self.bases, min_length=self.min_length or 0, max_length=self.max_length,
            quality_encoding=encoding, line_endings="crlf" if self.crlf else "lf")

    def _unless_member_corrupt(self, defect: InvalidFastq, chunks: Iterator[bytes], lines_read: int) -> InvalidFastq:
        """The defect found, or CORRUPT_GZIP when it lies in a gzip member that fails its integrity check.

        Corrupt deflate data inflates to wrong bytes until the inflater notices (at an invalid code, or only
        at the CRC at the member's end), and those bytes usually look like a FASTQ defect; whether the
        inflater notices within the chunk at hand depends on the chunk size. So a defect inside a member not
        yet checked is only reported once the rest of that member inflates cleanly (on this error path only,
        at most one member's worth). ``lines_read`` counts the lines before the end of the data read so far."""
        s = self._stream
        offset = defect.position.byte_offset
        if not s.member_open or offset is None or offset < s.member_start:
            return defect
        member = s.gzip_members
        try:
            while s.member_open and s.gzip_members == member:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                lines_read += chunk.count(b"\n")
        except InvalidFastq as exc:
            if exc.code == "CORRUPT_GZIP" and exc.details["member"] == member:
                return InvalidFastq(exc.message, code=exc.code, details=exc.details, position=Position(
                    self.name, lines_read // 4 + 1, lines_read + 1, exc.position.byte_offset))
        return defect

    def _wrap_stream_errors(self, call, *, carry: bytes):
        """Run a stream call; place a gzip error at the record and line where the data broke off, unless the
        complete lines before it already hold a defect (which then comes first)."""
        try:
            return call()
        except InvalidFastq as exc:
            if exc.position.record is not None:
                raise
            base = exc.position.byte_offset - len(carry) if exc.position.byte_offset is not None else 0
            # A defect in the lines before the break comes first, unless it lies in the member that failed
            # its integrity check (see _unless_member_corrupt).
            trusted_before = exc.details.get("member_start", 0) if exc.code == "CORRUPT_GZIP" else None
            if carry and (trusted_before is None or base < trusted_before):
                if not self.records:
                    self._check_start(carry)
                earlier = self._diagnose(carry, 0, base, eof=False, partial_ok=True)
                if isinstance(earlier, InvalidFastq) and (trusted_before is None
                                                          or earlier.position.byte_offset < trusted_before):
                    raise earlier from None
            position = Position(self.name, self.records + 1, 4 * self.records + 1 + carry.count(b"\n"),
                                exc.position.byte_offset if exc.position.byte_offset is not None else 0)
            raise InvalidFastq(exc.message, code=exc.code, position=position, details=exc.details) from None

    def _check_start(self, head: bytes) -> None:
        first = head[0]
        if first == AT:
            return
        if first in (LF, CR):
            raise InvalidFastq("record 1: the file starts with a blank line", code="BLANK_LINE",
                               position=Position(self.name, 1, 1, 0))
        if head.startswith(b">"):
            what = "this looks like FASTA (starts with '>'); FASTQ records start with '@'"
        elif head.startswith(b"BAM\x01"):
            what = "this is BAM (convert with `samtools fastq`)"
        elif head.startswith(b"CRAM"):
            what = "this is CRAM (convert with `samtools fastq`)"
        elif head.startswith(b"\xef\xbb\xbf"):
            what = "the file starts with a UTF-8 byte-order mark before the first '@'"
        else:
            what = f"the first byte is {show_byte(first)}; FASTQ records start with '@'"
        raise InvalidFastq(f"not FASTQ: {what}", code="NOT_FASTQ", position=Position(self.name, 1, 1, 0))

    # -- the vectorised pass ------------------------------------------------------------------------------

    def _scan(self, buf: bytes, base: int, *, eof: bool) -> Iterator[Batch]:
        """Check the complete records in ``buf`` (decompressed offset ``base``); yield the good ones; raise on
        the first defect; return how many bytes were consumed (the rest is carried into the next chunk)."""
        virtual_end = eof and buf[-1] != LF
        if virtual_end:
            # A missing final newline is accepted: terminate the last line so it is a line like the others.
            buf += b"\n"
        arr = np.frombuffer(buf, np.uint8)
        newlines = np.flatnonzero(arr == LF)
        if self.crlf is None and len(newlines) and not (virtual_end and len(newlines) == 1):
            self.crlf = bool(newlines[0] > 0 and arr[newlines[0] - 1] == CR)
        n_records = len(newlines) // 4
        if self._stop is not None:
            n_records = min(n_records, self._stop - self.records)
        consumed = 0
        if n_records:
            good = self._first_bad_record(buf, arr, newlines[: 4 * n_records], base, virtual_end)
            if good < n_records:
                record_start = int(newlines[4 * good - 1]) + 1 if good else 0
                self._account(arr, newlines[: 4 * good])
                if good:
                    yield self._batch(arr, newlines[: 4 * good], base)
                verdict = self._diagnose(buf, record_start, base + record_start, eof=eof,
                                         virtual_end=len(buf) - 1 if virtual_end else None)
                if verdict is NEED_MORE:
                    return record_start
                raise self._defect(verdict)
            self._account(arr, newlines[: 4 * n_records])
            yield self._batch(arr, newlines[: 4 * n_records], base)
            consumed = int(newlines[4 * n_records - 1]) + 1
        if self._done():
            return consumed
        rest = len(buf) - consumed
        if eof and rest:
            # 1 to 3 lines of an unfinished record: name the first thing wrong with them (at least truncation).
            raise self._defect(self._diagnose(buf, consumed, base + consumed, eof=True,
                                              virtual_end=len(buf) - 1 if virtual_end else None))
        partial_line = len(buf) - (int(newlines[-1]) + 1 if len(newlines) else 0)
        if partial_line > self._max_line:
            raise self._defect(self._diagnose(buf, consumed, base + consumed, eof=False))
        return consumed

    def _defect(self, verdict: InvalidFastq | NeedMore | None) -> InvalidFastq:
        """The diagnosis of a record the fast checks rejected; it must name a defect."""
        if not isinstance(verdict, InvalidFastq):
            raise RuntimeError(f"{self.name}: record {self.records + 1} failed the fast checks but the "
                               f"line-by-line diagnosis found no defect ({verdict!r})")
        return verdict

    def _line_spans(self, arr: np.ndarray, newlines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = np.empty(len(newlines), np.int64)
        starts[0] = 0
        starts[1:] = newlines[:-1] + 1
        has_cr = (newlines > starts) & (arr[newlines - 1] == CR)
        return starts, newlines - has_cr, has_cr

    def _first_bad_record(self, buf: bytes, arr: np.ndarray, newlines: np.ndarray, base: int,
                          virtual_end: bool) -> int:
        """Index of the first record in the complete records ending at ``newlines`` that fails any check (the
        number of records when none does). Also keeps the quality-range flags of the records before it."""
        n = len(newlines) // 4
        starts, ends, has_cr = self._line_spans(arr, newlines)
        lengths = ends - starts
        heads, seqs, pluses, quals = (starts[k::4] for k in range(4))
        head_len, seq_len, plus_len, qual_len = (lengths[k::4] for k in range(4))

        bad = arr[heads] != AT
        bad |= head_len < 2
        after_at = arr[heads + 1]  # in range: a header line has at least its terminator after '@'
        bad |= (after_at == SPACE) | (after_at == TAB)
        bad |= arr[pluses] != PLUS
        bad |= seq_len != qual_len
        bad |= (lengths > self._max_line).reshape(n, 4).any(axis=1)
        wrong_ending = has_cr != bool(self.crlf)
        if virtual_end:
            wrong_ending[-1] = False
        bad |= wrong_ending.reshape(n, 4).any(axis=1)

        region = int(newlines[-1]) + 1
        classes = np.frombuffer(buf.translate(_CLASS_TABLE), np.uint8)[:region]
        masked = classes & np.repeat(np.tile(_LINE_MASKS, n), newlines - starts + 1)
        if not masked.all():
            bad[np.searchsorted(heads, int(np.argmin(masked)), side="right") - 1] = True
        if buf.count(b"\r", 0, region) != int(has_cr.sum()):
            carriage_returns = np.flatnonzero(arr[:region] == CR)
            stray = carriage_returns[arr[carriage_returns + 1] != LF]
            bad[np.searchsorted(heads, int(stray[0]), side="right") - 1] = True

        if not buf.isascii():
            # Read ids become Parquet strings, so headers must be UTF-8. One decode of the whole region (only
            # when it holds a byte >= 0x80) stands in for one per header: LF is ASCII, so the first invalid
            # byte lies in the line that holds it, and that record goes to the diagnosis, which names it
            # (a sequence or quality line with such a byte already failed the class check).
            try:
                buf[:region].decode("utf-8")
            except UnicodeDecodeError as exc:
                bad[np.searchsorted(heads, exc.start, side="right") - 1] = True

        first_bad = int(np.argmax(bad)) if bad.any() else n
        # '+' lines with text (old Illumina files repeat the header) are rare enough for a plain loop.
        for i in np.flatnonzero(plus_len[:first_bad] > 1).tolist():
            plus_text = buf[pluses[i] + 1: ends[4 * i + 2]]
            if not plus_text_ok(plus_text, buf[heads[i] + 1: ends[4 * i]]):
                first_bad = i
                break

        good_end = int(heads[first_bad]) if first_bad < n else region
        if good_end and not self.saw_low_quality:
            seen = int(np.bitwise_or.reduce(masked[:good_end]))
            self.saw_quality = self.saw_quality or bool(qual_len[:first_bad].any())
            if seen & _QUALITY_LOW:
                self.saw_low_quality = True
            elif seen & _QUALITY_HIGH and self.first_high_quality is None:
                at = int(np.argmax((masked[:good_end] & _QUALITY_HIGH) != 0))
                record = self.records + int(np.searchsorted(heads, at, side="right"))  # 1-based
                self.first_high_quality = Position(self.name, record, 4 * record, base + at)
        return first_bad

    def _account(self, arr: np.ndarray, newlines: np.ndarray) -> None:
        """Add validated records to the statistics."""
        n = len(newlines) // 4
        if not n:
            return
        starts, ends, _ = self._line_spans(arr, newlines)
        seq_len = (ends - starts)[1::4]
        self.records += n
        self.bases += int(seq_len.sum())
        shortest, longest = int(seq_len.min()), int(seq_len.max())
        self.min_length = shortest if self.min_length is None else min(self.min_length, shortest)
        self.max_length = max(self.max_length, longest)

    def _batch(self, arr: np.ndarray, newlines: np.ndarray, base: int) -> Batch:
        n = len(newlines) // 4
        if not self._collect_ids:
            return Batch(n)
        starts, ends, _ = self._line_spans(arr, newlines)
        heads, head_ends = starts[0::4], ends[0::4]
        id_starts, id_ends = mate_id_spans(arr, heads + 1, head_ends)
        id_lengths = id_ends - id_starts
        return Batch(n, ids=gather(arr, id_starts, id_lengths), id_lengths=id_lengths,
                      header_offsets=heads + base)

    # -- the line-by-line diagnosis -----------------------------------------------------------------------

    def _diagnose(self, buf: bytes, start: int, offset: int, *, eof: bool, virtual_end: int | None = None,
                  partial_ok: bool = False) -> InvalidFastq | NeedMore | None:
        return diagnose(buf, start, offset, name=self.name, records=self.records, max_line=self._max_line,
                        file_crlf=self.crlf, eof=eof, virtual_end=virtual_end, partial_ok=partial_ok)
