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
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from numba import njit, prange

from helixflow import __version__
from helixflow.errors import BamConversionFailed
from helixflow.phase2.mapper import Mapping
from helixflow.phase2.reads import Fragments, ReadBatch
from helixflow.phase2.reference import Reference
from helixflow.seq.alphabet import COMPLEMENT
from helixflow.seq.packing import pack_text

_FLAG_PAIRED, _FLAG_PROPER, _FLAG_UNMAPPED, _FLAG_MATE_UNMAPPED = 0x1, 0x2, 0x4, 0x8
_FLAG_REVERSE, _FLAG_MATE_REVERSE, _FLAG_FIRST, _FLAG_SECOND = 0x10, 0x20, 0x40, 0x80
# Records per output block (~7 MB of SAM at 150 bp): the block buffer is reused, so its pages are touched once.
BLOCK_RECORDS = 1 << 14


def _clean(value: str) -> str:
    # Header fields are tab separated and one line long.
    return value.replace("\t", " ").replace("\n", " ")


def header(reference: Reference, sample: str, command_line: Sequence[str]) -> str:
    lines = ["@HD\tVN:1.6\tSO:unsorted\tGO:query"]
    lines += [f"@SQ\tSN:{name}\tLN:{length}" for name, length in zip(reference.names, reference.lengths.tolist())]
    lines.append(f"@RG\tID:{_clean(sample)}\tSM:{_clean(sample)}\tPL:ILLUMINA")
    lines.append(f"@PG\tID:helixflow\tPN:helixflow\tVN:{__version__}\tCL:{_clean(shlex.join(command_line))}")
    return "\n".join(lines) + "\n"


@njit(cache=True)
def _put_int(buf, at, value, write):
    """Decimal text of ``value`` at ``buf[at:]`` (only measured when not ``write``); returns the end."""
    value = np.int64(value)  # an int32 column's minimum has no int32 negation
    if value < 0:
        if write:
            buf[at] = 45  # '-'
        at += 1
        value = -value
    digits = 1
    scale = 10
    while scale <= value:
        digits += 1
        scale *= 10
    if write:
        for i in range(digits):
            buf[at + digits - 1 - i] = 48 + value % 10
            value //= 10
    return at + digits


@njit(cache=True)
def _put_bytes(buf, at, source, lo, hi, write):
    if write:
        buf[at:at + hi - lo] = source[lo:hi]
    return at + hi - lo


@njit(cache=True)
def _put_tag(buf, at, tag, value, write):
    """``\t`` + ``tag`` (e.g. b"NM:i:") + the integer."""
    if write:
        buf[at] = 9
    at = _put_bytes(buf, at + 1, tag, 0, tag.shape[0], write)
    return _put_int(buf, at, value, write)


