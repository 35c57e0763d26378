"""Phase 1 on Ray through the pipeline vs `helixflow preprocess --threads 2`, side by side on one generated file.

    .venv/bin/python benchmarks/ray_vs_preprocess.py [--reads 2000000] [--chunk-mib 64] [--workdir DIR]

Input: single-end 150 bp simulated reads (``helixflow.phase1.simulate``), gzip. Both runs do the same Phase 1
(auto-detected adapter, Q20 3' trimming, min length 15, embeddings, gzip output).
- preprocess: the engine on the file, two threads, as a user runs it;
- Ray path: the local stack with a real Ray head (token auth on) already up; timed from the upload into the
  bucket to the manifest (SplitIntoChunks re-blocks the gzip into BGZF, the Ray Data job maps the chunks with
  a warm-up per worker, MergeChunks merges, Publish publishes): the wall time a user waits for.
Reported: wall seconds of each, the ratio (goal <= 1.3x), the Ray job's own time and its ratio, the head's start
time and PSS, and where the Ray path's time went (from pipeline_info/trace.tsv).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helixflow.phase1 import simulate
from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.stack import LocalStack

BLOCK_READS = 250_000


def generate(path: Path, reads: int, seed: int = 11) -> int:
    from isal import igzip_threaded

    genome = simulate.random_genome(5_000_000, seed)
    size = 0
    with igzip_threaded.open(path, "wb", compresslevel=2, threads=2) as out:
        for start in range(0, reads, BLOCK_READS):
            n = min(BLOCK_READS, reads - start)
            _, seqs, quals, _, _ = simulate.simulate_pairs(n, 150, seed=seed + start, genome=genome, paired=False)
            text = simulate.fastq_bytes([f"bench{start + i}" for i in range(n)], seqs, quals)
            out.write(text)
            size += len(text)
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=2_000_000)
    parser.add_argument("--chunk-mib", type=int, default=64)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--validation", choices=["auto", "single", "distributed"], default="auto",
                        help="who validates (the run parameter): one Validate pass, or the chunk runners")
    arguments = parser.parse_args()
    work = arguments.workdir or Path(tempfile.mkdtemp(prefix="hf-bench-ray-"))
    work.mkdir(parents=True, exist_ok=True)
    reads = work / "bench.fastq.gz"
    if not reads.exists():
        print(f"generating {arguments.reads:,} reads ...", flush=True)
        generate(reads, arguments.reads)
    gz_mb = reads.stat().st_size / 1e6

    started = time.monotonic()
    subprocess.run([str(Path(sys.executable).parent / "helixflow"), "preprocess", str(reads), "--out",
                    str(work / "preprocess"), "--threads", "2"], check=True, stdout=subprocess.DEVNULL)
    preprocess_s = time.monotonic() - started

    with LocalStack(work / "stack", parameters={"Phase1ChunkMiB": str(arguments.chunk_mib)}, ray=True) as stack:
        head_s, head_mb = stack.ray.start_seconds, stack.ray.pss_bytes() / 2**20
        started = time.monotonic()
        parameters = {"phase1": "ray", "validation": arguments.validation}
        described = wait_for_run(stack.info, submit(stack.info, [reads], parameters), timeout=7200)
        ray_s = time.monotonic() - started
        outcome = collect(stack.info, described, work / "out")
        if not outcome.succeeded:
            sys.exit(f"the Ray run failed: {outcome.error} {outcome.error_document}")
        with open(outcome.local_dir / "pipeline_info/trace.tsv") as trace:
            rows = list(csv.DictReader(trace, delimiter="\t"))

    print(f"\ninput: {arguments.reads:,} reads, {gz_mb:,.0f} MB gzip; chunks of {arguments.chunk_mib} MiB")
    print(f"ray head: started in {head_s:.1f} s, {head_mb:,.0f} MiB PSS")
    print("| path | wall s | vs preprocess --threads 2 |\n|---|---|---|")
    print(f"| helixflow preprocess --threads 2 | {preprocess_s:.1f} | 1.00x |")
    print(f"| pipeline, Phase 1 on Ray (upload -> manifest) | {ray_s:.1f} | {ray_s / preprocess_s:.2f}x |")
    job_s = sum(int(row["duration_ms"] or 0) for row in rows if row["name"] == "Phase1Job") / 1000
    print(f"| the Ray job alone (submitted -> ended: chunks read from and parts written to the local S3) | "
          f"{job_s:.1f} | {job_s / preprocess_s:.2f}x |")
    print("\nwhere the Ray path's time went (trace.tsv):")
    for row in rows:
        print(f"  {row['name']:<18} {int(row['duration_ms'] or 0) / 1000:8.1f} s")
    if not arguments.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("HELIXFLOW_HOME", str(Path(__file__).resolve().parents[1]))
    main()
