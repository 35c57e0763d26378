"""Random access for chunk runners: one pass over an input (plain, BGZF, plain gzip with a seek index) finds
the same record-aligned cuts whatever the format, and a runner reads exactly the decompressed span it asks for,
starting at an index point; a gzip stream zran would read quietly short is flagged."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io

import pytest
from isal import igzip

from helixflow.errors import InvalidFastq
from helixflow.fastq import access
from helixflow.fastq.access import bgzf_range, read_span, scan_input
from helixflow.fastq.bgzf import BgzfWriter
from helixflow.fastq.chunked import CutFinder, offsets_at, plan_cuts

TEXT = b"".join(b"@r%d/1\n%s\n+\n%s\n" % (i, b"ACGT" * (10 + i % 7), b"I" * (4 * (10 + i % 7)))
                for i in range(60_000))  # ~6.6 MB: several 1 MiB index points
EVERY = 700_000


def stored(fmt: str) -> bytes:
    if fmt == "none":
        return TEXT
    if fmt == "gzip":
        return igzip.compress(TEXT, compresslevel=1)
    out = io.BytesIO()
    writer = BgzfWriter(out)
    writer.write(TEXT)
    writer.close()
    return out.getvalue()


def scan(blob: bytes, reopen=None):
    finder = CutFinder()
    result = scan_input(io.BytesIO(blob), name="x", finder=finder, spacing=1 << 20, head_bytes=1000, reopen=reopen)
    return result, finder


@pytest.fixture
def beside(tmp_path, monkeypatch):
    """Scan a blob with its seek index built in a second process (which opens the file itself), as a large
    gzip input is in the pipeline; the size threshold is lowered so a small blob takes that path."""
    monkeypatch.setattr(access, "PARALLEL_INDEX_BYTES", 0)

    def run(blob: bytes):
        path = tmp_path / "input.fastq.gz"
        path.write_bytes(blob)
        return scan(blob, reopen=functools.partial(open, path, "rb"))
    return run


@pytest.mark.parametrize("fmt", ["none", "gzip", "bgzf"])
def test_one_pass_finds_record_cuts_and_reads_any_span(fmt):
    blob = stored(fmt)
    result, finder = scan(blob)
    offsets, records = plan_cuts(finder.grid_offsets, 1, EVERY, finder.total)
    assert result.compression == fmt and result.decompressed_bytes == len(TEXT) and result.trailer_ok
    assert result.sha256 == hashlib.sha256(blob).hexdigest() and result.head == TEXT[:1000]
    assert finder.records_total == 60_000 and len(offsets) == len(TEXT) // EVERY + 1
    for offset, record in zip(offsets, records):  # each cut is the first record at or after k * EVERY
        assert TEXT[offset:offset + 1] == b"@" and TEXT[:offset].count(b"\n") == 4 * record
    for offset in offsets:
        size = EVERY + 4096
        if fmt == "bgzf":
            first, stop, skip = bgzf_range(result.blocks, offset, offset + size, len(blob))
            span = read_span(io.BytesIO(blob[first:stop]), fmt, offset, size, skip=skip)
        else:
            span = read_span(io.BytesIO(blob), fmt, offset, size, index=result.index)
        assert span == TEXT[offset:offset + size]


@pytest.mark.parametrize("grid", [1, 16])
def test_mate_cuts_fall_on_the_same_records(grid):
    """Each mate's pass runs alone (in parallel in the pipeline); mate 1's cuts are found in mate 2's grid."""
    mate = TEXT.replace(b"/1\n", b"/2 some description\n")
    first, second = CutFinder(grid=grid), CutFinder(grid=grid)
    first.feed(TEXT)
    for at in range(0, len(mate), 65_537):
        second.feed(mate[at:at + 65_537])
    for finder, text in ((first, TEXT), (second, mate)):  # every grid record's start, nothing else
        assert len(finder.grid_offsets) == finder.records_total // grid + 1
        assert all(text[:o].count(b"\n") == 4 * k * grid for k, o in enumerate(finder.grid_offsets[:50]))
    cuts, records = plan_cuts(first.grid_offsets, grid, EVERY, first.total)
    assert len(records) > 10 and all(r % grid == 0 for r in records)
    assert all(c >= k * EVERY for k, c in enumerate(cuts))
    offsets = offsets_at(second.grid_offsets, grid, records, second.total)
    assert all(mate[:o].count(b"\n") == 4 * r for o, r in zip(offsets, records))


@pytest.mark.parametrize("damage", ["cut short", "trailing bytes", "second member"])
def test_a_gzip_stream_zran_reads_short_or_past_is_flagged(damage):
    blob = stored("gzip")
    blob = {"cut short": blob[:len(blob) // 2], "trailing bytes": blob + b"\0\0\0",
            "second member": blob + igzip.compress(TEXT[:1000])}[damage]
    result, _ = scan(blob)
    assert not result.trailer_ok


def test_corrupt_deflate_data_is_a_named_error():
    blob = bytearray(stored("gzip"))
    blob[5000:5100] = bytes(b ^ 0x55 for b in blob[5000:5100])
    with pytest.raises(InvalidFastq) as caught:
        scan(bytes(blob))
    assert caught.value.code == "CORRUPT_GZIP"


def test_an_index_built_beside_the_pass_is_the_index_built_in_it(beside, monkeypatch):
    blob = stored("gzip")
    alone, alone_finder = scan(blob)

    def not_in_this_process(*_args):
        raise AssertionError("zran ran in the pass's own process")
    monkeypatch.setattr(access, "_zran_index", not_in_this_process)  # the spawned process imports its own
    two, two_finder = beside(blob)
    assert two.index == alone.index and dataclasses.asdict(two) == dataclasses.asdict(alone)
    assert two_finder.grid_offsets == alone_finder.grid_offsets and two_finder.total == len(TEXT)
    span = read_span(io.BytesIO(blob), "gzip", 3_000_000, 5000, index=two.index)
    assert span == TEXT[3_000_000:3_005_000]


@pytest.mark.parametrize("damage", ["corrupt deflate data", "cut short"])
def test_a_damaged_stream_reads_the_same_with_the_index_built_beside(beside, damage):
    blob = bytearray(stored("gzip"))
    if damage == "cut short":
        result, _ = beside(bytes(blob[:len(blob) // 2]))
        assert not result.trailer_ok
        return
    blob[5000:5100] = bytes(b ^ 0x55 for b in blob[5000:5100])
    with pytest.raises(InvalidFastq) as caught:
        beside(bytes(blob))
    assert caught.value.code == "CORRUPT_GZIP" and caught.value.position.file == "x"