@njit(cache=True)
def _record(buf, at, write, row, mate, first, ids, id_offsets, seq, qual, seq_offsets, mapped, strand, contig,
            pos, end, mapq, score, second, nm, proper, cigar, cigar_offsets, names, name_offsets, read_group, tags):
    """One SAM line for ``row`` (``mate`` -1 when single-end) from ``buf[at]``; returns the end. With ``write``
    False nothing is written, so the same code measures the line first."""
    flag = 0
    if mate >= 0:
        flag |= _FLAG_PAIRED | (_FLAG_FIRST if first else _FLAG_SECOND)
        if not mapped[mate]:
            flag |= _FLAG_MATE_UNMAPPED
        elif strand[mate]:
            flag |= _FLAG_MATE_REVERSE
        if proper[row] and mapped[row] and mapped[mate]:
            flag |= _FLAG_PROPER
    # RNAME / RNEXT as contig indices, -1 for "*" (contig names are unique, so equal index = equal name).
    if mapped[row]:
        rname, rpos = contig[row], pos[row] + 1
        if strand[row]:
            flag |= _FLAG_REVERSE
    else:
        flag |= _FLAG_UNMAPPED
        if mate >= 0 and mapped[mate]:
            rname, rpos = contig[mate], pos[mate] + 1
        else:
            rname, rpos = -1, 0
    rnext, pnext, tlen = -1, 0, 0
    if mate >= 0:
        if mapped[mate]:
            rnext, pnext = contig[mate], pos[mate] + 1
        elif mapped[row]:
            rnext, pnext = rname, rpos
        if mapped[row] and mapped[mate] and contig[row] == contig[mate]:
            # Leftmost mapped base to rightmost of the two mates, positive for the leftmost mate.
            tlen = max(end[row], end[mate]) - min(pos[row], pos[mate])
            if pos[row] != pos[mate]:
                leftmost = pos[row] < pos[mate]
            elif strand[row] != strand[mate]:
                leftmost = strand[row] == 0
            else:
                leftmost = row < mate
            if not leftmost:
                tlen = -tlen
    at = _put_bytes(buf, at, ids, id_offsets[row], id_offsets[row + 1], write)
    at = _put_tag(buf, at, tags[0], flag, write)
    if write:
        buf[at] = 9
    if rname >= 0:
        at = _put_bytes(buf, at + 1, names, name_offsets[rname], name_offsets[rname + 1], write)
    else:
        if write:
            buf[at + 1] = 42  # '*'
        at += 2
    at = _put_tag(buf, at, tags[0], rpos, write)
    at = _put_tag(buf, at, tags[0], mapq[row] if mapped[row] else 0, write)
    if write:
        buf[at] = 9
    if mapped[row]:
        at = _put_bytes(buf, at + 1, cigar, cigar_offsets[row], cigar_offsets[row + 1], write)
    else:
        if write:
            buf[at + 1] = 42
        at += 2
    if write:
        buf[at] = 9
    if rnext >= 0 and rnext == rname:
        if write:
            buf[at + 1] = 61  # '='
        at += 2
    elif rnext >= 0:
        at = _put_bytes(buf, at + 1, names, name_offsets[rnext], name_offsets[rnext + 1], write)
    else:
        if write:
            buf[at + 1] = 42
        at += 2
    at = _put_tag(buf, at, tags[0], pnext, write)
    at = _put_tag(buf, at, tags[0], tlen, write)
    lo = seq_offsets[row]
    hi = seq_offsets[row + 1]
    reverse = mapped[row] and strand[row] != 0
    if write:
        buf[at] = 9
        buf[at + 1 + hi - lo] = 9
        if reverse:
            # Views indexed by the loop counter: computed indices cost a negative-index check per byte.
            seq_out = buf[at + 1:at + 1 + hi - lo]
            qual_out = buf[at + 2 + hi - lo:at + 2 + 2 * (hi - lo)]
            seq_in = seq[lo:hi][::-1]
            qual_in = qual[lo:hi][::-1]
            for i in range(seq_out.shape[0]):
                seq_out[i] = COMPLEMENT[seq_in[i]]
                qual_out[i] = qual_in[i]
        else:  # a copy, hoisted out of the loop: the common case is memcpy
            buf[at + 1:at + 1 + hi - lo] = seq[lo:hi]
            buf[at + 2 + hi - lo:at + 2 + 2 * (hi - lo)] = qual[lo:hi]
        if hi == lo:
            buf[at + 2] = 42
    at += 2 + (hi - lo) + max(hi - lo, 1)  # \t SEQ \t QUAL, QUAL "*" when empty
    if mapped[row]:
        at = _put_tag(buf, at, tags[1], nm[row], write)
        at = _put_tag(buf, at, tags[2], score[row], write)
        if second[row] >= 0:
            at = _put_tag(buf, at, tags[3], second[row], write)
    if write:
        buf[at] = 9
    at = _put_bytes(buf, at + 1, tags[4], 0, tags[4].shape[0], write)
    at = _put_bytes(buf, at, read_group, 0, read_group.shape[0], write)
    if write:
        buf[at] = 10
    return at + 1


@njit(cache=True, parallel=True)
def _measure(rows, mates, first, ids, id_offsets, seq, qual, seq_offsets, mapped, strand, contig, pos, end, mapq,
             score, second, nm, proper, cigar, cigar_offsets, names, name_offsets, read_group, tags):
    """Where each record of ``rows`` starts in its block: (n + 1,) offsets, the last one the block's size."""
    n = rows.shape[0]
    offsets = np.zeros(n + 1, dtype=np.int64)
    empty = np.empty(0, dtype=np.uint8)
    for i in prange(n):
        offsets[i + 1] = _record(empty, 0, False, rows[i], mates[i], first[i], ids, id_offsets, seq, qual,
                                 seq_offsets, mapped, strand, contig, pos, end, mapq, score, second, nm, proper,
                                 cigar, cigar_offsets, names, name_offsets, read_group, tags)
    for i in range(n):
        offsets[i + 1] += offsets[i]
    return offsets


@njit(cache=True, parallel=True)
def _write(buf, offsets, rows, mates, first, ids, id_offsets, seq, qual, seq_offsets, mapped, strand, contig, pos,
           end, mapq, score, second, nm, proper, cigar, cigar_offsets, names, name_offsets, read_group, tags):
    for i in prange(rows.shape[0]):
        _record(buf, offsets[i], True, rows[i], mates[i], first[i], ids, id_offsets, seq, qual, seq_offsets,
                mapped, strand, contig, pos, end, mapq, score, second, nm, proper, cigar, cigar_offsets, names,
                name_offsets, read_group, tags)


