"""The FASTQ record rules both validation passes apply (see ``validator`` for the policies), and how a defect
names the bytes it found."""

from __future__ import annotations

from helixflow.seq.read_ids import read_id

DEFAULT_MAX_LINE_LENGTH = 16 << 20
MULTILINE_LOOKAHEAD_LINES = 10_000

SEQUENCE_ALPHABET = b"ACGTUNRYSWKMBDHVacgtunryswkmbdhv"
QUALITY_FIRST, QUALITY_LAST = ord("!"), ord("~")
PHRED33_ONLY_BELOW = ord(";")  # Phred+64 and Solexa never go below Q-5 = ';'
PHRED64_ABOVE = ord("J")  # Phred+33 Illumina tops out at Q41 = 'J'

LF, CR, TAB, SPACE = 10, 13, 9, 32
AT, PLUS = ord("@"), ord("+")
SEQUENCE_BYTES = frozenset(SEQUENCE_ALPHABET)
SAM_HEADER_TAGS = (b"@HD\t", b"@SQ\t", b"@RG\t", b"@PG\t", b"@CO\t")


def is_control(byte: int) -> bool:
    return (byte < SPACE and byte != TAB) or byte == 127


def plus_text_ok(plus_text: bytes, title: bytes) -> bool:
    if plus_text == title:
        return True
    return plus_text == read_id(title)


def show_byte(byte: int) -> str:
    if 32 < byte < 127:
        return f"'{chr(byte)}'"
    names = {0: "NUL", 9: "tab", 13: "carriage return (CR)", 32: "space", 127: "DEL"}
    return f"0x{byte:02x}" + (f" ({names[byte]})" if byte in names else "")


def show_text(buf: bytes, start: int, end: int, limit: int = 40) -> str:
    text = buf[start:min(end, start + limit)].decode("utf-8", "replace")
    return repr(text + ("..." if end - start > limit else ""))

