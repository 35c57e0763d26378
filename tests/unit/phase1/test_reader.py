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


@pytest.mark.parametrize("fmt", ["none", "gzip", "bgzf"])
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


def test_mates_stay_in_step_when_their_batches_differ(tmp_path, monkeypatch):
    """R2 records are three times the size of R1's, so each R2 block holds fewer records: the pair reader must
    hand out the same records of both mates."""
    from helixflow.phase1 import engine

    monkeypatch.setattr(reader, "BLOCK_BYTES", 4096)
    names, s1, q1, s2, q2 = simulate.simulate_pairs(500, 60, seed=2)
    r1 = simulate.fastq_bytes(names, s1, q1, 1)
    r2 = simulate.fastq_bytes([f"{n} {'x' * 150}" for n in names], s2, q2, 2)
    simulate.write_fastq(tmp_path / "a_R1.fq", r1, "none")
    simulate.write_fastq(tmp_path / "a_R2.fq.gz", r2, "gzip")
    params = engine.Params(quality=0, min_length=0, n_limit=-1, unqualified_percent=-1, embeddings=False)
    engine.process_file(str(tmp_path / "a_R1.fq"), str(tmp_path / "a_R2.fq.gz"), str(tmp_path / "out"), "a", params)
    import gzip

    out = [gzip.open(p).read().split(b"\n")[0::4][:-1]
           for p in engine.output_paths(str(tmp_path / "out"), "a", True)["reads"]]
    ids = [[h.split()[0][1:].split(b"/")[0] for h in mate] for mate in out]
    assert ids[0] == ids[1] == [n.encode() for n in names]
