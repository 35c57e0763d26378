"""The SAM writer and the packing kernels behind it, against SAM lines written out by hand: flags, mate fields,
TLEN signs, reverse-strand SEQ/QUAL, tags, unmapped reads and mates."""

from __future__ import annotations

import re

import numpy as np
import pytest

from helixflow.phase2 import sam
from helixflow.phase2.cigar import pack_cigars
from helixflow.phase2.mapper import Mapping
from helixflow.phase2.reads import Fragments, ReadBatch
from helixflow.seq.packing import pack, pack_text
from helixflow.seq.read_ids import mate_ids
from helixflow.phase2.reference import Reference

# row: (id, SEQ, QUAL, mapped, strand, contig, pos, end, mapq, AS, XS, NM, proper, CIGAR)
ROWS = [
    ("fr", b"ACGTA", b"ABCDE", True, 0, 0, 100, 105, 60, 5, 3, 0, True, "5M"),  # proper FR pair
    ("fr", b"GGCAN", b"FGHIJ", True, 1, 0, 200, 205, 60, 4, -1, 1, True, "5M"),
    ("half", b"AACGT", b"abcde", True, 1, 1, 50, 54, 7, 4, -1, 0, False, "1S4M"),  # mate unmapped
    ("half", b"TTTTT", b"!!!!!", False, 0, -1, -1, -1, 0, 0, -1, 0, False, "*"),
    ("none", b"CCCCC", b"#####", False, 0, -1, -1, -1, 0, 0, -1, 0, False, "*"),  # both unmapped
    ("none", b"GGGGG", b"$$$$$", False, 0, -1, -1, -1, 0, 0, -1, 0, False, "*"),
    ("apart", b"ACGTT", b"%%%%%", True, 0, 0, 10, 15, 12, 5, -1, 0, False, "5M"),  # mates on two contigs
    ("apart", b"TTGCA", b"&&&&&", True, 0, 1, 20, 25, 0, 5, 5, 0, False, "5M"),
    ("single", b"ACGNT", b"12345", True, 1, 0, 300, 304, 23, 1, 0, 2, False, "3M1I1M"),
    ("empty", b"", b"", False, 0, -1, -1, -1, 0, 0, -1, 0, False, "*"),
    ("same", b"AAAAC", b"ABCDE", True, 1, 0, 400, 405, 60, 5, -1, 0, True, "5M"),  # same start, FR
    ("same", b"GTTTT", b"ABCDE", True, 0, 0, 400, 406, 60, 5, -1, 0, True, "4M1D1M"),
    ("tie", b"AAAAA", b"ABCDE", True, 0, 0, 500, 505, 30, 5, -1, 0, False, "5M"),  # same start and strand
    ("tie", b"AAAAA", b"ABCDE", True, 0, 0, 500, 507, 30, 5, -1, 0, False, "3M2D2M"),
    # Mates that run past each other (fragment shorter than a read): the reverse mate starts 2 bp left of the
    # forward one and ends 2 bp left of it. TLEN spans leftmost to rightmost mapped base (7), positive for the
    # leftmost mate - here the reverse one. (samtools fixmate and bwa measure 5' to 5' instead: 3.)
    ("past", b"ACGTA", b"ABCDE", True, 0, 0, 700, 705, 60, 5, -1, 0, True, "5M"),
    ("past", b"CCGTA", b"ABCDE", True, 1, 0, 698, 703, 60, 5, -1, 0, True, "5M"),
]
FRAGMENTS = Fragments(np.array([0, 2, 4, 6, 8, 9, 10, 12, 14]), np.array([1, 3, 5, 7, -1, -1, 11, 13, 15]))
EXPECTED = """\
fr	99	chr1	101	60	5M	=	201	105	ACGTA	ABCDE	NM:i:0	AS:i:5	XS:i:3	RG:Z:S1
fr	147	chr1	201	60	5M	=	101	-105	NTGCC	JIHGF	NM:i:1	AS:i:4	RG:Z:S1
half	89	chr2	51	7	1S4M	=	51	0	ACGTT	edcba	NM:i:0	AS:i:4	RG:Z:S1
half	165	chr2	51	0	*	=	51	0	TTTTT	!!!!!	RG:Z:S1
none	77	*	0	0	*	*	0	0	CCCCC	#####	RG:Z:S1
none	141	*	0	0	*	*	0	0	GGGGG	$$$$$	RG:Z:S1
apart	65	chr1	11	12	5M	chr2	21	0	ACGTT	%%%%%	NM:i:0	AS:i:5	RG:Z:S1
apart	129	chr2	21	0	5M	chr1	11	0	TTGCA	&&&&&	NM:i:0	AS:i:5	XS:i:5	RG:Z:S1
single	16	chr1	301	23	3M1I1M	*	0	0	ANCGT	54321	NM:i:2	AS:i:1	XS:i:0	RG:Z:S1
empty	4	*	0	0	*	*	0	0		*	RG:Z:S1
same	83	chr1	401	60	5M	=	401	-6	GTTTT	EDCBA	NM:i:0	AS:i:5	RG:Z:S1
same	163	chr1	401	60	4M1D1M	=	401	6	GTTTT	ABCDE	NM:i:0	AS:i:5	RG:Z:S1
tie	65	chr1	501	30	5M	=	501	7	AAAAA	ABCDE	NM:i:0	AS:i:5	RG:Z:S1
tie	129	chr1	501	30	3M2D2M	=	501	-7	AAAAA	ABCDE	NM:i:0	AS:i:5	RG:Z:S1
past	99	chr1	701	60	5M	=	699	-7	ACGTA	ABCDE	NM:i:0	AS:i:5	RG:Z:S1
past	147	chr1	699	60	5M	=	701	7	TACGG	EDCBA	NM:i:0	AS:i:5	RG:Z:S1
"""


