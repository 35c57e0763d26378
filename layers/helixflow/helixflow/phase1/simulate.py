"""Illumina-like read simulator for tests and benchmarks (vectorised, deterministic for a seed).

Reads are fragments of a random genome (or a given one) with a fragment-length distribution; when the fragment
is shorter than the read, the read runs into the adapter (TruSeq by default) and then into poly-G (what
two-colour chemistry reports after the end of the library). Qualities decay along the read with per-read noise
and a fraction of reads with a low-quality 3' tail; substitution errors are drawn from the qualities, and a
base with quality 2 is written as N. A fraction of fragments are PCR duplicates (same fragment, their own errors).
"""

from __future__ import annotations

import os

import numpy as np

from helixflow.fastq.bgzf import BgzfWriter
from helixflow.seq.alphabet import COMPLEMENT

TRUSEQ_R1 = b"AGATCGGAAGAGCACACGTCTGAACTCCAGTCA"
TRUSEQ_R2 = b"AGATCGGAAGAGCGTCGTGTAGGGAAAGAGTGT"
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def random_genome(length: int, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    return _BASES[rng.integers(0, 4, length)].tobytes()


def _revcomp(rows: np.ndarray) -> np.ndarray:
    return COMPLEMENT[rows[:, ::-1]]


def _qualities(rng, n, length, mean_start=36.0, mean_end=28.0, bad_tail_fraction=0.1):
    pos = np.arange(length)
    mean = mean_start + (mean_end - mean_start) * (pos / max(length - 1, 1)) ** 2
    q = mean + rng.normal(0, 3.0, (n, 1)) + rng.normal(0, 4.0, (n, length))
    bad = rng.random(n) < bad_tail_fraction
    tail_start = rng.integers(length // 2, length, n)
    q[bad[:, None] & (pos[None, :] >= tail_start[:, None])] -= 22
    return np.clip(np.rint(q), 2, 41).astype(np.uint8)


def _apply_errors(rng, seq, qual):
    p_err = 10.0 ** (-qual.astype(np.float64) / 10.0)
    hit = rng.random(seq.shape) < p_err * 4 / 3  # a random substitute equals the base a quarter of the time
    seq = np.where(hit, _BASES[rng.integers(0, 4, seq.shape)], seq)
    return np.where(qual <= 2, np.uint8(ord("N")), seq)


def simulate_pairs(n: int, length: int = 150, *, seed: int = 7, genome: bytes | None = None,
                   paired: bool = True, adapter1: bytes = TRUSEQ_R1, adapter2: bytes = TRUSEQ_R2,
                   fragment_mean: float = 300.0, fragment_sd: float = 90.0, duplicate_fraction: float = 0.05,
                   bad_tail_fraction: float = 0.1):
    """Returns (names, r1 sequences, r1 qualities, r2 sequences, r2 qualities) as uint8 matrices (n, length);
    r2 arrays are None for single-end. Qualities are Phred values (not ASCII)."""
    rng = np.random.default_rng(seed)
    genome_arr = np.frombuffer(genome or random_genome(max(200_000, 4 * int(fragment_mean)), seed + 1),
                               dtype=np.uint8)
    frag = np.clip(rng.normal(fragment_mean, fragment_sd, n).astype(np.int64), 20, len(genome_arr) - 1)
    start = rng.integers(0, len(genome_arr) - frag)
    dup = rng.random(n) < duplicate_fraction
    source = np.where(dup, rng.integers(0, n, n), np.arange(n))
    frag, start = frag[source], start[source]
    strand = rng.random(n)[source] < 0.5

    ext = length + len(adapter1) + length
    cols = np.arange(length)
    idx = start[:, None] + np.minimum(cols[None, :], frag[:, None] - 1)
    fwd = genome_arr[idx]
    end_idx = start[:, None] + frag[:, None] - 1 - np.minimum(cols[None, :], frag[:, None] - 1)
    rev = COMPLEMENT[genome_arr[end_idx]]

    def build(insert, adapter):
        tail = np.full((n, ext), ord("G"), dtype=np.uint8)
        tail[:, : len(adapter)] = np.frombuffer(adapter, dtype=np.uint8)
        k = cols[None, :] - frag[:, None]
        inside = k < 0
        out = np.where(inside, insert, tail[np.arange(n)[:, None], np.clip(k, 0, ext - 1)])
        return out.astype(np.uint8)

    r1_insert = np.where(strand[:, None], rev, fwd)
    r2_insert = np.where(strand[:, None], fwd, rev)
    r1 = build(r1_insert, adapter1)
    q1 = _qualities(rng, n, length, bad_tail_fraction=bad_tail_fraction)
    r1 = _apply_errors(rng, r1, q1)
    names = [f"sim{i}" for i in range(n)]
    if not paired:
        return names, r1, q1, None, None
    r2 = build(r2_insert, adapter2)
    q2 = _qualities(rng, n, length, mean_start=34.0, mean_end=25.0, bad_tail_fraction=bad_tail_fraction)
    r2 = _apply_errors(rng, r2, q2)
    return names, r1, q1, r2, q2


def fastq_bytes(names, seqs: np.ndarray, quals: np.ndarray, mate: int | None = None) -> bytes:
    """FASTQ text for equal-length reads (numpy, one join per record for the headers only)."""
    n, length = seqs.shape
    suffix = "" if mate is None else f"/{mate}"
    headers = [f"@{name}{suffix}".encode() for name in names]
    body = np.empty((n, 2 * length + 4), dtype=np.uint8)
    body[:, 0] = 10
    body[:, 1 : length + 1] = seqs
    body[:, length + 1 : length + 4] = np.frombuffer(b"\n+\n", dtype=np.uint8)
    body[:, length + 4 :] = quals + 33
    rows = body.tobytes()
    width = 2 * length + 4
    return b"".join(h + rows[i * width : (i + 1) * width] + b"\n" for i, h in enumerate(headers))


def write_fastq(path: str | os.PathLike, data: bytes, fmt: str = "auto") -> None:
    """Write FASTQ text uncompressed ('none'), as 'gzip' or as 'bgzf' ('auto': from the suffix; .bgz/.bgzf = BGZF)."""
    path = os.fspath(path)
    if fmt == "auto":
        fmt = "bgzf" if path.endswith((".bgz", ".bgzf")) else "gzip" if path.endswith(".gz") else "none"
    with open(path, "wb") as fh:
        if fmt == "none":
            fh.write(data)
        elif fmt == "gzip":
            from isal import igzip

            fh.write(igzip.compress(data, compresslevel=1))
        elif fmt == "bgzf":
            writer = BgzfWriter(fh)
            writer.write(data)
            writer.close()
        else:
            raise ValueError(fmt)


def write_sample(directory: str | os.PathLike, n: int, *, paired: bool = True, fmt: str = "gzip",
                 seed: int = 7, name: str = "sim", **kwargs) -> list[str]:
    """Simulate and write a sample as <name>.fastq[.gz] or <name>_R1/_R2; returns the file paths."""
    names, s1, q1, s2, q2 = simulate_pairs(n, seed=seed, paired=paired, **kwargs)
    # BGZF keeps the .gz suffix, as bgzip writes it: tools decide on decompression by the suffix.
    ext = ".fastq" if fmt == "none" else ".fastq.gz"
    os.makedirs(directory, exist_ok=True)
    if not paired:
        path = os.path.join(directory, f"{name}{ext}")
        write_fastq(path, fastq_bytes(names, s1, q1), fmt)
        return [path]
    paths = [os.path.join(directory, f"{name}_R{m}{ext}") for m in (1, 2)]
    write_fastq(paths[0], fastq_bytes(names, s1, q1, 1), fmt)
    write_fastq(paths[1], fastq_bytes(names, s2, q2, 2), fmt)
    return paths
