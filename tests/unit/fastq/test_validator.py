"""The streaming FASTQ validator: every defect code at an exact position, in plain, gzip and BGZF form and at
any chunk size; pairs; reports; bounded memory."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import random
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from helixflow.errors import InvalidFastq
from helixflow.fastq.streams import INFLATE_STEP, DecompressedStream
from helixflow.fastq.validator import validate_fastq

# Two good records; a third record appended to this starts on line 9 at byte 36.
R1 = b"@r1 x\nACGT\n+\nIIII\n"  # 18 bytes
R2 = b"@r2\nACGTN\n+\nII#II\n"  # 18 bytes
P = R1 + R2

CHUNK_SIZES = [1, 3, 1 << 20]


def bgzf(data: bytes, block: int = 7) -> bytes:
    """A BGZF file (SAM spec 4.1): gzip members of at most ``block`` input bytes with the 'BC' extra field,
    then the empty end-of-file member. Small blocks put member boundaries inside records."""
    out = []
    for start in range(0, len(data) + 1, block) if data else [0]:
        piece = data[start:start + block]
        if not piece and start:
            break
        deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = deflater.compress(piece) + deflater.flush()
        header = b"\x1f\x8b\x08\x04" + b"\0\0\0\0" + b"\0\xff" + struct.pack("<HBBHH", 6, 66, 67, 2,
                                                                          len(payload) + 25)
        out.append(header + payload + struct.pack("<II", zlib.crc32(piece), len(piece)))
    eof_member = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
    return b"".join(out) + eof_member


def multi_gzip(data: bytes, pieces: int = 3) -> bytes:
    """Plain gzip, several members (as `cat a.gz b.gz` makes)."""
    step = max(1, len(data) // pieces)
    return b"".join(gzip.compress(data[i:i + step]) for i in range(0, len(data), step))


FORMS = {"plain": lambda d: d, "gzip": gzip.compress, "multi-gzip": multi_gzip, "bgzf": bgzf}


def check(data: bytes, **kwargs):
    """The report, or the error as a dict."""
    try:
        return validate_fastq(io.BytesIO(data), name="in.fq", **kwargs)
    except InvalidFastq as exc:
        return exc


def error(data: bytes, **kwargs) -> InvalidFastq:
    result = check(data, **kwargs)
    assert isinstance(result, InvalidFastq), f"expected a defect, got {result}"
    return result


# (case id, input, code, record, line, byte offset, extra validate_fastq arguments)
DEFECTS = [
    ("empty", b"", "EMPTY_FILE", 1, 1, 0, {}),
    ("fasta", b">r1\nACGT\n", "NOT_FASTQ", 1, 1, 0, {}),
    ("text", b"hello world\n", "NOT_FASTQ", 1, 1, 0, {}),
    ("starts-blank", b"\n" + P, "BLANK_LINE", 1, 1, 0, {}),
    ("header-without-at", P + b"r3\nACGT\n+\nIIII\n", "BAD_HEADER", 3, 9, 36, {}),
    ("empty-read-id", P + b"@ desc\nACGT\n+\nIIII\n", "BAD_HEADER", 3, 9, 36, {}),
    # Read ids become Parquet strings: a byte that is not UTF-8 is reported at that byte.
    ("latin1-read-id", P + b"@read-1\xb11\nACGT\n+\nIIII\n", "HEADER_NOT_UTF8", 3, 9, 43, {}),
    ("truncated-utf8-in-description", P + b"@r3 Z\xc3\nACGT\n+\nIIII\n", "HEADER_NOT_UTF8", 3, 9, 41, {}),
    ("surrogate-in-read-id", P + b"@r\xed\xa0\x80\nACGT\n+\nIIII\n", "HEADER_NOT_UTF8", 3, 9, 38, {}),
    ("dot-in-sequence", P + b"@r3\nAC.T\n+\nIIII\n", "BAD_SEQUENCE_CHAR", 3, 10, 42, {}),
    ("digit-in-sequence", P + b"@r3\nACGT7\n+\nIIIII\n", "BAD_SEQUENCE_CHAR", 3, 10, 44, {}),
    ("missing-plus", P + b"@r3\nACGT\nIIII\n@r4\nACGT\n+\nIIII\n", "MISSING_PLUS_LINE", 3, 11, 45, {}),
    ("plus-other-id", P + b"@r3\nACGT\n+r4\nIIII\n", "PLUS_HEADER_MISMATCH", 3, 11, 45, {}),
    ("space-in-quality", P + b"@r3\nACGT\n+\nII I\n", "BAD_QUALITY_CHAR", 3, 12, 49, {}),
    ("high-byte-in-quality", P + b"@r3\nACGT\n+\nIII\xe9\n", "BAD_QUALITY_CHAR", 3, 12, 50, {}),
    ("quality-short", P + b"@r3\nACGT\n+\nIII\n", "SEQ_QUAL_LENGTH_MISMATCH", 3, 12, 47, {}),
    ("quality-long", P + b"@r3\nACGT\n+\nIIIII\n", "SEQ_QUAL_LENGTH_MISMATCH", 3, 12, 47, {}),
    ("ends-after-header", P + b"@r3\n", "TRUNCATED_RECORD", 3, 10, 40, {}),
    ("ends-after-sequence", P + b"@r3\nACGT\n", "TRUNCATED_RECORD", 3, 11, 45, {}),
    ("ends-after-plus-no-newline", P + b"@r3\nACGT\n+", "TRUNCATED_RECORD", 3, 12, 46, {}),
    ("ends-inside-quality", P + b"@r3\nACGT\n+\nII", "TRUNCATED_RECORD", 3, 12, 49, {}),
    ("blank-between-records", P + b"\n@r3\nACGT\n+\nIIII\n", "BLANK_LINE", 3, 9, 36, {}),
    ("blank-at-end", P + b"\n", "BLANK_LINE", 3, 9, 36, {}),
    ("blank-after-header", P + b"@r3\n\nACGT\n+\nIIII\n", "BLANK_LINE", 3, 10, 40, {}),
    ("blank-plus", P + b"@r3\nACGT\n\nIIII\n", "BLANK_LINE", 3, 11, 45, {}),
    ("wrapped", P + b"@r3\nACGT\nACGT\n+\nIIIIIIII\n", "MULTILINE_FASTQ", 3, 11, 45, {}),
    ("wrapped-both", P + b"@r3\nACGT\nAC\n+\nIIII\nII\n", "MULTILINE_FASTQ", 3, 11, 45, {}),
    ("crlf-in-lf-file", P + b"@r3\r\nACGT\n+\nIIII\n", "MIXED_LINE_ENDINGS", 3, 9, 39, {}),
    ("lf-in-crlf-file", P.replace(b"\n", b"\r\n") + b"@r3\r\nACGT\n+\r\nIIII\r\n",
     "MIXED_LINE_ENDINGS", 3, 10, 53, {}),
    ("nul-in-sequence", P + b"@r3\nAC\x00T\n+\nIIII\n", "BINARY_DATA", 3, 10, 42, {}),
    ("escape-in-header", P + b"@r3 \x1b[0m\nACGT\n+\nIIII\n", "BINARY_DATA", 3, 9, 40, {}),
    ("lone-cr", P + b"@r3\nAC\rT\n+\nIIII\n", "BINARY_DATA", 3, 10, 42, {}),
    ("long-line", P + b"@r3\n" + b"A" * 11 + b"\n+\n" + b"I" * 11 + b"\n", "LINE_TOO_LONG", 3, 10, 40,
     {"max_line_length": 10}),
    ("phred64", b"@r1\nACGT\n+\nBBBB\n@r2\nACGT\n+\nBBhB\n", "PHRED64_NOT_SUPPORTED", 2, 8, 29, {}),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize("case, data, code, record, line, byte_offset, kwargs", DEFECTS,
                         ids=[d[0] for d in DEFECTS])
def test_defect_is_named_at_its_exact_position(case, data, code, record, line, byte_offset, kwargs, form,
                                               chunk_size):
    exc = error(FORMS[form](data), chunk_size=chunk_size, **kwargs)
    assert (exc.code, exc.position.file, exc.position.record, exc.position.line, exc.position.byte_offset) == (
        code, "in.fq", record, line, byte_offset), exc.message
    assert exc.message.startswith(f"record {record}: ") or record == 1


def test_messages_say_what_is_wrong_in_words():
    assert error(P + b"@r3\nACGT\n+\nIII\n").message == (
        "record 3: sequence has 4 bases but quality has 3 characters")
    assert "'.'" in error(P + b"@r3\nAC.T\n+\nIIII\n").message
    assert "FASTA" in error(b">r1\nACGT\n").message
    assert "column 3" in error(P + b"@r3\nACXT\n+\nIIII\n").message


@pytest.mark.parametrize("data, what", [
    (bz2.compress(P), "bzip2"), (lzma.compress(P), "xz"), (b"\x28\xb5\x2f\xfd" + bytes(20), "zstd"),
    (b"PK\x03\x04" + bytes(30), "zip"),
])
def test_other_compressions_are_named(data, what):
    exc = error(data)
    assert exc.code == "UNSUPPORTED_COMPRESSION" and exc.details["compression"] == what
    assert (exc.position.record, exc.position.line, exc.position.byte_offset) == (1, 1, 0)


@pytest.mark.parametrize("form", ["gzip", "bgzf"])
def test_bam_and_sam_are_not_fastq(form):
    assert "BAM" in error(FORMS[form](b"BAM\x01" + bytes(40))).message
    sam = b"@HD\tVN:1.6\tSO:unsorted\n@SQ\tSN:chr1\tLN:100\nr1\t4\t*\t0\t0\t*\t*\t0\t0\tACGT\tIIII\n"
    exc = error(FORMS[form](sam))
    assert exc.code == "NOT_FASTQ" and "SAM" in exc.message


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_truncated_gzip_is_placed_where_the_data_stops(chunk_size):
    first = gzip.compress(P)
    # gzip.compress writes a 10-byte header (no name); cutting there leaves member 2 without any data.
    exc = error(first + gzip.compress(b"@r3\nACGT\n+\nIIII\n")[:10], chunk_size=chunk_size)
    assert (exc.code, exc.position.record, exc.position.line, exc.position.byte_offset) == (
        "TRUNCATED_GZIP", 3, 9, 36)
    assert exc.details == {"member": 2, "member_offset": len(first), "member_start": 36,
                           "compressed_offset": len(first) + 10}


def test_truncated_gzip_inside_a_record_counts_its_lines():
    exc = error(gzip.compress(P + b"@r3\nACGT\n+\nIIII\n")[:-8])  # no trailer: all data, no CRC
    assert (exc.code, exc.position.record, exc.position.line, exc.position.byte_offset) == (
        "TRUNCATED_GZIP", 4, 13, 52)


def test_truncated_gzip_after_an_earlier_defect_reports_the_defect():
    exc = error(gzip.compress(P + b"r3\nACGT\n+\nII")[:-8])
    assert (exc.code, exc.position.record, exc.position.line) == ("BAD_HEADER", 3, 9)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_trailing_garbage_after_the_last_member(chunk_size):
    compressed = gzip.compress(P)
    exc = error(compressed + b"\0\0garbage", chunk_size=chunk_size)
    assert (exc.code, exc.position.record, exc.position.line, exc.position.byte_offset) == (
        "TRAILING_GARBAGE", 3, 9, 36)
    assert exc.details["compressed_offset"] == len(compressed)
    assert error(bgzf(P) + b"x").code == "TRAILING_GARBAGE"


def test_corrupt_gzip_crc_in_a_later_member():
    first = gzip.compress(P)
    second = bytearray(gzip.compress(b"@r3\nACGT\n+\nIIII\n"))
    second[-8] ^= 0xFF  # the member's CRC-32
    exc = error(first + bytes(second))
    assert (exc.code, exc.position.record, exc.position.line, exc.position.byte_offset) == (
        "CORRUPT_GZIP", 3, 9, 36)
    assert exc.details["member"] == 2 and exc.details["member_offset"] == len(first)


def test_corrupt_deflate_data():
    data = bytearray(gzip.compress(P * 50, compresslevel=1))
    data[len(data) // 2] ^= 0xFF
    assert error(bytes(data)).code in {"CORRUPT_GZIP"}


def _records(n: int) -> bytes:
    rng = random.Random(n)
    return b"".join(b"@r%d\n%s\n+\n%s\n" % (i, bytes(rng.choice(b"ACGT") for _ in range(50)), b"I" * 50)
                    for i in range(n))


def _flip_middle(member: bytes) -> bytes:
    """Corrupt the deflate data in the middle of a member: inflation goes on producing wrong bytes (which
    may look like FASTQ defects) until the stream or the CRC check fails."""
    corrupt = bytearray(member)
    corrupt[len(corrupt) // 2] ^= 0xFF
    return bytes(corrupt)


def _corrupt_gzip_cases():
    data = _records(3000)  # 330,000 bytes: several inflate steps per member
    yield "gzip", _flip_middle(gzip.compress(data, compresslevel=1)), 1, 0, 0, len(data)
    first = gzip.compress(data[:110_000])
    yield "multi-gzip", first + _flip_middle(gzip.compress(data[110_000:])), 2, len(first), 110_000, 220_000
    blocks = bgzf(data, block=60_000)
    second = struct.unpack("<H", blocks[16:18])[0] + 1  # the first block's BSIZE + 1
    third = second + struct.unpack("<H", blocks[second + 16:second + 18])[0] + 1
    yield "bgzf", blocks[:second] + _flip_middle(blocks[second:third]) + blocks[third:], 2, second, 60_000, 60_000


@pytest.mark.parametrize("form, data, member, member_offset, member_start, member_length", list(_corrupt_gzip_cases()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_corrupt_gzip_is_placed_in_its_member_at_every_chunk_size(form, data, member, member_offset,
                                                                   member_start, member_length):
    """Reported as CORRUPT_GZIP (not as whatever defect the wrong bytes look like), at the same position for
    every chunk size: the failing member and how far inflating it got."""
    results = {outcome(check(data, chunk_size=size)) for size in [1, 7, 4096, 65536, 1 << 20]}
    assert len(results) == 1, results
    exc = error(data)
    assert exc.code == "CORRUPT_GZIP", exc.describe()
    assert (exc.details["member"], exc.details["member_offset"], exc.details["member_start"]) == (
        member, member_offset, member_start)
    # Where inflating the member stopped, within it (to within one inflate step: a BGZF block is one step, so
    # its start); record and line count the lines as they inflated (wrong bytes after the flip included).
    assert member_start <= exc.position.byte_offset <= member_start + member_length
    assert member_offset <= exc.details["compressed_offset"] < len(data)
    if member_length > INFLATE_STEP:
        assert exc.position.byte_offset > member_start
    assert exc.position.record == (exc.position.line - 1) // 4 + 1
    assert exc.message.startswith(f"gzip member {member} (starts at compressed byte {member_offset}")


GOOD_FILES = [
    ("basic", P, 2, 9, 4, 5, "phred33"),
    ("no-final-newline", P[:-1], 2, 9, 4, 5, "phred33"),
    ("crlf", P.replace(b"\n", b"\r\n"), 2, 9, 4, 5, "phred33"),
    ("zero-length-read", b"@r1\n\n+\n\n" + R1, 2, 4, 0, 4, "phred33"),
    ("iupac-lowercase", b"@r1\nacgtRYSWKMBDHVNu\n+\n" + b"5" * 16 + b"\n", 1, 16, 16, 16, "phred33"),
    ("plus-repeats-header", b"@r1 desc\nACGT\n+r1 desc\nIIII\n@r2\tx\nA\n+r2\n!\n", 2, 5, 1, 4, "phred33"),
    ("utf8-description", "@r1 Zürich\nACGT\n+\n!!!!\n".encode(), 1, 4, 4, 4, "phred33"),
    ("high-but-binned", b"@r1\nACGT\n+\nFFFF\n", 1, 4, 4, 4, "phred33"),
    ("long-read-range", b"@r1\nACGT\n+\n!5J~\n", 1, 4, 4, 4, "phred33"),
    ("only-empty-reads", b"@r1\n\n+\n\n", 1, 0, 0, 0, None),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case, data, records, bases, shortest, longest, encoding", GOOD_FILES,
                         ids=[g[0] for g in GOOD_FILES])
def test_good_files_pass_with_their_statistics(case, data, records, bases, shortest, longest, encoding, form):
    for chunk_size in CHUNK_SIZES:
        report = check(FORMS[form](data), chunk_size=chunk_size)
        assert not isinstance(report, InvalidFastq), report
        assert (report.records, report.bases, report.min_length, report.max_length, report.quality_encoding) == (
            records, bases, shortest, longest, encoding)
        assert report.files[0].line_endings == ("crlf" if case == "crlf" else "lf")
        assert report.files[0].decompressed_bytes == len(data)


def test_phred64_is_reported_when_allowed():
    report = check(b"@r1\nACGT\n+\nBBBB\n@r2\nACGT\n+\nBBhB\n", allow_phred64=True)
    assert report.quality_encoding == "phred64"


def test_report_describes_the_container():
    data = P * 3
    for form, compression, members in [("plain", "none", 0), ("gzip", "gzip", 1), ("multi-gzip", "gzip", 3),
                                       ("bgzf", "bgzf", len(range(0, len(data), 7)) + 1)]:
        stored = FORMS[form](data)
        info = check(stored).files[0]
        assert (info.compression, info.gzip_members, info.compressed_bytes) == (compression, members, len(stored))
        assert info.sha256 == hashlib.sha256(stored).hexdigest()
    assert check(P).to_dict()["valid"] is True


def test_paths_are_opened_and_named(tmp_path):
    path = tmp_path / "reads.fq.gz"
    path.write_bytes(gzip.compress(P + b"@r3\nACGT\n+\nIII\n"))
    with pytest.raises(InvalidFastq) as caught:
        validate_fastq(path)
    assert caught.value.position.file == str(path)


# -- chunk-boundary invariance --------------------------------------------------------------------------------

def random_fastq(rng: random.Random, n: int, crlf: bool = False) -> bytes:
    newline = "\r\n" if crlf else "\n"
    out = []
    for i in range(n):
        length = rng.randint(0, 120)
        seq = "".join(rng.choice("ACGTN") for _ in range(length))
        qual = "".join(chr(rng.randint(33, 74)) for _ in range(length))
        plus = rng.choice(["+", f"+read{i}"])
        out.append(f"@read{i} lane=1{newline}{seq}{newline}{plus}{newline}{qual}{newline}")
    return "".join(out).encode()


def outcome(result) -> tuple:
    if isinstance(result, InvalidFastq):
        return (result.code, result.position)
    return tuple(result.files)


def test_chunk_size_does_not_change_the_report():
    data = random_fastq(random.Random(7), 300)
    results = {outcome(check(bgzf(data, 1000), chunk_size=size)) for size in [1, 2, 7, 64, 4096, 1 << 20]}
    assert len(results) == 1


@pytest.mark.parametrize("seed", range(40))
def test_random_corruption_same_verdict_at_every_chunk_size(seed):
    """Flip one byte of a good file: the fast pass and the line-by-line diagnosis must agree (no internal
    error), and the defect and its position must not depend on where chunks end."""
    rng = random.Random(seed)
    data = bytearray(random_fastq(rng, 40, crlf=seed % 5 == 0))
    at = rng.randrange(len(data))
    data[at] = rng.choice(b"\n\r\0 .@+IACGTX\xff")
    results = {outcome(check(bytes(data), chunk_size=size)) for size in [5, 17, 257, 1 << 20]}
    assert len(results) == 1, results
    if data[at] == 0:  # a NUL is wrong on any line
        assert next(iter(results))[0] == "BINARY_DATA"


IUPAC = set(b"ACGTUNRYSWKMBDHVacgtunryswkmbdhv")


def reference_is_valid(data: bytes) -> bool:
    """The policies in the validator's docstring, written the slow and obvious way, as an oracle."""
    if not data or data[0] != ord("@"):
        return False
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    crlf = lines[0].endswith(b"\r") and b"\n" in data
    content = []
    for i, line in enumerate(lines):
        unterminated = i == len(lines) - 1 and not data.endswith(b"\n")
        if not unterminated:
            if line.endswith(b"\r") != crlf:
                return False
            line = line[:-1] if crlf else line
        content.append(line)
    if len(content) % 4:
        return False
    for k in range(0, len(content), 4):
        header, seq, plus, qual = content[k:k + 4]
        if any((b < 32 and b != 9) or b == 127 for b in header + plus):
            return False
        if not header.startswith(b"@") or len(header) < 2 or header[1] in b" \t":
            return False
        try:
            header.decode("utf-8")
        except UnicodeDecodeError:
            return False
        read_id = header[1:].replace(b"\t", b" ").split(b" ")[0]
        if not plus.startswith(b"+") or plus[1:] not in (b"", header[1:], read_id):
            return False
        if any(b not in IUPAC for b in seq) or any(not 33 <= b <= 126 for b in qual) or len(seq) != len(qual):
            return False
    return True


