"""Generated test data for Phase 2: a genome with real repeat structure and reads with known origins.

``genome_with_repeats`` starts from a real sequence (lambda phage in the tests and benchmark) and adds the repeat
classes that make read placement ambiguous: exact copies (forward and inverted), paralogs diverged by 1 %, 2 %
and 5 % substitutions, a tandem repeat array, and a second contig that is a 10 %-diverged homolog of the first.
``simulate_reads`` draws reads uniformly from both strands with an Illumina-like error profile (substitutions
rising from ``error_rate`` / 2 at the 5' end to 2 x ``error_rate`` at the 3' end, rare 1-2 bp indels), and
records each read's true contig, leftmost position and strand. Everything is driven by a seeded generator, so
a seed gives the same data on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helixflow.seq.alphabet import reverse_complement

_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def _mutate(seq: bytes, rate: float, rng: np.random.Generator) -> bytes:
    array = np.frombuffer(seq, dtype=np.uint8).copy()
    sites = np.flatnonzero(rng.random(array.size) < rate)
    for site in sites.tolist():
        array[site] = rng.choice(_BASES[_BASES != array[site]])
    return array.tobytes()


def genome_with_repeats(base: bytes, rng: np.random.Generator) -> dict[str, bytes]:
    """Two contigs built from ``base`` (at least ~40 kb) with the repeat classes in the module docstring."""
    genome = bytearray(base.upper())
    length = len(base)

    def segment(size: int) -> bytes:
        start = int(rng.integers(0, length - size))
        return bytes(base[start:start + size]).upper()

    insertions: list[bytes] = []
    for size in (1500, 2000):
        copy = segment(size)
        insertions += [copy, reverse_complement(copy)]  # exact copy elsewhere + an inverted exact copy
    for divergence in (0.01, 0.02, 0.05):
        insertions.append(_mutate(segment(3000), divergence, rng))
    unit = segment(60)
    insertions.append(unit * 20)
    for insertion in insertions:
        at = int(rng.integers(0, len(genome)))
        genome[at:at] = insertion
    homolog = _mutate(bytes(genome[: len(genome) // 2]), 0.10, rng)
    return {"chrA": bytes(genome), "chrB": homolog + segment(2500)}


def write_fasta(path, contigs: dict[str, bytes], width: int = 70) -> None:
    with open(path, "wb") as handle:
        for name, seq in contigs.items():
            handle.write(b">" + name.encode() + b"\n")
            for i in range(0, len(seq), width):
                handle.write(seq[i:i + width] + b"\n")


@dataclass(frozen=True)
class SimulatedRead:
    name: str
    sequence: bytes
    quality: bytes
    contig: str
    position: int  # 0-based leftmost reference base of the read's origin
    reverse: bool


def _sequence_errors(seq: bytes, error_rate: float, rng: np.random.Generator) -> tuple[bytes, bytes]:
    n = len(seq)
    rate = error_rate * np.linspace(0.5, 2.0, n)
    array = np.frombuffer(seq, dtype=np.uint8).copy()
    hits = rng.random(n) < rate
    for site in np.flatnonzero(hits).tolist():
        array[site] = rng.choice(_BASES[_BASES != array[site]])
    quality = np.where(hits, 15, 37) + 33
    out = array.tobytes()
    if rng.random() < 0.02:  # a short indel in ~2 % of reads, away from the ends
        at = int(rng.integers(20, n - 20))
        size = int(rng.integers(1, 3))
        out = out[:at] + out[at + size:] + b"A" * size if rng.random() < 0.5 else \
            out[:at] + b"G" * size + out[at:n - size]
    return out, quality.astype(np.uint8).tobytes()


def simulate_reads(contigs: dict[str, bytes], n: int, length: int = 150, error_rate: float = 0.005,
                   rng: np.random.Generator | None = None, paired: bool = False, insert_mean: int = 400,
                   insert_sd: int = 40) -> list[SimulatedRead]:
    """``n`` reads (``n`` fragments, two reads each, when ``paired``; mate 1 first). Positions are uniform
    over the genome; the forward-strand mate is the fragment's leftmost read and the reverse-strand mate its
rightmost (Illumina FR); which of them is mate 1 is random."""
    rng = rng or np.random.default_rng(0)
    names = list(contigs)
    sizes = np.array([len(contigs[c]) for c in names], dtype=np.float64)
    reads: list[SimulatedRead] = []
    for i in range(n):
        contig = names[int(rng.choice(len(names), p=sizes / sizes.sum()))]
        seq = contigs[contig]
        fragment = max(length, int(rng.normal(insert_mean, insert_sd))) if paired else length
        start = int(rng.integers(0, len(seq) - fragment + 1))
        reverse = bool(rng.random() < 0.5)
        if paired:
            left, right = (start, False), (start + fragment - length, True)
            spans = [right, left] if reverse else [left, right]
        else:
            spans = [(start, reverse)]
        for mate, (position, on_reverse) in enumerate(spans, start=1):
            origin = seq[position:position + length]
            read = reverse_complement(origin) if on_reverse else origin
            read, quality = _sequence_errors(read, error_rate, rng)
            suffix = f"/{mate}" if paired else ""
            reads.append(SimulatedRead(f"sim{i}_{contig}_{start}{suffix}", read, quality, contig, position,
                                       on_reverse))
    return reads


def write_fastq(path, reads: list[SimulatedRead]) -> None:
    with open(path, "wb") as handle:
        for read in reads:
            handle.write(b"@" + read.name.encode() + b"\n" + read.sequence + b"\n+\n" + read.quality + b"\n")
