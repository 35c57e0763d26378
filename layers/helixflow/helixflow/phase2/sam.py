"""SAM output (and sorted, indexed BAM through samtools).

Records come out in fragment order (mate 1 before mate 2), one primary record per read; unmapped reads are kept.
Header: @HD VN:1.6 SO:unsorted GO:query (records are grouped by read, not sorted), @SQ per contig, one @RG
(ID and SM = the sample name, PL:ILLUMINA) and @PG with the full command line. Tags: NM (edit distance),
AS (alignment score), XS (best score at another locus, only when there is one), RG.
TLEN follows the SAM spec: leftmost mapped base to rightmost mapped base of the two mates on the same contig,
positive for the leftmost mate (the forward mate when both start at the same base), 0 otherwise.
An unmapped mate of a mapped read takes its mate's RNAME and POS so sorting keeps the pair together.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

from helixflow import __version__
from helixflow.errors import BamConversionFailed
from helixflow.phase2.mapper import Mapping
from helixflow.phase2.reads import Fragments, ReadBatch
from helixflow.phase2.reference import Reference

_FLAG_PAIRED, _FLAG_PROPER, _FLAG_UNMAPPED, _FLAG_MATE_UNMAPPED = 0x1, 0x2, 0x4, 0x8
_FLAG_REVERSE, _FLAG_MATE_REVERSE, _FLAG_FIRST, _FLAG_SECOND = 0x10, 0x20, 0x40, 0x80
_REVCOMP = bytes.maketrans(b"ACGTNacgtn", b"TGCANtgcan")


def _clean(value: str) -> str:
    # Header fields are tab separated and one line long.
    return value.replace("\t", " ").replace("\n", " ")


def header(reference: Reference, sample: str, command_line: Sequence[str]) -> str:
    lines = ["@HD\tVN:1.6\tSO:unsorted\tGO:query"]
    lines += [f"@SQ\tSN:{name}\tLN:{length}" for name, length in zip(reference.names, reference.lengths.tolist())]
    lines.append(f"@RG\tID:{_clean(sample)}\tSM:{_clean(sample)}\tPL:ILLUMINA")
    lines.append(f"@PG\tID:helixflow\tPN:helixflow\tVN:{__version__}\tCL:{_clean(shlex.join(command_line))}")
    return "\n".join(lines) + "\n"


def _template_length(m: Mapping, row: int, mate: int) -> int:
    if not (m.mapped[row] and m.mapped[mate]) or m.contig[row] != m.contig[mate]:
        return 0
    span = int(max(m.end[row], m.end[mate]) - min(m.pos[row], m.pos[mate]))
    if m.pos[row] != m.pos[mate]:
        leftmost = m.pos[row] < m.pos[mate]
    elif m.strand[row] != m.strand[mate]:
        leftmost = m.strand[row] == 0
    else:
        leftmost = row < mate
    return span if leftmost else -span


def records(batch: ReadBatch, mapping: Mapping, frags: Fragments, reference: Reference, read_group: str) -> str:
    """SAM body lines for every read of ``batch`` in fragment order."""
    m = mapping
    names = reference.names
    out: list[str] = []
    for first, second in zip(frags.first.tolist(), frags.second.tolist()):
        for row, mate in ((first, second), (second, first)) if second >= 0 else ((first, -1),):
            flag = 0
            seq = batch.sequence(row)
            qual = batch.quality(row)
            if mate >= 0:
                flag |= _FLAG_PAIRED | (_FLAG_FIRST if row == first else _FLAG_SECOND)
                if not m.mapped[mate]:
                    flag |= _FLAG_MATE_UNMAPPED
                elif m.strand[mate]:
                    flag |= _FLAG_MATE_REVERSE
                if m.proper[row] and m.mapped[row] and m.mapped[mate]:
                    flag |= _FLAG_PROPER
            if m.mapped[row]:
                rname, pos = names[m.contig[row]], int(m.pos[row]) + 1
                mapq, cigar = int(m.mapq[row]), m.cigar[row]
                if m.strand[row]:
                    flag |= _FLAG_REVERSE
                    seq = seq.translate(_REVCOMP)[::-1]
                    qual = qual[::-1]
                tags = f"NM:i:{m.nm[row]}\tAS:i:{m.score[row]}"
                if m.second[row] >= 0:
                    tags += f"\tXS:i:{m.second[row]}"
                tags += f"\tRG:Z:{read_group}"
            else:
                flag |= _FLAG_UNMAPPED
                mapq, cigar, tags = 0, "*", f"RG:Z:{read_group}"
                if mate >= 0 and m.mapped[mate]:
                    rname, pos = names[m.contig[mate]], int(m.pos[mate]) + 1
                else:
                    rname, pos = "*", 0
            rnext, pnext, tlen = "*", 0, 0
            if mate >= 0:
                if m.mapped[mate]:
                    mate_contig, pnext = names[m.contig[mate]], int(m.pos[mate]) + 1
                elif m.mapped[row]:
                    mate_contig, pnext = rname, pos
                else:
                    mate_contig = "*"
                rnext = "=" if mate_contig == rname and rname != "*" else mate_contig
                tlen = _template_length(m, row, mate)
            out.append(f"{batch.ids[row]}\t{flag}\t{rname}\t{pos}\t{mapq}\t{cigar}\t{rnext}\t{pnext}\t{tlen}\t"
                       f"{seq.decode()}\t{qual.decode() or '*'}\t{tags}\n")
    return "".join(out)


def write_alignments(path: str | os.PathLike, header_text: str, body: str | bytes, threads: int = 1) -> None:
    """Write SAM, or - when ``path`` ends in .bam - a coordinate-sorted BAM plus its .bai index (samtools)."""
    path = os.fspath(path)
    data = body.encode() if isinstance(body, str) else body
    if not path.endswith(".bam"):
        with open(path, "wb") as handle:
            handle.write(header_text.encode())
            handle.write(data)
        return
    samtools = shutil.which("samtools")
    if samtools is None:
        raise BamConversionFailed("BAM output needs samtools on PATH; write .sam instead", code="NO_SAMTOOLS")
    with tempfile.NamedTemporaryFile(suffix=".sam", dir=os.path.dirname(os.path.abspath(path))) as sam:
        sam.write(header_text.encode())
        sam.write(data)
        sam.flush()
        for command in ([samtools, "sort", "-@", str(max(threads - 1, 0)), "-o", path, sam.name],
                        [samtools, "index", path]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise BamConversionFailed(f"{shlex.join(command)} failed: {done.stderr.strip()}")
