"""The whole pipeline with a reference (drop -> BAM on the local stack with a real Slurm) against bwa mem on the
same read pairs, side by side in one run.

    .venv/bin/python benchmarks/pipeline_vs_bwa.py [--pairs 100000] [--genome-mb 4] [--workdir DIR]

Genome: ``--genome-mb`` of random sequence (helixflow.phase1.simulate.random_genome) grown by
``helixflow.phase2.simulate.genome_with_repeats`` (exact and inverted repeats, 1/2/5 %-diverged paralogs, a
tandem array, a 10 %-diverged homologous contig) - a bacterial-sized genome with the repeats that make mapping
hard; no real genome of that size can be downloaded here. Reads: ART HS25 paired 2 x 150 bp, fragment 300 +- 30.
- pipeline: `helixflow run R1 R2 --reference genome.fa` as a user runs it, on a stack already up (its start
  is reported apart): upload -> Validate (+ the reference check) -> Phase 1 on Lambda -> PlanPhase2 -> the
  Slurm job (MPI ranks: cluster + align + sorted, indexed BAM) -> Publish. Timed from the upload to the
  manifest, and the Slurm job's own run time from trace.tsv. Run twice: the second run of the same reference
  reads the cached minimizer index (cold = index built, warm = cached).
- bwa: `bwa index` + `bwa mem -t 2` on the same FASTQ pairs, then `samtools sort` + `index` (the same product:
  a sorted indexed BAM).
Accuracy: a read counts as placed when its primary record is on the true contig and strand with the leftmost
base (soft clips added back) within 10 bp of ART's truth (the placement rule of benchmarks/mapping_vs_bwa.py).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mapping_vs_bwa import TOLERANCE, leading_clip  # noqa: E402  (one home for the placement rule)

from helixflow.phase1 import simulate as reads_sim  # noqa: E402
from helixflow.phase2 import simulate  # noqa: E402
from helixflow_local.client import collect, submit, wait_for_run  # noqa: E402
from helixflow_local.stack import LocalStack  # noqa: E402


def build_genome(path: Path, megabases: float, seed: int) -> int:
    base = reads_sim.random_genome(int(megabases * 1e6 / 2.3), seed)  # genome_with_repeats grows it ~2.3x
    contigs = simulate.genome_with_repeats(base, np.random.default_rng(seed))
    simulate.write_fasta(path, contigs)
    return sum(len(s) for s in contigs.values())


def simulate_pairs(reference: Path, genome_bp: int, directory: Path, pairs: int, seed: int):
    prefix = directory / "art"
    fold = 1.02 * pairs * 300 / genome_bp
    subprocess.run(["art_illumina", "-ss", "HS25", "-p", "-l", "150", "-m", "300", "-s", "30", "-f", f"{fold:.4f}",
                    "-i", str(reference), "-o", str(prefix), "-sam", "-na", "-rs", str(seed)],
                   check=True, capture_output=True)
    truth = {}
    for line in open(f"{prefix}.sam"):
        if not line.startswith("@"):
            fields = line.split("\t", 5)
            flag = int(fields[1])
            truth[(fields[0], 1 if flag & 0x40 else 2)] = (fields[2], int(fields[3]) - 1, bool(flag & 16))
    r1, r2 = directory / "bench_R1.fastq", directory / "bench_R2.fastq"
    shutil.move(f"{prefix}1.fq", r1)
    shutil.move(f"{prefix}2.fq", r2)
    return r1, r2, truth


def placed_fraction(bam: Path, truth: dict) -> float:
    view = subprocess.run(["samtools", "view", "-F", "0x900", str(bam)], check=True, capture_output=True, text=True)
    placed = 0
    for line in view.stdout.splitlines():
        fields = line.split("\t", 6)
        flag = int(fields[1])
        name = fields[0].removesuffix("/1").removesuffix("/2")
        contig, position, reverse = truth[(name, 1 if flag & 0x40 else 2)]
        placed += (not flag & 4 and fields[2] == contig and bool(flag & 16) == reverse
                   and abs(int(fields[3]) - 1 - leading_clip(fields[5]) - position) <= TOLERANCE)
    return placed / len(truth)


def run_bwa(reference: Path, r1: Path, r2: Path, out: Path) -> float:
    started = time.monotonic()
    subprocess.run(["bwa", "index", str(reference)], check=True, capture_output=True)
    with open(out.with_suffix(".sam"), "wb") as sam:
        subprocess.run(["bwa", "mem", "-t", "2", str(reference), str(r1), str(r2)], check=True, stdout=sam,
                       stderr=subprocess.DEVNULL)
    subprocess.run(["samtools", "sort", "-@", "2", "-o", str(out), str(out.with_suffix(".sam"))], check=True,
                   capture_output=True)
    subprocess.run(["samtools", "index", str(out)], check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--genome-mb", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--workdir", type=Path)
    arguments = parser.parse_args()
    work = arguments.workdir or Path(tempfile.mkdtemp(prefix="hf-bench-p2-"))
    work.mkdir(parents=True, exist_ok=True)
    reference = work / "genome.fa"
    genome_bp = build_genome(reference, arguments.genome_mb, arguments.seed)
    r1, r2, truth = simulate_pairs(reference, genome_bp, work, arguments.pairs, arguments.seed)
    pairs = len(truth) // 2
    print(f"{pairs:,} ART pairs on a {genome_bp / 1e6:.2f} Mb genome with repeats", flush=True)

    bwa_bam = work / "bwa.bam"
    bwa_s = run_bwa(reference, r1, r2, bwa_bam)
    rows = [("bwa index + mem -t 2 + sort/index", bwa_s, None, placed_fraction(bwa_bam, truth))]

    started = time.monotonic()
    with LocalStack(work / "stack", slurm=True) as stack:
        up_s = time.monotonic() - started
        for label, name in (("pipeline, reference index built", "cold"), ("pipeline, index cached", "warm")):
            sample = [work / name / f"{name}_R1.fastq", work / name / f"{name}_R2.fastq"]
            sample[0].parent.mkdir(exist_ok=True)
            shutil.copy(r1, sample[0])
            shutil.copy(r2, sample[1])
            started = time.monotonic()
            described = wait_for_run(stack.info, submit(stack.info, sample, {"phase2": "slurm-cpu"},
                                                        reference=reference), timeout=3600)
            drop_s = time.monotonic() - started
            outcome = collect(stack.info, described, work / name / "out")
            if not outcome.succeeded:
                sys.exit(f"the {name} run failed: {outcome.error} {outcome.error_document}")
            with open(outcome.local_dir / "pipeline_info/trace.tsv") as handle:
                trace = {row["name"]: row for row in csv.DictReader(handle, delimiter="\t")}
            job_s = float(trace["Phase2Job"]["duration_ms"]) / 1000
            bam = outcome.local_dir / "alignments" / f"{name}.bam"
            subprocess.run(["samtools", "quickcheck", str(bam)], check=True)
            rows.append((label, drop_s, job_s, placed_fraction(bam, truth)))

    print(f"\nlocal stack with Slurm up in {up_s:.1f} s (not counted below)\n")
    header = f"{'run':<36}{'wall s':>9}{'slurm job s':>13}{'placed':>9}{'placed-bwa':>12}{'time/bwa':>10}"
    print(header)
    print("-" * len(header))
    for label, seconds, job_s, placed in rows:
        print(f"{label:<36}{seconds:>9.1f}{'' if job_s is None else f'{job_s:.1f}':>13}{placed:>9.4f}"
              f"{placed - rows[0][3]:>+12.4f}{seconds / rows[0][1]:>9.2f}x")
    print(f"\nplaced = primary record within {TOLERANCE} bp of ART's origin, over all {len(truth):,} reads")


if __name__ == "__main__":
    main()