def test_vectorised_verdict_matches_a_line_by_line_reference():
    """Mutated files (bytes replaced, deleted, inserted; CRLF too): valid exactly when the reference says so."""
    disagreements = []
    for seed in range(400):
        rng = random.Random(seed)
        data = bytearray(random_fastq(rng, 6, crlf=seed % 4 == 0))
        for _ in range(rng.randint(1, 2)):
            at, byte = rng.randrange(len(data)), rng.choice(b"\n\r\0 .@+IACGTX\xff\t")
            operation = rng.randrange(3)
            if operation == 0:
                data[at] = byte
            elif operation == 1:
                del data[at]
            else:
                data.insert(at, byte)
        ours = not isinstance(check(bytes(data), chunk_size=rng.choice([3, 1 << 20])), InvalidFastq)
        if ours != reference_is_valid(bytes(data)):
            disagreements.append(bytes(data))
    assert not disagreements


# -- pairs ----------------------------------------------------------------------------------------------------

def pair(first: bytes, second: bytes, **kwargs):
    try:
        return validate_fastq(io.BytesIO(first), name="R1.fq", mate_source=io.BytesIO(second), mate_name="R2.fq",
                              **kwargs)
    except InvalidFastq as exc:
        return exc


def mates(n: int, suffixes=(b"/1", b"/2")) -> tuple[bytes, bytes]:
    one = b"".join(b"@p%d%s x\nACGT\n+\nIIII\n" % (i, suffixes[0]) for i in range(1, n + 1))
    two = b"".join(b"@p%d%s y\nTTGCA\n+\nIIIII\n" % (i, suffixes[1]) for i in range(1, n + 1))
    return one, two


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_pair_with_matching_ids_passes(chunk_size):
    one, two = mates(50)
    report = pair(gzip.compress(one), bgzf(two), chunk_size=chunk_size)
    assert (report.paired, report.records, report.bases, report.min_length, report.max_length) == (
        True, 50, 450, 4, 5)
    assert [f.file for f in report.files] == ["R1.fq", "R2.fq"]
    assert not isinstance(pair(*mates(3, (b"", b""))), InvalidFastq)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_pair_name_mismatch_is_reported_in_the_mate(chunk_size):
    one, two = mates(40)
    two = two.replace(b"@p17/2", b"@q17/2")
    exc = pair(one, two, chunk_size=chunk_size)
    offset = two.index(b"@q17/2")
    assert (exc.code, exc.position.file, exc.position.record, exc.position.line, exc.position.byte_offset) == (
        "PAIR_NAME_MISMATCH", "R2.fq", 17, 65, offset)
    assert "'p17'" in exc.message and "'q17'" in exc.message
    assert exc.details["first_byte_offset"] == one.index(b"@p17/1")


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize("longer", ["R1", "R2"])
def test_pair_count_mismatch_at_the_first_unpaired_record(chunk_size, longer):
    one, two = mates(30)
    short_two = two[: two.index(b"@p21/2")]
    short_one = one[: one.index(b"@p21/1")]
    exc = pair(one, short_two, chunk_size=chunk_size) if longer == "R1" else pair(short_one, two,
                                                                                  chunk_size=chunk_size)
    full = one if longer == "R1" else two
    assert (exc.code, exc.position.file, exc.position.record, exc.position.line, exc.position.byte_offset) == (
        "PAIR_COUNT_MISMATCH", f"{longer}.fq", 21, 81, full.index(b"@p21/"))


