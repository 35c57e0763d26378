"""Streaming FASTQ validation: the first defect of a file (or a pair of mate files), by name and position.

``validate_fastq`` reads uncompressed, gzip or BGZF input (see ``streams``) in bounded chunks, checks every
record and returns a ``ValidationReport``, or raises ``helixflow.errors.InvalidFastq`` on the FIRST defect.
The Validate Lambda and ``helixflow validate`` both call it.

Positions. Every error carries the file name, the 1-based record number, the 1-based line number and the
0-based byte offset into the decompressed stream. The byte offset points at the offending byte where there is
one (a bad character, the terminator of a line with the wrong ending) and at the first byte of the offending
line otherwise; for an input that ends too early it is the end of the data. Records are always 4 lines, so
record ``r`` starts on line ``4r - 3``.

Policies
--------
* Records are exactly 4 lines: ``@id[ description]``, sequence, ``+[text]``, quality. Wrapped (multi-line)
  FASTQ is rejected with ``MULTILINE_FASTQ``, recognised when the line where '+' belongs is made of sequence
  letters and a '+' line follows after such lines only (within 10,000 lines); otherwise ``MISSING_PLUS_LINE``.
* Header: starts with '@' and the read id (text up to the first space or tab) is non-empty. Any bytes except
  control characters may follow (UTF-8 descriptions are fine).
* Sequence alphabet: the IUPAC nucleotide codes A C G T U N R Y S W K M B D H V, either case. Gap and
  "missing" symbols ('.', '-', '*') and anything else are ``BAD_SEQUENCE_CHAR``.
* Zero-length reads are valid (an empty sequence line and an empty quality line); the report's
  ``min_length`` shows them.
* '+' line: a lone '+' or '+' followed by either the whole header text or just the read id; any other text
  is ``PLUS_HEADER_MISMATCH``.
* Quality characters: '!' (33) to '~' (126). Anything else is ``BAD_QUALITY_CHAR``.
* Quality encoding: Phred+33 when any quality character is below ';' (59), which Phred+64 (and Solexa)
  cannot produce; Phred+64 when none is and some character is above 'J' (74, Phred+33's usual ceiling of
  Q41); Phred+33 otherwise (a file of uniformly high qualities, like all-'F' binned NovaSeq data, reads as
  Phred+33); ``None`` when the input has no quality characters at all. The file is never rejected for
  having both ranges: long-read Phred+33 data legitimately spans '!' to '~'. Phred+64 input is rejected with
  ``PHRED64_NOT_SUPPORTED`` (at the first quality character above 'J') unless ``allow_phred64=True``.
* Line endings: LF, or CRLF consistently; line 1 decides which, and the report says (``line_endings``).
  A line ending the other way is ``MIXED_LINE_ENDINGS``; a carriage return anywhere but right before a
  line feed is ``BINARY_DATA``. A missing newline after the last line is accepted.
* Blank lines are ``BLANK_LINE`` anywhere, at the end of the file too: one newline ends the last line, an
  empty line after it is a defect (it is also what a concatenation gone wrong looks like).
* Control characters (bytes 0-31 except tab, line feed and CR before LF; and 127) anywhere are
  ``BINARY_DATA``, reported ahead of the line's own character rules. A tab is allowed in headers only.
* Lines longer than ``max_line_length`` (16 MiB by default, four times the longest nanopore reads) are
  ``LINE_TOO_LONG``: the validator keeps at most one record in memory, and this bounds it.
* Duplicate read ids are not checked: it needs memory proportional to the file (or a probabilistic filter
  with false alarms), and duplicates do not stop any stage of the pipeline.
* Pairs (``mate_source``): read in lockstep. The mates must have the same number of records
  (``PAIR_COUNT_MISMATCH``, reported at the first record that only the longer file has) and, record by
  record, the same read id once a trailing '/1' or '/2' is removed (``PAIR_NAME_MISMATCH``, reported in the
  mate file). The earliest defect by record number wins; at the same record a defect inside a file comes
  before a pairing defect, and R1 before R2.

Error codes
-----------
=========================  =====================================================================
EMPTY_FILE                 the input has no data (after decompression)
NOT_FASTQ                  the input does not start with '@' (FASTA, BAM, SAM, a byte-order mark...)
UNSUPPORTED_COMPRESSION    bzip2, xz, zstd, lz4 or zip input
TRUNCATED_GZIP             the gzip stream ends inside a member
TRAILING_GARBAGE           bytes after the last gzip member that are not another member
CORRUPT_GZIP               invalid deflate data, bad gzip header, or CRC/length mismatch
BAD_HEADER                 header line without '@' or with an empty read id
BAD_SEQUENCE_CHAR          a character outside the IUPAC nucleotide codes in a sequence
MISSING_PLUS_LINE          the third line of a record does not start with '+'
PLUS_HEADER_MISMATCH       text on the '+' line that is neither the header nor the read id
BAD_QUALITY_CHAR           a quality character outside '!'..'~'
SEQ_QUAL_LENGTH_MISMATCH   sequence and quality lengths differ
TRUNCATED_RECORD           the input ends inside a record
BLANK_LINE                 an empty line where a header or '+' line belongs, or after the last record
MULTILINE_FASTQ            a wrapped sequence (multi-line FASTQ)
MIXED_LINE_ENDINGS         a line ends with LF in a CRLF file or the other way round
BINARY_DATA                a control character (NUL, ESC, lone CR...)
LINE_TOO_LONG              a line longer than max_line_length
PHRED64_NOT_SUPPORTED      Phred+64 qualities while allow_phred64 is False
PAIR_COUNT_MISMATCH        the mates have different numbers of records
PAIR_NAME_MISMATCH         the mates' read ids differ at the same record
=========================  =====================================================================

How it is fast. Each chunk (1 MiB of decompressed text by default) is checked with whole-array numpy
operations: newlines are found in one pass; a 256-entry table (applied by ``bytes.translate``) gives every
byte its classes (sequence letter, quality character, header text, low or high quality); a per-byte mask
repeated from the line kinds says which class each byte needs, so one AND and one ``all`` check every byte of
every line; lengths, '@' and '+' are compared per record as vectors. Only the first record that fails is
looked at again, line by line in plain Python (``_diagnose``), to name the defect and its exact position.
Records cut by a chunk boundary are carried into the next chunk, so the result, positions included, does not
depend on the chunk size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from helixflow.errors import InvalidFastq, Position
from helixflow.fastq.streams import DEFAULT_CHUNK_SIZE, BinarySource, DecompressedStream

DEFAULT_MAX_LINE_LENGTH = 16 << 20
MULTILINE_LOOKAHEAD_LINES = 10_000

SEQUENCE_ALPHABET = b"ACGTUNRYSWKMBDHVacgtunryswkmbdhv"
QUALITY_FIRST, QUALITY_LAST = ord("!"), ord("~")
PHRED33_ONLY_BELOW = ord(";")  # Phred+64 and Solexa never go below Q-5 = ';'
PHRED64_ABOVE = ord("J")  # Phred+33 Illumina tops out at Q41 = 'J'

_LF, _CR, _TAB, _SPACE = 10, 13, 9, 32
_AT, _PLUS = ord("@"), ord("+")

# Byte classes, one bit each; a byte may be in several.
_IN_SEQUENCE = 1
_IN_QUALITY = 2
_IN_TEXT = 4  # header and '+' lines
_QUALITY_LOW = 8  # a quality character below ';': proves Phred+33
_QUALITY_HIGH = 16  # a quality character above 'J': hints Phred+64


def _is_control(byte: int) -> bool:
    return (byte < _SPACE and byte != _TAB) or byte == 127


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
        if not _is_control(byte):
            bits |= _IN_TEXT
        table[byte] = bits
    # Line terminators pass every line's check; stray CRs are caught by counting them separately.
    table[_LF] = table[_CR] = _IN_SEQUENCE | _IN_QUALITY | _IN_TEXT
    return bytes(table)


_CLASS_TABLE = _class_table()
# What each of a record's four lines asks of its bytes. The quality line keeps the LOW/HIGH bits too, so that
# OR-ing the masked classes tells which quality ranges occurred, and only quality lines can contribute them.
_LINE_MASKS = np.array([_IN_TEXT, _IN_SEQUENCE, _IN_TEXT, _IN_QUALITY | _QUALITY_LOW | _QUALITY_HIGH], np.uint8)
_SEQUENCE_BYTES = frozenset(SEQUENCE_ALPHABET)
_NOT_FOUND = np.iinfo(np.int64).max
_SAM_HEADER_TAGS = (b"@HD\t", b"@SQ\t", b"@RG\t", b"@PG\t", b"@CO\t")


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


@dataclass(frozen=True)
class ValidationReport:
    """A valid input: one file, or two mates with the same number of records."""

    files: tuple[FileReport, ...]

    @property
    def paired(self) -> bool:
        return len(self.files) == 2

    @property
    def records(self) -> int:
        """Records per file (equal in both mates)."""
        return self.files[0].records

    @property
    def bases(self) -> int:
        return sum(f.bases for f in self.files)

    @property
    def min_length(self) -> int:
        return min(f.min_length for f in self.files)

    @property
    def max_length(self) -> int:
        return max(f.max_length for f in self.files)

    @property
    def quality_encoding(self) -> str | None:
        """Phred+64 if either mate is, else Phred+33 if either has qualities."""
        encodings = {f.quality_encoding for f in self.files}
        for encoding in ("phred64", "phred33"):
            if encoding in encodings:
                return encoding
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"valid": True, "paired": self.paired, "records": self.records, "bases": self.bases,
                "min_length": self.min_length, "max_length": self.max_length,
                "quality_encoding": self.quality_encoding, "files": [asdict(f) for f in self.files]}


def validate_fastq(source: BinarySource | str | os.PathLike[str], *, name: str | None = None,
                   mate_source: BinarySource | str | os.PathLike[str] | None = None, mate_name: str | None = None,
                   allow_phred64: bool = False, chunk_size: int = DEFAULT_CHUNK_SIZE,
                   max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
                   progress: Callable[[int], None] | None = None) -> ValidationReport:
    """Validate a FASTQ file, or a pair of mate files, and describe it; raise ``InvalidFastq`` on the first
    defect.

    ``source`` and ``mate_source`` are paths or binary file-likes with ``read(n)`` (a local file opened 'rb',
    a botocore ``StreamingBody``); paths are opened and closed here, file-likes are left open. ``name`` and
    ``mate_name`` are what errors and the report call the files (default: the path). ``progress`` is called
    with the number of bytes read from the sources (as stored) after each read.
    """
    with ExitStack() as stack:
        scanners = []
        for src, src_name in ((source, name), (mate_source, mate_name)):
            if src is None:
                continue
            if isinstance(src, str | os.PathLike):
                src_name = src_name or os.fspath(src)
                src = stack.enter_context(open(src, "rb"))
            src_name = src_name or getattr(src, "name", None) or "<input>"
            scanners.append(_Scanner(src, name=src_name, chunk_size=chunk_size, max_line_length=max_line_length,
                                     progress=progress, collect_ids=mate_source is not None))
        if len(scanners) == 1:
            for _ in scanners[0].batches():
                pass
        else:
            _check_pair(*scanners)
        reports = tuple(s.report() for s in scanners)
    if not allow_phred64:
        for scanner, report in zip(scanners, reports, strict=True):
            if report.quality_encoding == "phred64":
                raise InvalidFastq(
                    f"record {scanner.first_high_quality.record}: qualities look Phred+64 (no character below "
                    f"';', some above 'J'); convert to Phred+33 (e.g. `seqtk seq -VQ64`)",
                    code="PHRED64_NOT_SUPPORTED", position=scanner.first_high_quality)
    return ValidationReport(reports)


# -- one file -----------------------------------------------------------------------------------------------

@dataclass
class _Batch:
    """Records that passed every per-file check, in order. Read ids are filled only for pairs."""

    count: int
    ids: np.ndarray | None = None  # the normalised read ids, concatenated (uint8)
    id_lengths: np.ndarray | None = None
    header_offsets: np.ndarray | None = None  # decompressed offsets of the header lines


class _NeedMore:
    """The diagnosis needs lines beyond the data at hand."""


_NEED_MORE = _NeedMore()


class _Scanner:
    """Streams one file, checks it chunk by chunk and yields the good records in batches."""

    def __init__(self, source: BinarySource, *, name: str, chunk_size: int, max_line_length: int,
                 progress: Callable[[int], None] | None, collect_ids: bool) -> None:
        self.name = name
        self._max_line = max_line_length
        self._collect_ids = collect_ids
        self.records = 0  # records validated so far
        self.bases = 0
        self.min_length: int | None = None
        self.max_length = 0
        self.crlf: bool | None = None  # decided by the terminator of line 1
        self.saw_quality = False
        self.saw_low_quality = False
        self.first_high_quality: Position | None = None
        self._stream = self._wrap_stream_errors(
            lambda: DecompressedStream(source, name=name, chunk_size=chunk_size, progress=progress), carry=b"")

    # -- driving ------------------------------------------------------------------------------------------

    def batches(self) -> Iterator[_Batch]:
        carry = b""  # always starts at a record boundary, i.e. on line 4 * records + 1
        carry_offset = 0
        started = False
        chunks = iter(self._stream)
        while True:
            chunk = self._wrap_stream_errors(lambda: next(chunks, None), carry=carry)
            if chunk is None:
                break
            buf = carry + chunk if carry else chunk
            if not started:
                # Wait for a few bytes so the NOT_FASTQ message can name what the file is instead.
                if len(buf) < 8:
                    carry = buf
                    continue
                self._check_start(buf)
                started = True
            consumed = yield from self._scan(buf, carry_offset, eof=False)
            carry = buf[consumed:]
            carry_offset += consumed
        if not started:
            if not carry:
                raise InvalidFastq("the file is empty", code="EMPTY_FILE",
                                   position=Position(self.name, 1, 1, 0))
            self._check_start(carry)
        if carry:
            yield from self._scan(carry, carry_offset, eof=True)

    def report(self) -> FileReport:
        if self.saw_low_quality or (self.saw_quality and self.first_high_quality is None):
            encoding: str | None = "phred33"
        elif self.first_high_quality is not None:
            encoding = "phred64"
        else:
            encoding = None
        s = self._stream
        return FileReport(
            file=self.name, compression=s.compression, gzip_members=s.gzip_members,
            compressed_bytes=s.compressed_bytes, decompressed_bytes=s.decompressed_bytes, sha256=s.sha256,
            records=self.records, bases=self.bases, min_length=self.min_length or 0, max_length=self.max_length,
            quality_encoding=encoding, line_endings="crlf" if self.crlf else "lf")

    def _wrap_stream_errors(self, call, *, carry: bytes):
        """Run a stream call; place a gzip error at the record and line where the data broke off, unless the
        complete lines before it already hold a defect (which then comes first)."""
        try:
            return call()
        except InvalidFastq as exc:
            if exc.position.record is not None:
                raise
            base = exc.position.byte_offset - len(carry) if exc.position.byte_offset is not None else 0
            if carry and not self.records:
                self._check_start(carry)
            if carry:
                earlier = self._diagnose(carry, 0, base, eof=False, partial_ok=True)
                if isinstance(earlier, InvalidFastq):
                    raise earlier from None
            position = Position(self.name, self.records + 1, 4 * self.records + 1 + carry.count(b"\n"),
                                exc.position.byte_offset if exc.position.byte_offset is not None else 0)
            raise InvalidFastq(exc.message, code=exc.code, position=position, details=exc.details) from None

    def _check_start(self, head: bytes) -> None:
        first = head[0]
        if first == _AT:
            return
        if first in (_LF, _CR):
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
            what = f"the first byte is {_show_byte(first)}; FASTQ records start with '@'"
        raise InvalidFastq(f"not FASTQ: {what}", code="NOT_FASTQ", position=Position(self.name, 1, 1, 0))

    # -- the vectorised pass ------------------------------------------------------------------------------

    def _scan(self, buf: bytes, base: int, *, eof: bool) -> Iterator[_Batch]:
        """Check the complete records in ``buf`` (decompressed offset ``base``); yield the good ones; raise on
        the first defect; return how many bytes were consumed (the rest is carried into the next chunk)."""
        virtual_end = eof and buf[-1] != _LF
        if virtual_end:
            # A missing final newline is accepted: terminate the last line so it is a line like the others.
            buf += b"\n"
        arr = np.frombuffer(buf, np.uint8)
        newlines = np.flatnonzero(arr == _LF)
        if self.crlf is None and len(newlines) and not (virtual_end and len(newlines) == 1):
            self.crlf = bool(newlines[0] > 0 and arr[newlines[0] - 1] == _CR)
        n_records = len(newlines) // 4
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
                if verdict is _NEED_MORE:
                    return record_start
                raise self._defect(verdict)
            self._account(arr, newlines[: 4 * n_records])
            yield self._batch(arr, newlines[: 4 * n_records], base)
            consumed = int(newlines[4 * n_records - 1]) + 1
        rest = len(buf) - consumed
        if eof and rest:
            # 1 to 3 lines of an unfinished record: name the first thing wrong with them (at least truncation).
            raise self._defect(self._diagnose(buf, consumed, base + consumed, eof=True,
                                              virtual_end=len(buf) - 1 if virtual_end else None))
        partial_line = len(buf) - (int(newlines[-1]) + 1 if len(newlines) else 0)
        if partial_line > self._max_line:
            raise self._defect(self._diagnose(buf, consumed, base + consumed, eof=False))
        return consumed

    def _defect(self, verdict: InvalidFastq | _NeedMore | None) -> InvalidFastq:
        """The diagnosis of a record the fast checks rejected; it must name a defect."""
        if not isinstance(verdict, InvalidFastq):
            raise RuntimeError(f"{self.name}: record {self.records + 1} failed the fast checks but the "
                               f"line-by-line diagnosis found no defect ({verdict!r})")
        return verdict

    def _line_spans(self, arr: np.ndarray, newlines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = np.empty(len(newlines), np.int64)
        starts[0] = 0
        starts[1:] = newlines[:-1] + 1
        has_cr = (newlines > starts) & (arr[newlines - 1] == _CR)
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

        bad = arr[heads] != _AT
        bad |= head_len < 2
        after_at = arr[heads + 1]  # in range: a header line has at least its terminator after '@'
        bad |= (after_at == _SPACE) | (after_at == _TAB)
        bad |= arr[pluses] != _PLUS
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
            carriage_returns = np.flatnonzero(arr[:region] == _CR)
            stray = carriage_returns[arr[carriage_returns + 1] != _LF]
            bad[np.searchsorted(heads, int(stray[0]), side="right") - 1] = True

        first_bad = int(np.argmax(bad)) if bad.any() else n
        # '+' lines with text (old Illumina files repeat the header) are rare enough for a plain loop.
        for i in np.flatnonzero(plus_len[:first_bad] > 1).tolist():
            plus_text = buf[pluses[i] + 1: ends[4 * i + 2]]
            if not _plus_text_ok(plus_text, buf[heads[i] + 1: ends[4 * i]]):
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

    def _batch(self, arr: np.ndarray, newlines: np.ndarray, base: int) -> _Batch:
        n = len(newlines) // 4
        if not self._collect_ids:
            return _Batch(n)
        starts, ends, _ = self._line_spans(arr, newlines)
        heads, head_ends = starts[0::4], ends[0::4]
        id_starts = heads + 1
        blanks = np.flatnonzero((arr[: int(newlines[-1])] == _SPACE) | (arr[: int(newlines[-1])] == _TAB))
        next_blank = np.searchsorted(blanks, id_starts)
        first_blank = np.where(next_blank < len(blanks), blanks[np.minimum(next_blank, len(blanks) - 1)]
                               if len(blanks) else _NOT_FOUND, _NOT_FOUND)
        id_ends = np.minimum(first_blank, head_ends)
        # Mates are named read/1 and read/2 in older Illumina output: compare without the suffix.
        mate_suffix = ((id_ends - id_starts >= 2) & (arr[id_ends - 2] == ord("/"))
                       & ((arr[id_ends - 1] == ord("1")) | (arr[id_ends - 1] == ord("2"))))
        id_ends = id_ends - 2 * mate_suffix
        id_lengths = id_ends - id_starts
        return _Batch(n, ids=_gather(arr, id_starts, id_lengths), id_lengths=id_lengths,
                      header_offsets=heads + base)

    # -- the line-by-line diagnosis -----------------------------------------------------------------------

    def _diagnose(self, buf: bytes, start: int, offset: int, *, eof: bool, virtual_end: int | None = None,
                  partial_ok: bool = False) -> InvalidFastq | _NeedMore | None:
        """Name the first defect of the record at ``buf[start:]`` (decompressed offset ``offset``), checking
        its lines in order. ``_NEED_MORE`` when that takes lines not in ``buf`` yet; None when the record is
        fine (or, with ``partial_ok``, fine as far as it goes)."""
        number = self.records + 1
        first_line = 4 * self.records + 1
        name = self.name

        def error(code: str, message: str, line: int, at: int) -> InvalidFastq:
            return InvalidFastq(f"record {number}: {message}", code=code,
                                position=Position(name, number, line, offset + at - start))

        lines: list[tuple[int, int, bool]] = []  # (start, content end, ends with CR) of each complete line

        def line(k: int) -> tuple[int, int, bool] | InvalidFastq | None:
            """Line k of the record (0-based), or None when buf has no more complete lines."""
            while len(lines) <= k:
                line_start = lines[-1][1] + lines[-1][2] + 1 if lines else start
                terminator = buf.find(b"\n", line_start)
                if terminator < 0:
                    if len(buf) - line_start > self._max_line:
                        return error("LINE_TOO_LONG", f"line is longer than {self._max_line} bytes",
                                     first_line + len(lines), line_start)
                    return None
                crlf = terminator > line_start and buf[terminator - 1] == _CR
                lines.append((line_start, terminator - crlf, crlf))
            return lines[k]

        def common_checks(k: int, what: str) -> InvalidFastq | None:
            """Length, control characters and line ending of line k."""
            line_start, line_end, crlf = lines[k]
            if line_end - line_start > self._max_line:
                return error("LINE_TOO_LONG", f"{what} line is longer than {self._max_line} bytes",
                             first_line + k, line_start)
            for at in range(line_start, line_end):
                if _is_control(buf[at]):
                    return error("BINARY_DATA", f"{what} line has control character {_show_byte(buf[at])} at "
                                 f"column {at - line_start + 1}", first_line + k, at)
            return None

        def ending_check(k: int, what: str) -> InvalidFastq | None:
            line_start, line_end, crlf = lines[k]
            if line_end + crlf == virtual_end or crlf == bool(self.crlf):
                return None
            found, expected = ("CRLF", "LF") if crlf else ("LF", "CRLF")
            return error("MIXED_LINE_ENDINGS", f"{what} line ends with {found} but line 1 ends with {expected}",
                         first_line + k, line_end)

        def truncated(k: int) -> InvalidFastq | _NeedMore | None:
            if partial_ok:
                return None
            if not eof:
                return _NEED_MORE
            after = ("header", "sequence", "'+'")[k - 1]
            return error("TRUNCATED_RECORD", f"the file ends after the {after} line; a record has 4 lines "
                         f"(header, sequence, '+', quality)", first_line + k, len(buf) - (virtual_end is not None))

        # Line 1: header.
        header = line(0)
        if header is None or isinstance(header, InvalidFastq):
            return header if header is not None else (None if partial_ok else _NEED_MORE)
        h_start, h_end, _ = header
        if h_start == h_end:
            return error("BLANK_LINE", "blank line where a header ('@...') belongs", first_line, h_start)
        found = common_checks(0, "header")
        if found:
            return found
        if buf[h_start] != _AT:
            return error("BAD_HEADER", f"header line must start with '@', found {_show_text(buf, h_start, h_end)}",
                         first_line, h_start)
        if h_end - h_start < 2 or buf[h_start + 1] in (_SPACE, _TAB):
            return error("BAD_HEADER", "header has an empty read id (nothing between '@' and the first space)",
                         first_line, h_start)
        if number == 1 and buf[h_start:h_start + 4] in _SAM_HEADER_TAGS:
            # Only reached when record 1 fails: a read named "HD" followed by a tab is still fine FASTQ.
            return InvalidFastq("not FASTQ: this looks like SAM text (header lines '@HD', '@SQ'...)",
                                code="NOT_FASTQ", position=Position(name, 1, 1, offset))
        found = ending_check(0, "header")
        if found:
            return found

        # Line 2: sequence.
        sequence = line(1)
        if sequence is None or isinstance(sequence, InvalidFastq):
            return sequence if sequence is not None else truncated(1)
        s_start, s_end, _ = sequence
        found = common_checks(1, "sequence")
        if found:
            return found
        for at in range(s_start, s_end):
            if buf[at] not in _SEQUENCE_BYTES:
                hint = " (gaps and '.' for unknown bases are not accepted; use N)" if buf[at] in b".-*" else ""
                return error("BAD_SEQUENCE_CHAR", f"sequence has invalid character {_show_byte(buf[at])} at "
                             f"column {at - s_start + 1}{hint}; allowed are the IUPAC nucleotide codes "
                             f"ACGTUNRYSWKMBDHV in either case", first_line + 1, at)
        found = ending_check(1, "sequence")
        if found:
            return found

        # Line 3: '+'.
        plus = line(2)
        if plus is None or isinstance(plus, InvalidFastq):
            return plus if plus is not None else truncated(2)
        p_start, p_end, _ = plus
        if p_end == p_start or buf[p_start] != _PLUS:
            if s_start == s_end:
                return error("BLANK_LINE", "blank line after the header (an empty read still has its '+' line "
                             "right after the empty sequence line)", first_line + 1, s_start)
            found = common_checks(2, "third")
            if found:
                return found
            if p_end == p_start:
                return error("BLANK_LINE", "blank line where the '+' line belongs", first_line + 2, p_start)
            wrapped = self._wrapped_sequence(buf, line, 2, eof=eof)
            if wrapped is _NEED_MORE:
                return None if partial_ok else _NEED_MORE
            if wrapped:
                return error("MULTILINE_FASTQ", "the sequence continues on the next line; wrapped (multi-line) "
                             "FASTQ is not supported (unwrap it, e.g. `seqtk seq`)", first_line + 2, p_start)
            return error("MISSING_PLUS_LINE", f"expected the '+' line after the sequence, found "
                         f"{_show_text(buf, p_start, p_end)}", first_line + 2, p_start)
        found = common_checks(2, "'+'")
        if found:
            return found
        if p_end - p_start > 1 and not _plus_text_ok(buf[p_start + 1:p_end], buf[h_start + 1:h_end]):
            return error("PLUS_HEADER_MISMATCH", f"'+' line text {_show_text(buf, p_start + 1, p_end)} is neither "
                         f"the header nor the read id {_show_text(buf, h_start + 1, h_end)}",
                         first_line + 2, p_start)
        found = ending_check(2, "'+'")
        if found:
            return found

        # Line 4: quality.
        quality = line(3)
        if quality is None or isinstance(quality, InvalidFastq):
            return quality if quality is not None else truncated(3)
        q_start, q_end, _ = quality
        found = common_checks(3, "quality")
        if found:
            return found
        for at in range(q_start, q_end):
            if not QUALITY_FIRST <= buf[at] <= QUALITY_LAST:
                return error("BAD_QUALITY_CHAR", f"quality has invalid character {_show_byte(buf[at])} at column "
                             f"{at - q_start + 1}; allowed are '!' to '~'", first_line + 3, at)
        seq_length, qual_length = s_end - s_start, q_end - q_start
        if seq_length != qual_length:
            if q_end + quality[2] == virtual_end and qual_length < seq_length:
                return error("TRUNCATED_RECORD", f"the file ends inside the quality line ({qual_length} of "
                             f"{seq_length} characters)", first_line + 3, q_end)
            return error("SEQ_QUAL_LENGTH_MISMATCH", f"sequence has {seq_length} bases but quality has "
                         f"{qual_length} characters", first_line + 3, q_start)
        return ending_check(3, "quality")

    def _wrapped_sequence(self, buf: bytes, line: Callable, k: int, *, eof: bool) -> bool | _NeedMore:
        """Whether lines k, k+1, ... are sequence letters up to a '+' line (a wrapped record)."""
        for j in range(k, k + MULTILINE_LOOKAHEAD_LINES):
            span = line(j)
            if span is None:
                return False if eof else _NEED_MORE
            if isinstance(span, InvalidFastq):
                return False
            line_start, line_end, _ = span
            if line_end > line_start and buf[line_start] == _PLUS:
                return j > k
            if line_end == line_start or not all(b in _SEQUENCE_BYTES for b in buf[line_start:line_end]):
                return False
        return False


# -- pairs --------------------------------------------------------------------------------------------------

class _PendingIds:
    """Read ids of one mate that the other mate has not reached yet."""

    def __init__(self) -> None:
        self.first_record = 1
        self.ids = np.empty(0, np.uint8)
        self.lengths = np.empty(0, np.int64)
        self.header_offsets = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, batch: _Batch) -> None:
        self.ids = np.concatenate([self.ids, batch.ids])
        self.lengths = np.concatenate([self.lengths, batch.id_lengths])
        self.header_offsets = np.concatenate([self.header_offsets, batch.header_offsets])

    def drop(self, n: int) -> None:
        self.ids = self.ids[int(self.lengths[:n].sum()):]
        self.lengths = self.lengths[n:]
        self.header_offsets = self.header_offsets[n:]
        self.first_record += n

    def id_text(self, i: int) -> str:
        start = int(self.lengths[:i].sum())
        return bytes(self.ids[start:start + int(self.lengths[i])]).decode("utf-8", "replace")


def _check_pair(first: _Scanner, second: _Scanner) -> None:
    """Run both mates in lockstep; raise the earliest defect of either file or of the pairing."""
    mates = (first, second)
    streams = [first.batches(), second.batches()]
    pending = (_PendingIds(), _PendingIds())
    seen = [0, 0]  # records delivered per mate
    ended = [False, False]
    failures: list[InvalidFastq | None] = [None, None]
    while True:
        _compare_ids(mates, pending)
        # Advance the mate that is behind; once one has stopped, the other only needs to catch up to it.
        if all(ended):
            break
        behind = 0 if (not ended[0] and (ended[1] or seen[0] <= seen[1])) else 1
        if ended[1 - behind] and seen[behind] > seen[1 - behind]:
            break
        try:
            batch = next(streams[behind])
        except StopIteration:
            ended[behind] = True
            continue
        except InvalidFastq as exc:
            ended[behind] = True
            failures[behind] = exc
            continue
        seen[behind] += batch.count
        pending[behind].add(batch)
    _compare_ids(mates, pending)

    # Earliest by record: a failure at record r in one mate, or a count mismatch where the shorter one ends.
    candidates: list[tuple[int, int, InvalidFastq]] = []
    for i, failure in enumerate(failures):
        if failure is not None:
            candidates.append((failure.position.record, i, failure))
    if seen[0] != seen[1]:
        longer = 0 if seen[0] > seen[1] else 1
        shorter_failed = failures[1 - longer] is not None
        if not shorter_failed or failures[1 - longer].position.record > seen[1 - longer] + 1:
            record = seen[1 - longer] + 1
            offset = int(pending[longer].header_offsets[record - pending[longer].first_record])
            candidates.append((record, 2, InvalidFastq(
                f"record {record}: {mates[1 - longer].name} ends after {seen[1 - longer]} records but "
                f"{mates[longer].name} goes on", code="PAIR_COUNT_MISMATCH",
                position=Position(mates[longer].name, record, 4 * record - 3, offset),
                details={"records": {mates[0].name: seen[0], mates[1].name: seen[1]}})))
    if candidates:
        raise min(candidates, key=lambda c: (c[0], c[1]))[2]


def _compare_ids(mates: tuple[_Scanner, _Scanner], pending: tuple[_PendingIds, _PendingIds]) -> None:
    a, b = pending
    n = min(len(a), len(b))
    if not n:
        return
    la, lb = a.lengths[:n], b.lengths[:n]
    length_differs = la != lb
    first_mismatch = int(np.argmax(length_differs)) if length_differs.any() else n
    # Up to the first length difference the ids line up byte for byte.
    ends = np.cumsum(la[:first_mismatch])
    prefix = int(ends[-1]) if first_mismatch else 0
    differs = a.ids[:prefix] != b.ids[:prefix]
    if differs.any():
        first_mismatch = min(first_mismatch, int(np.searchsorted(ends, int(np.argmax(differs)), side="right")))
    if first_mismatch < n:
        record = a.first_record + first_mismatch
        name_a, name_b = a.id_text(first_mismatch), b.id_text(first_mismatch)
        raise InvalidFastq(
            f"record {record}: read id {name_a!r} in {mates[0].name} does not match {name_b!r} in {mates[1].name}",
            code="PAIR_NAME_MISMATCH",
            position=Position(mates[1].name, record, 4 * record - 3, int(b.header_offsets[first_mismatch])),
            details={"first_id": name_a, "second_id": name_b,
                     "first_byte_offset": int(a.header_offsets[first_mismatch])})
    a.drop(n)
    b.drop(n)


# -- helpers ------------------------------------------------------------------------------------------------

def _gather(arr: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The byte ranges [start, start + length) of ``arr``, concatenated."""
    total = int(lengths.sum())
    if not total:
        return np.empty(0, np.uint8)
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return arr[shift + np.arange(total)]


def _plus_text_ok(plus_text: bytes, title: bytes) -> bool:
    if plus_text == title:
        return True
    read_id = title.replace(b"\t", b" ").split(b" ", 1)[0]
    return plus_text == read_id


def _show_byte(byte: int) -> str:
    if 32 < byte < 127:
        return f"'{chr(byte)}'"
    names = {0: "NUL", 9: "tab", 13: "carriage return (CR)", 32: "space", 127: "DEL"}
    return f"0x{byte:02x}" + (f" ({names[byte]})" if byte in names else "")


def _show_text(buf: bytes, start: int, end: int, limit: int = 40) -> str:
    text = buf[start:min(end, start + limit)].decode("utf-8", "replace")
    return repr(text + ("..." if end - start > limit else ""))
