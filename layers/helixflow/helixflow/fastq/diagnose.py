"""The line-by-line diagnosis: name the first defect of a record the vectorised pass rejected, and its exact
position. Plain Python, run once per file at most (validation stops at the first defect)."""

from __future__ import annotations

from collections.abc import Callable

from helixflow.errors import InvalidFastq, Position
from helixflow.fastq.rules import (AT, CR, MULTILINE_LOOKAHEAD_LINES, PLUS, QUALITY_FIRST, QUALITY_LAST,
                                   SAM_HEADER_TAGS, SEQUENCE_BYTES, SPACE, TAB, is_control, plus_text_ok,
                                   show_byte, show_text)


class NeedMore:
    """The diagnosis needs lines beyond the data at hand."""


NEED_MORE = NeedMore()


def diagnose(buf: bytes, start: int, offset: int, *, name: str, records: int, max_line: int,
             file_crlf: bool | None, eof: bool, virtual_end: int | None = None,
             partial_ok: bool = False) -> InvalidFastq | NeedMore | None:
    """Name the first defect of the record at ``buf[start:]`` (decompressed offset ``offset``), checking
    its lines in order. ``NEED_MORE`` when that takes lines not in ``buf`` yet; None when the record is
    fine (or, with ``partial_ok``, fine as far as it goes)."""
    number = records + 1
    first_line = 4 * records + 1

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
                if len(buf) - line_start > max_line:
                    return error("LINE_TOO_LONG", f"line is longer than {max_line} bytes",
                                 first_line + len(lines), line_start)
                return None
            crlf = terminator > line_start and buf[terminator - 1] == CR
            lines.append((line_start, terminator - crlf, crlf))
        return lines[k]

    def common_checks(k: int, what: str) -> InvalidFastq | None:
        """Length, control characters and line ending of line k."""
        line_start, line_end, crlf = lines[k]
        if line_end - line_start > max_line:
            return error("LINE_TOO_LONG", f"{what} line is longer than {max_line} bytes",
                         first_line + k, line_start)
        for at in range(line_start, line_end):
            if is_control(buf[at]):
                return error("BINARY_DATA", f"{what} line has control character {show_byte(buf[at])} at "
                             f"column {at - line_start + 1}", first_line + k, at)
        return None

    def ending_check(k: int, what: str) -> InvalidFastq | None:
        line_start, line_end, crlf = lines[k]
        if line_end + crlf == virtual_end or crlf == bool(file_crlf):
            return None
        found, expected = ("CRLF", "LF") if crlf else ("LF", "CRLF")
        return error("MIXED_LINE_ENDINGS", f"{what} line ends with {found} but line 1 ends with {expected}",
                     first_line + k, line_end)

    def truncated(k: int) -> InvalidFastq | NeedMore | None:
        if partial_ok:
            return None
        if not eof:
            return NEED_MORE
        after = ("header", "sequence", "'+'")[k - 1]
        return error("TRUNCATED_RECORD", f"the file ends after the {after} line; a record has 4 lines "
                     f"(header, sequence, '+', quality)", first_line + k, len(buf) - (virtual_end is not None))

    # Line 1: header.
    header = line(0)
    if header is None or isinstance(header, InvalidFastq):
        return header if header is not None else (None if partial_ok else NEED_MORE)
    h_start, h_end, _ = header
    if h_start == h_end:
        return error("BLANK_LINE", "blank line where a header ('@...') belongs", first_line, h_start)
    found = common_checks(0, "header")
    if found:
        return found
    if buf[h_start] != AT:
        return error("BAD_HEADER", f"header line must start with '@', found {show_text(buf, h_start, h_end)}",
                     first_line, h_start)
    if h_end - h_start < 2 or buf[h_start + 1] in (SPACE, TAB):
        return error("BAD_HEADER", "header has an empty read id (nothing between '@' and the first space)",
                     first_line, h_start)
    try:
        buf[h_start:h_end].decode("utf-8")
    except UnicodeDecodeError as exc:
        return error("HEADER_NOT_UTF8", f"header has byte {show_byte(buf[h_start + exc.start])} at column "
                     f"{exc.start + 1} that is not valid UTF-8 ({exc.reason}); read ids are stored as UTF-8 text",
                     first_line, h_start + exc.start)
    if number == 1 and buf[h_start:h_start + 4] in SAM_HEADER_TAGS:
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
        if buf[at] not in SEQUENCE_BYTES:
            hint = " (gaps and '.' for unknown bases are not accepted; use N)" if buf[at] in b".-*" else ""
            return error("BAD_SEQUENCE_CHAR", f"sequence has invalid character {show_byte(buf[at])} at "
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
    if p_end == p_start or buf[p_start] != PLUS:
        if s_start == s_end:
            return error("BLANK_LINE", "blank line after the header (an empty read still has its '+' line "
                         "right after the empty sequence line)", first_line + 1, s_start)
        found = common_checks(2, "third")
        if found:
            return found
        if p_end == p_start:
            return error("BLANK_LINE", "blank line where the '+' line belongs", first_line + 2, p_start)
        wrapped = _wrapped_sequence(buf, line, 2, eof=eof)
        if wrapped is NEED_MORE:
            return None if partial_ok else NEED_MORE
        if wrapped:
            return error("MULTILINE_FASTQ", "the sequence continues on the next line; wrapped (multi-line) "
                         "FASTQ is not supported (unwrap it, e.g. `seqtk seq`)", first_line + 2, p_start)
        return error("MISSING_PLUS_LINE", f"expected the '+' line after the sequence, found "
                     f"{show_text(buf, p_start, p_end)}", first_line + 2, p_start)
    found = common_checks(2, "'+'")
    if found:
        return found
    if p_end - p_start > 1 and not plus_text_ok(buf[p_start + 1:p_end], buf[h_start + 1:h_end]):
        return error("PLUS_HEADER_MISMATCH", f"'+' line text {show_text(buf, p_start + 1, p_end)} is neither "
                     f"the header nor the read id {show_text(buf, h_start + 1, h_end)}",
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
            return error("BAD_QUALITY_CHAR", f"quality has invalid character {show_byte(buf[at])} at column "
                         f"{at - q_start + 1}; allowed are '!' to '~'", first_line + 3, at)
    seq_length, qual_length = s_end - s_start, q_end - q_start
    if seq_length != qual_length:
        if q_end + quality[2] == virtual_end and qual_length < seq_length:
            return error("TRUNCATED_RECORD", f"the file ends inside the quality line ({qual_length} of "
                         f"{seq_length} characters)", first_line + 3, q_end)
        return error("SEQ_QUAL_LENGTH_MISMATCH", f"sequence has {seq_length} bases but quality has "
                     f"{qual_length} characters", first_line + 3, q_start)
    return ending_check(3, "quality")


def _wrapped_sequence(buf: bytes, line: Callable, k: int, *, eof: bool) -> bool | NeedMore:
    """Whether lines k, k+1, ... are sequence letters up to a '+' line (a wrapped record)."""
    for j in range(k, k + MULTILINE_LOOKAHEAD_LINES):
        span = line(j)
        if span is None:
            return False if eof else NEED_MORE
        if isinstance(span, InvalidFastq):
            return False
        line_start, line_end, _ = span
        if line_end > line_start and buf[line_start] == PLUS:
            return j > k
        if line_end == line_start or not all(b in SEQUENCE_BYTES for b in buf[line_start:line_end]):
            return False
    return False
