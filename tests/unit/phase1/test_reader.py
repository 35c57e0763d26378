"""The reader parses plain, gzip and BGZF alike and raises InvalidFastq with a code and position on records it
cannot parse, instead of mis-parsing them."""

from __future__ import annotations

import pytest

from helixflow.errors import InvalidFastq
from helixflow.phase1 import reader, simulate

GOOD = b"@r1 x\nACGT\n+\nIIII\n@r2\nACGTA\n+r2\nIIIII\n"


def _records(path):
    out = []
    for b in reader.iter_batches(reader.whole_file(path)):
        for i in range(b.n):
            seq = bytes(b.data[b.seq_start[i]:b.seq_start[i] + b.seq_len[i]])
            qual = bytes(b.data[b.qual_start[i]:b.qual_start[i] + b.seq_len[i]])
            out.append((bytes(b.data[b.name_start[i]:b.name_end[i]]), seq, qual))
    return out


@pytest.mark.parametrize("fmt", ["plain", "gzip", "bgzf"])
def test_formats_parse_the_same(tmp_path, fmt):
    path = tmp_path / f"x.{fmt}"
    simulate.write_fastq(path, GOOD, fmt)
    assert reader.detect_format(path) == fmt
    assert _records(path) == [(b"r1 x", b"ACGT", b"IIII"), (b"r2", b"ACGTA", b"IIIII")]


def test_crlf_and_missing_final_newline(tmp_path):
    path = tmp_path / "crlf.fq"
    path.write_bytes(GOOD.replace(b"\n", b"\r\n").rstrip(b"\r\n"))
    assert _records(path) == [(b"r1 x", b"ACGT", b"IIII"), (b"r2", b"ACGTA", b"IIIII")]


@pytest.mark.parametrize("text, code, record, line", [
    (b"@r1\nACGT\n+\nIIII\nr2\nACGT\n+\nIIII\n", "HEADER_NOT_AT", 2, 5),
    (b"@r1\nACGT\n-\nIIII\n", "SEPARATOR_NOT_PLUS", 1, 3),
    (b"@r1\nACGT\n+\nIIII\n@r2\nACGT\n+\nIII\n", "SEQ_QUAL_LENGTH_MISMATCH", 2, 8),
    (b"@r1\nACGT\n+\nIIII\n@r2\nACGT\n", "TRUNCATED_RECORD", 2, 7),
])
def test_malformed_records_raise_with_position(tmp_path, text, code, record, line):
    path = tmp_path / "bad.fq.gz"
    simulate.write_fastq(path, text, "gzip")
    with pytest.raises(InvalidFastq) as info:
        _records(path)
    assert info.value.code == code
    assert info.value.position.record == record
    assert info.value.position.line == line


def test_records_larger_than_a_block(tmp_path):
    seq = b"ACGT" * 50_000
    path = tmp_path / "long.fq"
    path.write_bytes(b"@long\n" + seq + b"\n+\n" + b"I" * len(seq) + b"\n" + GOOD)
    with reader.FastqReader(reader.whole_file(path), block_bytes=4096) as r:
        batches = []
        while (b := r.next_batch()) is not None:
            batches.append(b)
    assert sum(b.n for b in batches) == 3
    assert batches[0].seq_len[0] == len(seq)