def test_mate_read_id_must_be_utf8_too():
    one, two = mates(5)
    exc = pair(one, two.replace(b"@p3/2", b"@p\xff3/2"))
    assert (exc.code, exc.position.file, exc.position.record, exc.position.line) == (
        "HEADER_NOT_UTF8", "R2.fq", 3, 9)


def test_pair_reports_the_earliest_defect_of_either_file_or_the_pairing():
    one, two = mates(30)
    bad_quality_two = two.replace(b"@p9/2 y\nTTGCA\n+\nIIIII", b"@p9/2 y\nTTGCA\n+\nIII I")
    assert (pair(one, bad_quality_two).code, pair(one, bad_quality_two).position.record) == ("BAD_QUALITY_CHAR", 9)
    # A name mismatch at record 5 comes before the quality defect at record 9.
    renamed = bad_quality_two.replace(b"@p5/2", b"@x5/2")
    assert (pair(one, renamed).code, pair(one, renamed).position.record) == ("PAIR_NAME_MISMATCH", 5)
    # At the same record, the file's own defect wins over the pairing.
    both = two.replace(b"@p9/2 y\nTTGCA\n+\nIIIII", b"@x9/2 y\nTTGCA\n+\nIII I")
    assert pair(one, both).code == "BAD_QUALITY_CHAR"
    # R1's defect at record 12 comes before R2 running out after record 20, but after R2 running out after 10.
    bad_one = one.replace(b"@p12/1 x\nACGT", b"@p12/1 x\nACGU!")
    assert pair(bad_one, two[: two.index(b"@p21/2")]).code == "BAD_SEQUENCE_CHAR"
    exc = pair(bad_one, two[: two.index(b"@p11/2")])
    assert (exc.code, exc.position.record, exc.position.file) == ("PAIR_COUNT_MISMATCH", 11, "R1.fq")