def _fixture() -> tuple[ReadBatch, Mapping, Reference]:
    columns = list(zip(*ROWS))
    seq, offsets = pack(list(columns[1]))
    qual, _ = pack(list(columns[2]))
    batch = ReadBatch(list(columns[0]), np.zeros(len(ROWS), np.int8), seq, offsets, qual)
    cigar, cigar_offsets = pack([c.encode() for c in columns[13]])
    mapping = Mapping(np.array(columns[3]), np.array(columns[4], np.int8), np.array(columns[5], np.int32),
                      np.array(columns[6], np.int64), np.array(columns[7], np.int64), np.array(columns[8], np.int32),
                      np.array(columns[9], np.int32), np.array(columns[10], np.int32), np.array(columns[11], np.int32),
                      np.array(columns[12]), cigar, cigar_offsets)
    reference = Reference(("chr1", "chr2"), np.zeros(1000, np.uint8), np.array([0, 600, 1000]))
    return batch, mapping, reference


def test_records_match_the_sam_lines_written_out_by_hand():
    batch, mapping, reference = _fixture()
    assert sam.records(batch, mapping, FRAGMENTS, reference, "S1").decode() == EXPECTED


@pytest.mark.parametrize("block_records", [1, 3, 5, 16, 1 << 14])
def test_a_sam_file_written_block_by_block_holds_every_line_once_in_order(tmp_path, block_records):
    """The blocks share one buffer; written as they come, whatever their size, they make the same file."""
    batch, mapping, reference = _fixture()
    path = tmp_path / "out.sam"
    sam.write_alignments(path, "@HD\tVN:1.6\n",
                         sam.record_blocks(batch, mapping, FRAGMENTS, reference, "S1", block_records=block_records))
    assert path.read_text() == "@HD\tVN:1.6\n" + EXPECTED


def test_names_pack_as_their_utf8_bytes_ascii_or_not():
    for names in (["r1", "read/2", ""], ["r1", "läse", "名前", "x"], []):
        data, offsets = pack_text(names)
        expected_data, expected_offsets = pack([name.encode() for name in names])
        assert data.tobytes() == expected_data.tobytes() and offsets.tolist() == expected_offsets.tolist()
        assert [data[offsets[i]:offsets[i + 1]].tobytes().decode() for i in range(len(names))] == names


