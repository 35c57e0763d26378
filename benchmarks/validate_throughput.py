"""Throughput and peak memory of the streaming FASTQ validator (a benchmark, not a test).

    .venv/bin/python benchmarks/validate_throughput.py                 # ~200 MB of FASTQ, gzip level 1
    .venv/bin/python benchmarks/validate_throughput.py --size-mb 4000  # ~1 GB gzipped
    .venv/bin/python benchmarks/validate_throughput.py --input reads.fastq.gz

Generates 150 bp Illumina-like records (random bases, binned qualities) unless --input is given, then
validates the file twice in a fresh subprocess each: the plain ``validate_fastq`` call and, for reference,
just decompressing it, and prints MB/s of decompressed FASTQ and the peak RSS. A generated file is deleted
afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from isal import igzip

_MEASURE = r"""
import json, resource, sys, time
from helixflow.fastq.validator import validate_fastq
from helixflow.fastq.streams import DecompressedStream
path, mode = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if mode == "validate":
    report = validate_fastq(path)
    size = report.files[0].decompressed_bytes
else:
    with open(path, "rb") as handle:
        size = sum(len(chunk) for chunk in DecompressedStream(handle, name=path))
seconds = time.perf_counter() - start
print(json.dumps({"bytes": size, "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def generate(path: Path, size_mb: int, seed: int = 1) -> None:
    """Write about size_mb MB of FASTQ, gzip level 1, in 10,000-record blocks built with numpy."""
    rng = np.random.default_rng(seed)
    read_length, block = 150, 10_000
    bases = np.frombuffer(b"ACGT", np.uint8)
    qualities = np.frombuffer(b"#,:F", np.uint8)
    written, number = 0, 0
    with igzip.open(path, "wb", compresslevel=1) as out:
        while written < size_mb * 1_000_000:
            seqs = bases[rng.integers(0, 4, (block, read_length))]
            quals = qualities[rng.choice(4, (block, read_length), p=[0.02, 0.08, 0.2, 0.7])]
            lines = []
            for i in range(block):
                number += 1
                lines.append(b"@SIM:1:FCX:1:1:%d:%d 1:N:0:ACGT\n%s\n+\n%s\n"
                             % (number, number * 7, seqs[i].tobytes(), quals[i].tobytes()))
            data = b"".join(lines)
            out.write(data)
            written += len(data)


def measure(path: Path, mode: str) -> dict:
    result = subprocess.run([sys.executable, "-c", _MEASURE, str(path), mode], check=True, capture_output=True,
                            text=True)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, help="an existing FASTQ(.gz) file to validate")
    parser.add_argument("--size-mb", type=int, default=200, help="decompressed size of the generated file")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    args = parser.parse_args()

    if args.input:
        path = args.input
    else:
        path = Path(tempfile.mkdtemp()) / "bench.fastq.gz"
        started = time.perf_counter()
        generate(path, args.size_mb)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB gz) in {time.perf_counter() - started:.0f} s")
    try:
        for mode in ("decompress-only", "validate"):
            m = measure(path, mode)
            print(f"{mode:16s} {m['bytes'] / 1e6:8.0f} MB decompressed  {m['seconds']:6.2f} s  "
                  f"{m['bytes'] / 1e6 / m['seconds']:6.0f} MB/s  peak RSS {m['peak_rss_mb']:.0f} MB")
    finally:
        if not args.input and not args.keep:
            os.unlink(path)
            os.rmdir(path.parent)


if __name__ == "__main__":
    main()
