"""The demo's inputs: a simulated paired-end sample (Illumina-like qualities, errors and adapter read-through,
from ``helixflow.phase1.simulate``) and one deliberately broken file."""

from __future__ import annotations

from pathlib import Path

from helixflow.phase1.simulate import fastq_bytes, simulate_pairs, write_sample


def write_paired_sample(directory: Path, sample: str = "demo", pairs: int = 2000) -> tuple[Path, Path]:
    r1, r2 = write_sample(directory, pairs, paired=True, fmt="gzip", name=sample, fragment_mean=220.0)
    return Path(r1), Path(r2)


def write_broken_sample(directory: Path, sample: str = "broken", records: int = 50, broken_record: int = 37) -> Path:
    """A single-end file whose record ``broken_record`` has one quality character fewer than bases."""
    names, sequences, qualities, _, _ = simulate_pairs(records, length=100, paired=False, seed=11)
    lines = fastq_bytes(names, sequences, qualities).split(b"\n")
    quality_line = 4 * (broken_record - 1) + 3
    lines[quality_line] = lines[quality_line][:-1]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{sample}.fastq"
    path.write_bytes(b"\n".join(lines))
    return path