def test_lines_with_every_field_at_its_widest_come_out_whole_and_in_order():
    """The longest ids and contig names and the widest integers (an int32 column's minimum included) are written
    whole, and the next line follows intact."""
    long_id, long_name, far = "q" * 300, "c" * 250, 10**17
    seq, offsets = pack([b"ACGTA", b""])
    qual, _ = pack([b"ABCDE", b""])
    batch = ReadBatch([long_id, "next"], np.zeros(2, np.int8), seq, offsets, qual)
    cigar, cigar_offsets = pack([b"5M", b"*"])
    low, high = -(2**31), 2**31 - 1
    mapping = Mapping(np.array([True, False]), np.array([0, 0], np.int8), np.array([0, -1], np.int32),
                      np.array([far, -1]), np.array([far + 5, -1]), np.array([high, 0], np.int32),
                      np.array([low, 0], np.int32), np.array([high, -1], np.int32), np.array([low, 0], np.int32),
                      np.array([False, False]), cigar, cigar_offsets)
    reference = Reference((long_name,), np.zeros(10, np.uint8), np.array([0, 10]))
    text = sam.records(batch, mapping, Fragments(np.array([0, 1]), np.array([-1, -1])), reference, "S1").decode()
    assert text == (f"{long_id}\t0\t{long_name}\t{far + 1}\t{high}\t5M\t*\t0\t0\tACGTA\tABCDE"
                    f"\tNM:i:{low}\tAS:i:{low}\tXS:i:{high}\tRG:Z:S1\n"
                    "next\t4\t*\t0\t0\t*\t*\t0\t0\t\t*\tRG:Z:S1\n")


def _reference_span(cigar: str) -> int:
    return sum(int(n) for n, op in re.findall(r"(\d+)([MIDNSHP=X])", cigar) if op in "MDN=X")


def test_the_fixture_ends_agree_with_its_cigars():
    """``end`` is POS + the CIGAR's reference span (exclusive); TLEN is computed from it, so a fixture whose ends
    disagree with its CIGARs tests TLENs no real alignment can have."""
    for row in ROWS:
        if row[3]:
            assert row[7] == row[6] + _reference_span(row[13]), row
            assert sum(
                int(n) for n, op in re.findall(r"(\d+)([MIS=X])", row[13])) == len(row[1]), row


def test_pack_cigars_writes_ungapped_and_gapped_cigars_in_row_order():
    rows = np.array([3, 0, 1], np.int64)
    gapped_text = np.frombuffer(b"10M2D140M", np.uint8)
    cigar, offsets = pack_cigars(5, rows, np.array([0, 12, 0]), np.array([150, 138, 0]), np.array([0, 0, 0]),
                                 np.array([-1, -1, 0]), gapped_text, np.array([0, 9], np.int64))
    texts = [cigar[offsets[r]:offsets[r + 1]].tobytes().decode() for r in range(5)]
    assert texts == ["12S138M", "10M2D140M", "*", "150M", "*"]


def test_mate_ids_follow_the_validator_rule():
    """The read id ends at the first space or tab (nothing else splits it, not even Unicode or control
    whitespace, which the validator rejects or keeps as id text), then a trailing /1 or /2 is dropped."""
    names = [b"a/1", b"  b c/2", b"x/2 y", b"   ", b"", b"/1", b"q\x1ez/1", b"\tt\x0b", b"n\xc3\xa9/1 z",
             b"\xff\xfeab/2", b"u\xc2\xa0v/1", b"/", b"ab/3", b"r1/1/2", b" \xc2\x85x"]
    data, offsets = pack(names)
    assert mate_ids(data, offsets[:-1], offsets[1:]) == [
        "a", "", "x", "", "", "", "q\x1ez", "", "n\u00e9", "\ufffd\ufffdab", "u\u00a0v", "/", "ab/3", "r1/1", ""]