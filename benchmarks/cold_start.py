"""Cold start: the first `preprocess`, `align` and `cluster` on a fresh install, without and with the install's
warm-up (helixflow.warmup), against the warm run - each command in a fresh interpreter.

    .venv/bin/python benchmarks/cold_start.py [--pairs 20000] [--workdir DIR]

- no warm-up: an empty Numba cache (``NUMBA_CACHE_DIR`` = a new folder), as a fresh venv without
  ``make install``'s warm-up step, a Lambda cold start without the image's seed, or a fresh cluster node;
- after warm-up: a new empty cache filled by ``python -m helixflow.warmup`` only (its own time is reported);
- warm: the same cache after the command ran once.
Input: simulated 2 x 150 bp pairs from a 1 Mb random genome (the same reads for every command). Goal (#12): the
first run after the warm-up <= 1.5x the warm run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helixflow.phase1.simulate import random_genome, write_sample
from helixflow.phase2.simulate import write_fasta

HELIXFLOW = str(Path(sys.executable).with_name("helixflow"))


def timed(command: list[str], cache: Path) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path)
    arguments = parser.parse_args()
    work = arguments.workdir or Path(tempfile.mkdtemp(prefix="hf-bench-cold-"))
    work.mkdir(parents=True, exist_ok=True)
    genome = random_genome(1_000_000, 2)
    write_fasta(work / "ref.fa", {"chr": genome})
    r1, r2 = write_sample(work / "in", arguments.pairs, paired=True, fmt="gzip", name="cold", genome=genome)
    parquet = work / "pre" / "embeddings" / "cold.parquet"
    commands = {
        "preprocess": [HELIXFLOW, "preprocess", r1, r2, "--out", str(work / "pre"), "--threads", "1"],
        "align": [HELIXFLOW, "align", str(parquet), "--reference", str(work / "ref.fa"), "--out",
                  str(work / "a.sam"), "--threads", "1", "--device", "cpu"],
        "cluster": [HELIXFLOW, "cluster", str(parquet), "--out", str(work / "c.tsv"), "--threads", "1",
                    "--device", "cpu"],
    }
    warmed = work / "cache-warmed"
    cold = {name: timed(command, work / f"cache-empty-{name}") for name, command in commands.items()}
    warm_up_s = timed([sys.executable, "-m", "helixflow.warmup"], warmed)
    first = {name: timed(command, warmed) for name, command in commands.items()}
    warm = {name: timed(command, warmed) for name, command in commands.items()}

    print(f"\n{arguments.pairs:,} pairs, 1 Mb genome, 1 thread; python -m helixflow.warmup took {warm_up_s:.1f} s\n")
    header = f"{'command':<12}{'no warm-up s':>14}{'after warm-up s':>17}{'warm s':>9}{'first/warm':>12}{'cold/warm':>11}"
    print(header)
    print("-" * len(header))
    for name in commands:
        print(f"{name:<12}{cold[name]:>14.1f}{first[name]:>17.1f}{warm[name]:>9.1f}{first[name] / warm[name]:>11.2f}x"
              f"{cold[name] / warm[name]:>10.2f}x")


if __name__ == "__main__":
    main()
