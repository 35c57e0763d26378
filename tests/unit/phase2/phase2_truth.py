"""Helpers the Phase 2 tests share: writing simulated pairs, reading SAM records, checking placement."""

from __future__ import annotations

from pathlib import Path

from helixflow.phase2 import simulate


def write_pair(tmp_path: Path, reads: list[simulate.SimulatedRead]) -> tuple[Path, Path]:
    r1, r2 = tmp_path / "S1_R1.fastq", tmp_path / "S1_R2.fastq"
    simulate.write_fastq(r1, reads[0::2])
    simulate.write_fastq(r2, reads[1::2])
    return r1, r2


def sam_records(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if not line.startswith("@")]


def placed_correctly(record: list[str], truth: simulate.SimulatedRead, tolerance: int = 10) -> bool:
    """Mapped to the true contig and strand with the leftmost base within ``tolerance`` of the truth (the
    aligned start is compared after adding back leading soft clips, as the benchmark does)."""
    flag = int(record[1])
    if flag & 4 or record[2] != truth.contig or bool(flag & 16) != truth.reverse:
        return False
    cigar = record[5]
    clip = 0
    digits = ""
    for ch in cigar:
        if ch.isdigit():
            digits += ch
            continue
        if ch == "S":
            clip = int(digits)
        break
    return abs(int(record[3]) - 1 - clip - truth.position) <= tolerance
