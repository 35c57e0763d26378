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
* Header: starts with '@' and the read id (text up to the first space or tab) is non-empty. Any text except
  control characters may follow. The whole header line must be valid UTF-8 (``HEADER_NOT_UTF8``, at the
  first invalid byte): Phase 1 stores read ids as Arrow/Parquet strings, which must be UTF-8, and writes
  the whole header into its trimmed FASTQ; Latin-1 or binary ids would break every later stage.
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
``helixflow.errors.InvalidFastq.codes`` lists every code with its meaning (README's FASTQ table is rendered
from it).

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
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any

from helixflow.errors import InvalidFastq, Position
from helixflow.fastq.pairs import check_pair
from helixflow.fastq.rules import DEFAULT_MAX_LINE_LENGTH
from helixflow.fastq.scan import FileReport, Scanner
from helixflow.fastq.streams import DEFAULT_CHUNK_SIZE, BinarySource

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
            scanners.append(Scanner(src, name=src_name, chunk_size=chunk_size, max_line_length=max_line_length,
                                     progress=progress, collect_ids=mate_source is not None))
        if len(scanners) == 1:
            for _ in scanners[0].batches():
                pass
        else:
            check_pair(*scanners)
        reports = tuple(s.report() for s in scanners)
    if not allow_phred64:
        check_encoding(reports, [scanner.first_high_quality for scanner in scanners])
    return ValidationReport(reports)


def check_encoding(reports: tuple[FileReport, ...], first_high_quality: list[Position | None]) -> None:
    """``PHRED64_NOT_SUPPORTED`` at the first quality character above 'J' of the first Phred+64 file."""
    for report, first_high in zip(reports, first_high_quality, strict=True):
        if report.quality_encoding == "phred64":
            raise InvalidFastq(
                f"record {first_high.record}: qualities look Phred+64 (no character below "
                f"';', some above 'J'); convert to Phred+33 (e.g. `seqtk seq -VQ64`)",
                code="PHRED64_NOT_SUPPORTED", position=first_high)