def record_blocks(batch: ReadBatch, mapping: Mapping, frags: Fragments, reference: Reference, read_group: str,
                  block_records: int = BLOCK_RECORDS) -> Iterator[memoryview]:
    """SAM body lines for every read of ``batch`` in fragment order (mate 1 before mate 2), UTF-8, in blocks of
    ``block_records`` records. Each block is a view of one buffer reused for the next (write it before asking
    for the next): the output is never held whole, and the buffer's memory is touched once, not per block."""
    m = mapping
    pairs = np.stack([frags.first, frags.second], axis=1).ravel()
    mates = np.stack([frags.second, frags.first], axis=1).ravel()
    first = np.tile(np.array([True, False]), len(frags))
    keep = pairs >= 0
    pairs, mates, first = pairs[keep], mates[keep], first[keep]
    ids, id_offsets = pack_text(batch.ids)
    names, name_offsets = pack_text(reference.names)
    tags = tuple(np.frombuffer(t, dtype=np.uint8) for t in (b"", b"NM:i:", b"AS:i:", b"XS:i:", b"RG:Z:"))
    fields = (ids, id_offsets, batch.seq, batch.qual, batch.seq_offsets, m.mapped, m.strand, m.contig, m.pos, m.end,
              m.mapq, m.score, m.second, m.nm, m.proper, m.cigar, m.cigar_offsets, names, name_offsets,
              np.frombuffer(read_group.encode(), dtype=np.uint8), tags)
    buf = np.empty(0, dtype=np.uint8)
    for lo in range(0, pairs.shape[0], block_records):
        block = (pairs[lo:lo + block_records], mates[lo:lo + block_records], first[lo:lo + block_records])
        offsets = _measure(*block, *fields)
        if offsets[-1] > buf.shape[0]:
            buf = np.empty(int(offsets[-1] * 1.25), dtype=np.uint8)
        _write(buf, offsets, *block, *fields)
        yield memoryview(buf)[:offsets[-1]]


def records(batch: ReadBatch, mapping: Mapping, frags: Fragments, reference: Reference, read_group: str) -> bytes:
    """The whole SAM body as one bytes object (MPI gathers each rank's so): ``record_blocks`` as one block."""
    blocks = record_blocks(batch, mapping, frags, reference, read_group, block_records=max(len(batch), 1))
    return bytes(next(blocks, b""))


def write_alignments(path: str | os.PathLike, header_text: str, body: bytes | Iterable[memoryview],
                     threads: int = 1) -> None:
    """Write SAM, or - when ``path`` ends in .bam - a coordinate-sorted BAM plus its .bai index (samtools).
    ``body``: the records as one bytes object, or ``record_blocks``' blocks."""
    path = os.fspath(path)
    blocks = [body] if isinstance(body, bytes) else body
    if not path.endswith(".bam"):
        with open(path, "wb") as handle:
            handle.write(header_text.encode())
            for block in blocks:
                handle.write(block)
        return
    samtools = shutil.which("samtools")
    if samtools is None:
        raise BamConversionFailed("BAM output needs samtools on PATH; write .sam instead", code="NO_SAMTOOLS")
    with tempfile.NamedTemporaryFile(suffix=".sam", dir=os.path.dirname(os.path.abspath(path))) as sam:
        sam.write(header_text.encode())
        for block in blocks:
            sam.write(block)
        sam.flush()
        for command in ([samtools, "sort", "-@", str(max(threads - 1, 0)), "-o", path, sam.name],
                        [samtools, "index", path]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise BamConversionFailed(f"{shlex.join(command)} failed: {done.stderr.strip()}")


# What MultiQC's samtools module reads, by the name it finds them under (qc/<sample>.<kind>.txt).
ALIGNMENT_STATS = ("flagstat", "stats")


def write_alignment_stats(bam: str | os.PathLike, qc_dir: str | os.PathLike, sample: str,
                          threads: int = 1) -> list[str]:
    """``samtools flagstat`` and ``samtools stats`` of ``bam`` as ``qc_dir/<sample>.flagstat.txt`` and
    ``.stats.txt`` (the text MultiQC's samtools module parses); returns the paths written."""
    samtools = shutil.which("samtools")
    if samtools is None:
        raise BamConversionFailed("alignment statistics need samtools on PATH", code="NO_SAMTOOLS")
    os.makedirs(qc_dir, exist_ok=True)
    written = []
    for kind in ALIGNMENT_STATS:
        command = [samtools, kind, "-@", str(max(threads - 1, 0)), os.fspath(bam)]
        target = os.path.join(qc_dir, f"{sample}.{kind}.txt")
        with open(target, "wb") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise BamConversionFailed(f"{shlex.join(command)} failed: {done.stderr.decode(errors='replace').strip()}",
                                      code="ALIGNMENT_STATS_FAILED")
        written.append(target)
    return written
