"""Validation cut into record-aligned chunks gives the single-pass validator's answer: the same first defect
(code, message, file, record, line, byte) or the same report, for defects placed at chunk boundaries."""

from __future__ import annotations

import io

import pytest

from helixflow.errors import InvalidFastq
from helixflow.fastq.chunked import (LOOKAHEAD_BYTES, CutFinder, FileFacts, MateChunk, combine_verdicts,
                                     grid_records, offsets_at, plan_cuts, validate_chunk)
from helixflow.fastq.scan import ChunkStart
from helixflow.fastq.validator import validate_fastq

EVERY = 1500  # decompressed bytes per chunk: ~14 records of these reads, so boundaries are everywhere
PIECE = 997  # the cut finder is fed in pieces that do not line up with anything


def records(n: int, mate: int, *, length: int = 40, eol: bytes = b"\n") -> list[bytes]:
    out = []
    for i in range(n):
        seq = (b"ACGTTGCA" * 10)[(i % 7):(i % 7) + length - (i % 5)]
        qual = bytes(33 + (i + j) % 40 for j in range(len(seq)))
        out.append(b"@read%d/%d extra%s" % (i, mate, eol) + seq + eol + b"+" + eol + qual + eol)
    return out


def feed(finder: CutFinder, data: bytes) -> CutFinder:
    for at in range(0, len(data), PIECE):
        finder.feed(data[at:at + PIECE])
    return finder


def chunked(first: bytes, second: bytes | None = None, *, allow_phred64: bool = False, grid: int = 1):
    """The distributed path on local bytes: one independent pass per mate, the cuts from their grids, each
    chunk validated alone, combined."""
    texts = [first] + ([second] if second is not None else [])
    names = ["r1.fastq", "r2.fastq"][:len(texts)]
    finders = [feed(CutFinder(grid=grid), text) for text in texts]
    offsets, numbers = plan_cuts(finders[0].grid_offsets, grid, EVERY, finders[0].total)
    plans = [(offsets, numbers, finders[0].crlf)]
    totals = [f.records_total for f in finders]
    if second is not None:
        mate = finders[1]
        plans.append((offsets_at(mate.grid_offsets, grid, numbers, mate.total), numbers, mate.crlf))
    verdicts = []
    for k in range(len(numbers)):
        last = k + 1 == len(numbers)
        mates = []
        for text, name, (offs, recs, crlf) in zip(texts, names, plans):
            end = len(text) if last else offs[k + 1] + LOOKAHEAD_BYTES
            start = ChunkStart(records=recs[k], byte=offs[k], crlf=crlf if k else None)
            mates.append(MateChunk(name, text[offs[k]:end], start))
        verdicts.append(validate_chunk(mates, stop_after=None if last else numbers[k + 1]))
    files = [FileFacts(n, "none", 0, len(t), len(t), "-", total) for n, t, total in zip(names, texts, totals)]
    return len(numbers), combine_verdicts(verdicts, files, allow_phred64=allow_phred64)


def single(first: bytes, second: bytes | None = None, *, allow_phred64: bool = False):
    return validate_fastq(io.BytesIO(first), name="r1.fastq",
                          mate_source=io.BytesIO(second) if second is not None else None,
                          mate_name="r2.fastq" if second is not None else None, allow_phred64=allow_phred64)


def same_answer(first: bytes, second: bytes | None = None, *, grid: int = 1, **kwargs) -> InvalidFastq | None:
    try:
        expected = single(first, second, **kwargs)
    except InvalidFastq as exc:
        expected = exc
    try:
        chunks, got = chunked(first, second, grid=grid, **kwargs)
    except InvalidFastq as exc:
        chunks, got = None, exc
    assert chunks is None or chunks > 3
    if isinstance(expected, InvalidFastq):
        assert isinstance(got, InvalidFastq), f"chunks found no defect, one pass found {expected.describe()}"
        assert got.to_dict() == expected.to_dict()
        return got
    assert not isinstance(got, InvalidFastq), got.describe()
    ours, theirs = got.to_dict(), expected.to_dict()
    for report in ours["files"] + theirs["files"]:
        report.update(compression=None, gzip_members=None, sha256=None)  # from the plan's pass, not the chunks
    assert ours == theirs
    return None


def boundary_records(n: int) -> list[int]:
    """0-based indexes of the first record of every chunk but the first (where the cuts fall)."""
    finder = feed(CutFinder(), b"".join(records(n, 1)))
    return plan_cuts(finder.grid_offsets, 1, EVERY, finder.total)[1][1:]


N = 120


def test_a_valid_pair_reports_the_same_statistics():
    assert same_answer(b"".join(records(N, 1)), b"".join(records(N, 2))) is None


def test_crlf_files_and_a_missing_final_newline_are_the_same():
    r1 = b"".join(records(N, 1, eol=b"\r\n"))
    assert same_answer(r1) is None
    assert same_answer(b"".join(records(N, 1))[:-1]) is None


