"""Mapping benchmark: helixflow align against bwa mem and minimap2 -ax sr, side by side in one run.

    .venv/bin/python benchmarks/mapping_vs_bwa.py [--reads 200000] [--threads 1 2] [--genome-mb 3] [--repeat 2]
                                                  [--cold]
                                                  [--out benchmarks/out/mapping]

Reference: lambda phage (NC_001416.1, the real genome shipped in tests/unit/phase2/genomes) grown by
``helixflow.phase2.simulate.genome_with_repeats`` into two contigs (~113 kb) with exact and inverted repeat
copies, 1/2/5 %-diverged paralogs, a tandem array and a 10 %-diverged homologous contig. ``--genome-mb N``
first extends the phage with seeded uniform random sequence to N Mb (no real bacterial genome ships with the
project), so the same repeat classes sit in a genome of a few Mb (~1.5 N Mb with the homolog contig); the
index build and the candidate lists then cost what they cost on a bacterial genome.
Reads: ``--reads`` single-end 150 bp reads simulated by ART (``art_illumina -ss HS25``, real HiSeq 2500 error
profiles; true positions from ART's SAM), or by helixflow's own simulator when ART is not installed.
Every tool maps the same FASTQ ``--repeat`` times per thread count (the tools taking turns; the best wall time
is shown). Wall time includes start-up and, for helixflow and "minimap2 -ax sr" (given the FASTA), building the
index in the run; "minimap2 (.mmi)" loads an index built beforehand, and bwa's index (which `bwa mem` cannot
build itself) is built beforehand, its time printed below the table. A tiny helixflow run first fills Numba's
cache, untimed: the warm figure. ``--cold`` adds one helixflow run per searcher on an empty Numba cache
(``NUMBA_CACHE_DIR`` = a new folder, as a fresh install without the warm-up), at 1 thread.
Accuracy: a read counts as placed when its primary record is on the true contig and strand with the leftmost
base (soft clips added back) within 10 bp of the truth, over all reads; precision at MAPQ >= 20 is the placed
fraction among reads reported with MAPQ >= 20.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helixflow.phase2 import simulate

ROOT = Path(__file__).resolve().parents[1]
LAMBDA = ROOT / "tests" / "unit" / "phase2" / "genomes" / "lambda_virus.fa.gz"
TOLERANCE = 10
CONFIDENT_MAPQ = 20


@dataclass(frozen=True)
class Truth:
    contig: str
    position: int  # 0-based leftmost
    reverse: bool


def build_reference(directory: Path, seed: int, genome_mb: float) -> Path:
    with gzip.open(LAMBDA, "rb") as handle:
        base = b"".join(line.strip() for line in handle if not line.startswith(b">"))
    rng = np.random.default_rng(seed)
    extra = int(genome_mb * 1_000_000) - len(base)
    if extra > 0:
        base += np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, extra)].tobytes()
    path = directory / f"genome-{genome_mb:g}mb.fa" if genome_mb else directory / "genome.fa"
    simulate.write_fasta(path, simulate.genome_with_repeats(base, rng))
    return path


def simulate_with_art(reference: Path, directory: Path, n_reads: int, seed: int) -> tuple[Path, dict[str, Truth]]:
    genome_length = sum(len(line.strip()) for line in reference.read_text().splitlines() if not line.startswith(">"))
    fold = 1.1 * n_reads * 150 / genome_length  # ART takes coverage; draw ~10 % extra, then sample exactly n
    prefix = directory / "art"
    subprocess.run(["art_illumina", "-ss", "HS25", "-i", str(reference), "-l", "150", "-f", f"{fold:.3f}",
                    "-o", str(prefix), "-sam", "-na", "-rs", str(seed)], check=True, capture_output=True)
    truth: dict[str, Truth] = {}
    for line in open(f"{prefix}.sam"):
        if line.startswith("@"):
            continue
        fields = line.split("\t", 5)
        truth[fields[0]] = Truth(fields[2], int(fields[3]) - 1, bool(int(fields[1]) & 16))
    with open(f"{prefix}.fq") as handle:
        lines = handle.read().splitlines()
    records = [lines[i:i + 4] for i in range(0, len(lines), 4)]
    chosen = np.sort(np.random.default_rng(seed).choice(len(records), size=min(n_reads, len(records)),
                                                        replace=False))
    reads = directory / "reads.fastq"
    with open(reads, "w") as out:
        for i in chosen.tolist():
            out.write("\n".join(records[i]) + "\n")
    names = {records[i][0][1:].split()[0] for i in chosen.tolist()}
    return reads, {name: truth[name] for name in names}


def simulate_own(reference: Path, directory: Path, n_reads: int, seed: int) -> tuple[Path, dict[str, Truth]]:
    contigs: dict[str, bytes] = {}
    for line in reference.read_bytes().splitlines():
        if line.startswith(b">"):
            name = line[1:].decode()
            contigs[name] = b""
        else:
            contigs[name] += line.strip()
    reads = simulate.simulate_reads(contigs, n_reads, rng=np.random.default_rng(seed))
    path = directory / "reads.fastq"
    simulate.write_fastq(path, reads)
    return path, {r.name: Truth(r.contig, r.position, r.reverse) for r in reads}


def leading_clip(cigar: str) -> int:
    digits = ""
    for ch in cigar:
        if ch.isdigit():
            digits += ch
        else:
            return int(digits) if ch in "SH" else 0
    return 0


def evaluate(sam: Path, truth: dict[str, Truth]) -> tuple[float, float, float]:
    """(fraction placed within TOLERANCE, fraction with MAPQ >= 20, precision at MAPQ >= 20)."""
    placed = confident = confident_placed = 0
    for line in open(sam):
        if line.startswith("@"):
            continue
        fields = line.split("\t", 6)
        flag = int(fields[1])
        if flag & 0x900:  # secondary / supplementary
            continue
        t = truth[fields[0]]
        ok = (not flag & 4 and fields[2] == t.contig and bool(flag & 16) == t.reverse and
              abs(int(fields[3]) - 1 - leading_clip(fields[5]) - t.position) <= TOLERANCE)
        placed += ok
        if int(fields[4]) >= CONFIDENT_MAPQ and not flag & 4:
            confident += 1
            confident_placed += ok
    n = len(truth)
    return placed / n, confident / n, confident_placed / max(confident, 1)


def timed(command: list[str], stdout: Path | None = None, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    if stdout is None:
        subprocess.run(command, check=True, capture_output=True, env=env)
    else:
        with open(stdout, "wb") as out:
            subprocess.run(command, check=True, stdout=out, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def helixflow_command(reads: Path, reference: Path, out: Path, threads: int, searcher: str,
                      device: str = "cpu") -> list[str]:
    return [str(Path(sys.executable).with_name("helixflow")), "align", str(reads), "--reference", str(reference),
            "--out", str(out), "--threads", str(threads), "--device", device, "--searcher", searcher]


def helixflow_mapping_throughput(reads: Path, reference: Path, out: Path, *, device: str = "cuda",
                                 searcher: str = "dense", threads: int = 1) -> float:
    """End-to-end `helixflow align` reads/s (for the GPU benchmark, which can call this with device="cuda")."""
    n = sum(1 for _ in open(reads)) // 4
    return n / timed(helixflow_command(reads, reference, out, threads, searcher, device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=200_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--searchers", nargs="+", default=["index"], choices=["index", "dense"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--genome-mb", type=float, default=0,
                        help="extend the phage with random sequence to this many Mb first (0: the phage alone)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per tool and thread count; the best is shown")
    parser.add_argument("--cold", action="store_true", help="also time helixflow on an empty Numba cache")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "mapping")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.cold and 1 not in args.threads:
        parser.error("--cold runs at 1 thread and is compared with the peers there: include 1 in --threads")
    args.out.mkdir(parents=True, exist_ok=True)

    reference = build_reference(args.out, args.seed, args.genome_mb)
    if shutil.which("art_illumina"):
        reads, truth = simulate_with_art(reference, args.out, args.reads, args.seed)
        simulator = "ART HS25"
    else:
        reads, truth = simulate_own(reference, args.out, args.reads, args.seed)
        simulator = "helixflow simulator (ART not installed)"
    bwa_index_s = timed(["bwa", "index", str(reference)])
    subprocess.run(["minimap2", "-x", "sr", "-d", f"{reference}.mmi", str(reference)], check=True, capture_output=True)
    warm_up = args.out / "warmup.fastq"
    warm_up.write_text("".join(open(reads).readlines()[:400]))
    for searcher in args.searchers:
        timed(helixflow_command(warm_up, reference, args.out / "warmup.sam", 1, searcher))

    rows = []
    if args.cold:
        for searcher in args.searchers:
            cache = args.out / f"numba-cold-{searcher}"
            shutil.rmtree(cache, ignore_errors=True)
            sam_path = args.out / f"helixflow-{searcher}-cold.sam"
            seconds = timed(helixflow_command(reads, reference, sam_path, 1, searcher),
                            env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})
            rows.append((f"helixflow ({searcher}) cold", 1, seconds, len(truth) / seconds, *evaluate(sam_path, truth)))
    for threads in args.threads:
        tools = {f"helixflow ({s})": (helixflow_command(reads, reference, args.out / f"helixflow-{s}-{threads}.sam",
                                                        threads, s), args.out / f"helixflow-{s}-{threads}.sam", None)
                 for s in args.searchers}
        tools["bwa mem"] = (["bwa", "mem", "-t", str(threads), str(reference), str(reads)], None,
                            args.out / f"bwa-{threads}.sam")
        tools["minimap2 -ax sr"] = (["minimap2", "-ax", "sr", "-t", str(threads), str(reference), str(reads)],
                                    None, args.out / f"minimap2-{threads}.sam")
        tools["minimap2 (.mmi)"] = (["minimap2", "-ax", "sr", "-t", str(threads), f"{reference}.mmi", str(reads)],
                                    None, args.out / f"minimap2-mmi-{threads}.sam")
        # Best of --repeat, the tools taking turns, so a slow spell of a shared machine does not fall on one tool.
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, (command, _, captured) in tools.items():
                best[name] = min(best.get(name, float("inf")), timed(command, captured))
        for name, (command, written, captured) in tools.items():
            seconds = best[name]
            placed, confident, precision = evaluate(written or captured, truth)
            rows.append((name, threads, seconds, len(truth) / seconds, placed, confident, precision))

    print(f"\n{len(truth)} reads x 150 bp ({simulator}) on a {reference.stat().st_size // 1000} kB genome with "
          f"repeats; placed = within {TOLERANCE} bp of truth; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores\n")
    header = (f"{'tool':<24}{'thr':>4}{'wall s':>9}{'reads/s':>10}{'reads/s/core':>13}{'placed':>8}"
              f"{'MAPQ>=20':>9}{'prec@20':>9}{'speed/bwa':>10}{'speed/mm2':>10}{'placed-bwa':>11}")
    print(header)
    print("-" * len(header))
    bwa = {r[1]: r for r in rows if r[0] == "bwa mem"}
    minimap2 = {r[1]: r for r in rows if r[0] == "minimap2 -ax sr"}
    for name, threads, seconds, rate, placed, confident, precision in rows:
        ref, mm2 = bwa[threads], minimap2[threads]
        print(f"{name:<24}{threads:>4}{seconds:>9.2f}{rate:>10.0f}{rate / threads:>13.0f}{placed:>8.4f}"
              f"{confident:>9.4f}{precision:>9.4f}{rate / ref[3]:>9.2f}x{rate / mm2[3]:>9.2f}x"
              f"{placed - ref[4]:>+11.4f}")
    print(f"\nbwa index (built before, untimed above): {bwa_index_s:.2f} s. speed/mm2 is against minimap2 given "
          "the FASTA, which builds its index in the run as helixflow does; minimap2 (.mmi) loads one built before.")


if __name__ == "__main__":
    main()
