"""A small, reproducible demo dataset: paired reads from a random genome with sequencing errors, Illumina
adapter read-through and 3' quality decay, plus one deliberately broken file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

TRUSEQ_ADAPTER_R1 = "AGATCGGAAGAGCACACGTCTGAACTCCAGTCA"
TRUSEQ_ADAPTER_R2 = "AGATCGGAAGAGCGTCGTGTAGGGAAAGAGTGT"
_COMPLEMENT = bytes.maketrans(b"ACGT", b"TGCA")
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def _quality(rng: np.random.Generator, length: int) -> np.ndarray:
    """Phred scores that decay towards the 3' end, as on Illumina instruments."""
    position = np.arange(length)
    mean = 37 - 12 * (position / max(length - 1, 1)) ** 2
    return np.clip(rng.normal(mean, 3.0), 2, 41).astype(np.int64)


def _read(rng: np.random.Generator, fragment: bytes, adapter: str, length: int) -> tuple[bytes, bytes]:
    sequence = bytearray((fragment + adapter.encode() + b"A" * length)[:length])
    quality = _quality(rng, length)
    error_probability = 10.0 ** (-quality / 10)
    for position in np.flatnonzero(rng.random(length) < error_probability):
        sequence[position] = _BASES[(b"ACGT".index(sequence[position]) + int(rng.integers(1, 4))) % 4]
    return bytes(sequence), bytes((quality + 33).astype(np.uint8))


def write_paired_sample(directory: Path, sample: str = "demo", pairs: int = 2000, read_length: int = 150,
                        seed: int = 7) -> tuple[Path, Path, Path]:
    """Write <sample>_R1/_R2.fastq.gz and the genome (FASTA) they come from."""
    rng = np.random.default_rng(seed)
    genome = rng.choice(_BASES, size=20_000).tobytes()
    directory.mkdir(parents=True, exist_ok=True)
    r1_path, r2_path = directory / f"{sample}_R1.fastq.gz", directory / f"{sample}_R2.fastq.gz"
    with gzip.open(r1_path, "wb", compresslevel=1) as r1, gzip.open(r2_path, "wb", compresslevel=1) as r2:
        for index in range(pairs):
            fragment_length = int(rng.integers(100, 400))
            start = int(rng.integers(0, len(genome) - fragment_length))
            fragment = genome[start:start + fragment_length]
            name = f"@{sample}.{index + 1} pos={start + 1}"
            seq1, qual1 = _read(rng, fragment, TRUSEQ_ADAPTER_R1, read_length)
            seq2, qual2 = _read(rng, fragment.translate(_COMPLEMENT)[::-1], TRUSEQ_ADAPTER_R2, read_length)
            r1.write(b"%s/1\n%s\n+\n%s\n" % (name.encode(), seq1, qual1))
            r2.write(b"%s/2\n%s\n+\n%s\n" % (name.encode(), seq2, qual2))
    reference = directory / f"{sample}_reference.fa"
    reference.write_text(">demo_chr1\n" + "\n".join(genome[i:i + 80].decode() for i in range(0, len(genome), 80)) + "\n")
    return r1_path, r2_path, reference


def write_broken_sample(directory: Path, sample: str = "broken", records: int = 50, broken_record: int = 37,
                        seed: int = 11) -> Path:
    """A single-end file whose record ``broken_record`` has one quality character fewer than bases."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{sample}.fastq"
    with path.open("wb") as out:
        for index in range(1, records + 1):
            sequence = rng.choice(_BASES, size=100).tobytes()
            quality = bytes((_quality(rng, 100) + 33).astype(np.uint8))
            if index == broken_record:
                quality = quality[:-1]
            out.write(b"@%s.%d\n%s\n+\n%s\n" % (sample.encode(), index, sequence, quality))
    return path
