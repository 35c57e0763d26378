"""The GPU paths of Phase 2 against their CPU twins, under numba's CUDA simulator.

Run as a script by ``tests/unit/phase2/test_dense.py`` in its own process (NUMBA_ENABLE_CUDASIM must be set
before numba is first imported). Prints one JSON object, one entry per case, each saying what the GPU path
produced and whether it equals the CPU's:

- ``top_k_*``: ``dense_cuda.top_k_cuda`` vs ``dense_cpu.top_k_cpu`` on exact ties (duplicated target rows, a zero
  query that ties with every target), ties split across window blocks, and k larger than the number of targets
  (the empty slots must come back as the CPU's -inf / int64 max);
- ``score_batch_multi_launch``: ``sw.score_batch(device="cuda")`` on 300 bp targets with a workspace small enough
  to force several kernel launches;
- ``auto_device``: which device ``device="auto"`` resolved to (the simulator counts as a GPU);
- ``align_dense`` / ``cluster``: ``helixflow align --searcher dense`` and ``helixflow cluster`` with ``--device
  cuda`` against ``--device cpu`` on a small genome, byte for byte.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from helixflow.seq.packing import pack  # noqa: E402
from helixflow.phase2 import _dense_common, dense, dense_cpu, dense_cuda, engine, simulate, sw, sw_cuda  # noqa: E402
from helixflow_local.commands.phase2 import align_command, cluster_command  # noqa: E402

LAMBDA = Path(__file__).resolve().parents[1] / "genomes" / "lambda_virus.fa.gz"


def random_codes(rng, n, dims=256):
    return np.clip(np.rint(rng.standard_normal((n, dims)) * 1.5), -127, 127).astype(np.int8)


def compare_top_k(queries, targets, k):
    queries, targets = dense.search_vectors(queries), dense.search_vectors(targets)
    gpu_values, gpu_indices = dense_cuda.top_k_cuda(queries, targets, k)
    cpu_values, cpu_indices = dense_cpu.top_k_cpu(queries, targets, k)
    return {"indices_equal": bool((gpu_indices == cpu_indices).all()),
            "values_equal": bool((gpu_values == cpu_values).all()),
            "gpu_indices": gpu_indices.tolist(), "cpu_indices": cpu_indices.tolist()}


def top_k_cases(report):
    rng = np.random.default_rng(4)
    # Sizes are not multiples of TILE (the bounds guards) and small: the simulator runs every thread of a
    # TILE x TILE block in Python, ~2-5 s per block here.
    targets = random_codes(rng, 21)
    # Exact ties: row 3 appears five more times, in both window blocks (BLOCK_WINDOWS = 11 below).
    for copy in (5, 6, 12, 17, 20):
        targets[copy] = targets[3]
    queries = random_codes(rng, 6)
    queries[0] = targets[3]        # ties with six targets, more than k
    queries[1] = 0                 # a read without k-mers: every similarity is 0, all tie
    queries[4] = targets[20]       # the last copy, in the second read block: the lower indices must still win
    names = ("BLOCK_READS", "BLOCK_WINDOWS", "DEVICE_BLOCK_READS", "DEVICE_BLOCK_WINDOWS")
    saved = [getattr(_dense_common, name) for name in names]
    for name, size in zip(names, (4, 11, 4, 11)):   # two read blocks x two window blocks on both twins
        setattr(_dense_common, name, size)
    try:
        report["top_k_ties"] = compare_top_k(queries, targets, 4)
    finally:
        for name, size in zip(names, saved):
            setattr(_dense_common, name, size)
    # k larger than the number of targets: 5 targets (two equal), k = 8.
    report["top_k_k_exceeds_targets"] = compare_top_k(queries[:4], targets[[3, 5, 9, 10, 11]], 8)


def score_batch_case(report):
    rng = np.random.default_rng(8)
    targets, queries = [], []
    for i in range(8):
        target = rng.choice(np.frombuffer(b"ACGTN", np.uint8), 300, p=[0.24] * 4 + [0.04]).tobytes()
        start = int(rng.integers(0, 250))
        query = bytearray(target[start:start + int(rng.integers(20, 48))])
        if i % 2:  # a substitution and an insertion: gapped best alignments
            query[3] = ord("A") if query[3] != ord("A") else ord("C")
            query[10:10] = b"GT"
        targets.append(target)
        queries.append(bytes(query))
    qbuf, qoff = pack(queries)
    tbuf, toff = pack(targets)
    saved = sw_cuda.WORKSPACE_BYTES
    launches = []
    kernel = sw_cuda._sw_kernel

    class Counting:
        def __getitem__(self, config):
            launches.append(config)
            return kernel[config]

    # Two int32 per target column per pair: room for 3 pairs of 300 columns per launch -> 3 launches.
    sw_cuda.WORKSPACE_BYTES = 8 * 300 * 3
    sw_cuda._sw_kernel = Counting()
    try:
        gpu = sw.score_batch(qbuf, qoff, tbuf, toff, device="cuda")
    finally:
        sw_cuda.WORKSPACE_BYTES = saved
        sw_cuda._sw_kernel = kernel
    cpu = sw.score_batch(qbuf, qoff, tbuf, toff, device="cpu")
    report["score_batch_multi_launch"] = {
        "launches": len(launches), "pairs": len(queries), "target_length": 300,
        "equal": all(bool((g == c).all()) for g, c in zip(gpu, cpu)),
        "positive": int((cpu[0] > 0).sum())}


def auto_device_case(report):
    calls = []
    original = sw_cuda.score_batch_cuda

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    qbuf, qoff = pack([b"ACGTACGTAC"])
    sw_cuda.score_batch_cuda = counting
    try:
        sw.score_batch(qbuf, qoff, qbuf, qoff, device="auto")
    finally:
        sw_cuda.score_batch_cuda = original
    report["auto_device"] = {"resolved": engine.resolve_device("auto"), "score_batch_used_cuda": len(calls) == 1}


def cli_cases(report):
    with gzip.open(LAMBDA, "rb") as handle:
        lambda_seq = b"".join(line.strip() for line in handle if not line.startswith(b">"))
    # 1.5 kb (9 windows) and 4 reads of 60 bp: one similarity block each for align and cluster.
    genome = {"chrS": lambda_seq[10_000:11_500]}
    reads = simulate.simulate_reads(genome, 2, length=60, rng=np.random.default_rng(3), paired=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reference = tmp / "ref.fa"
        simulate.write_fasta(reference, genome)
        r1, r2 = tmp / "S1_R1.fastq", tmp / "S1_R2.fastq"
        simulate.write_fastq(r1, reads[0::2])
        simulate.write_fastq(r2, reads[1::2])
        outputs = {}
        for device in ("cpu", "cuda"):
            sam = tmp / f"{device}.sam"
            done = CliRunner().invoke(align_command, [str(r1), str(r2), "--reference", str(reference), "--out",
                                                      str(sam), "--searcher", "dense", "--device", device])
            assert done.exit_code == 0, done.output
            tsv = tmp / f"{device}.tsv"
            done = CliRunner().invoke(cluster_command, [str(r1), str(r2), "--out", str(tsv), "--device", device])
            assert done.exit_code == 0, done.output
            # The @PG line carries the command line, which names the device: compare the records.
            outputs[device] = ([line for line in sam.read_text().splitlines() if not line.startswith("@PG")],
                               tsv.read_text())
        body = [line for line in outputs["cpu"][0] if not line.startswith("@")]
        report["align_dense"] = {"equal": outputs["cpu"][0] == outputs["cuda"][0], "records": len(body),
                                 "mapped": sum(not int(line.split("\t")[1]) & 4 for line in body)}
        report["cluster"] = {"equal": outputs["cpu"][1] == outputs["cuda"][1],
                             "rows": len(outputs["cpu"][1].splitlines()) - 1}


def main() -> int:
    report = {}
    top_k_cases(report)
    score_batch_case(report)
    auto_device_case(report)
    cli_cases(report)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