# -- streams and memory ---------------------------------------------------------------------------------------

def test_stream_yields_bounded_chunks_of_a_highly_compressible_member():
    data = b"@r\n" + b"A" * 5_000_000 + b"\n"
    chunks = list(DecompressedStream(io.BytesIO(gzip.compress(data)), name="x", chunk_size=65536))
    assert b"".join(chunks) == data and max(map(len, chunks)) <= 65536


def test_streaming_body_that_returns_short_reads():
    class Trickle(io.RawIOBase):
        """Returns at most 5 bytes per read, like a network body may."""

        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self._data.read(min(size, 5) if size > 0 else 5)

    report = validate_fastq(Trickle(bgzf(P * 10)), name="s3://bucket/key")
    assert (report.records, report.files[0].compression) == (20, "bgzf")


def test_memory_stays_bounded_on_a_large_gzip_file(tmp_path):
    """60 MB of FASTQ (gzip) validates with a small fraction of that in Python/numpy allocations."""
    rng = np.random.default_rng(3)
    block = 20_000
    seqs = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, (block, 150))]
    quals = np.frombuffer(b"#,:F", np.uint8)[rng.integers(0, 4, (block, 150))]
    records = b"".join(b"@read%d\n%s\n+\n%s\n" % (i, seqs[i].tobytes(), quals[i].tobytes()) for i in range(block))
    path = tmp_path / "big.fq.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        for _ in range(10):
            out.write(records)
    size = len(records) * 10
    assert size > 60_000_000
    tracemalloc.start()
    try:
        report = validate_fastq(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.records == 10 * block and report.bases == 10 * block * 150
    assert peak < 24_000_000, f"peak {peak / 1e6:.1f} MB for {size / 1e6:.0f} MB of FASTQ"