BREAKS = {
    # name: (record transform, expected code)
    "bad base in the header of a chunk's first record": (lambda r: r.replace(b"@", b"#", 1), "BAD_HEADER"),
    "quality one short": (lambda r: r[:-2] + b"\n", "SEQ_QUAL_LENGTH_MISMATCH"),
    "bad sequence character": (lambda r: b"\n".join(line[:2] + b"." + line[3:] if i == 1 else line
                                                    for i, line in enumerate(r.split(b"\n"))), "BAD_SEQUENCE_CHAR"),
    "blank line before the record": (lambda r: b"\n" + r, "BLANK_LINE"),
    "wrapped sequence": (lambda r: r.replace(b"\n", b"\nACGT\n", 1), "MULTILINE_FASTQ"),
    "lf in a crlf file": (lambda r: r.replace(b"\r\n", b"\n", 1), "MIXED_LINE_ENDINGS"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
@pytest.mark.parametrize("where", ["first of a chunk", "last of a chunk", "last of the file"])
def test_a_defect_at_a_chunk_boundary_is_reported_as_one_pass_reports_it(name, where):
    transform, code = BREAKS[name]
    eol = b"\r\n" if "crlf" in name else b"\n"
    r1 = records(N, 1, eol=eol)
    cut = boundary_records(N)[1]
    index = {"first of a chunk": cut, "last of a chunk": cut - 1, "last of the file": N - 1}[where]
    r1[index] = transform(r1[index])
    found = same_answer(b"".join(r1))
    assert found is not None and (code is None or found.code == code)
    assert found.position.record >= index + 1


@pytest.mark.parametrize("where", ["first of a chunk", "last of a chunk", "last of the file"])
def test_mate_name_mismatch_at_a_boundary(where):
    r1, r2 = records(N, 1), records(N, 2)
    cut = boundary_records(N)[2]
    index = {"first of a chunk": cut, "last of a chunk": cut - 1, "last of the file": N - 1}[where]
    r2[index] = r2[index].replace(b"@read", b"@other", 1)
    found = same_answer(b"".join(r1), b"".join(r2))
    assert found.code == "PAIR_NAME_MISMATCH" and found.position.record == index + 1


@pytest.mark.parametrize("missing", [1, 20, 45])
@pytest.mark.parametrize("shorter", [1, 2])
def test_mate_count_mismatch_across_chunks(missing, shorter):
    r1, r2 = records(N, 1), records(N, 2)
    if shorter == 1:
        r1 = r1[:-missing]
    else:
        r2 = r2[:-missing]
    found = same_answer(b"".join(r1), b"".join(r2))
    assert found.code == "PAIR_COUNT_MISMATCH" and found.position.record == N - missing + 1


@pytest.mark.parametrize("grid", [2, 3])
def test_cuts_on_a_record_grid_give_the_same_answers(grid):
    """Production cuts fall on every grid-th record (each mate's pass notes only those): verdicts do not move."""
    r1, r2 = records(N, 1), records(N, 2)
    assert same_answer(b"".join(r1), b"".join(r2), grid=grid) is None
    assert same_answer(b"".join(r1), b"".join(r2[:-7]), grid=grid).code == "PAIR_COUNT_MISMATCH"
    assert same_answer(b"".join(r1[:-grid * 4]), b"".join(r2), grid=grid).code == "PAIR_COUNT_MISMATCH"
    finder = feed(CutFinder(grid=grid), b"".join(r1))
    _, cuts = plan_cuts(finder.grid_offsets, grid, EVERY, finder.total)
    assert all(c % grid == 0 for c in cuts) and len(cuts) > 3
    for index in (cuts[2], cuts[2] - 1, N - 1):
        broken = list(r2)
        broken[index] = broken[index].replace(b"@read", b"@other", 1)
        found = same_answer(b"".join(r1), b"".join(broken), grid=grid)
        assert found.code == "PAIR_NAME_MISMATCH" and found.position.record == index + 1


def test_the_grid_keeps_a_production_chunk_within_a_percent():
    assert grid_records(256 << 20) == 4096 and grid_records(1 << 20) == 16 and grid_records(1500) == 1
    assert grid_records(4 << 30) == 4096  # ~120k offsets for a 50 GB gzip mate, whatever the chunk size


def test_truncated_last_record_and_empty_file():
    data = b"".join(records(N, 1))
    assert same_answer(data[:-30]).code == "TRUNCATED_RECORD"
    with pytest.raises(InvalidFastq) as caught:
        chunked(b"")
    assert caught.value.to_dict() == pytest.raises(InvalidFastq, single, b"").value.to_dict()


def test_the_earliest_of_defects_in_several_chunks_wins():
    r1 = records(N, 1)
    cuts = boundary_records(N)
    r1[cuts[3]] = r1[cuts[3]].replace(b"@", b"", 1)
    r1[cuts[1] + 2] = r1[cuts[1] + 2][:-3] + b"\n"
    assert same_answer(b"".join(r1)).position.record == cuts[1] + 3


def test_phred64_is_reported_at_the_first_high_quality_character():
    r1 = [r.split(b"\n+\n")[0] + b"\n+\n" + bytes(min(b + 40, 104) for b in r.split(b"\n+\n")[1][:-1]) + b"\n"
          for r in records(N, 1)]
    assert same_answer(b"".join(r1)).code == "PHRED64_NOT_SUPPORTED"
    assert same_answer(b"".join(r1), allow_phred64=True) is None
