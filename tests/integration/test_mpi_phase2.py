"""The MPI driver (``python -m helixflow.phase2.mpi``) gives byte-identical output with 1 and 2 ranks, on Phase
1-style Parquet input whose row groups split mate pairs, for both searchers and for clustering. Its ``--report``
proves the two-rank run really was one communicator of two ranks that both did work: two independent one-rank
copies started side by side would write the same bytes."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


from helixflow import embedding
from helixflow.phase2 import simulate

ROOT = Path(__file__).resolve().parents[2]
LAMBDA = ROOT / "tests" / "unit" / "phase2" / "genomes" / "lambda_virus.fa.gz"
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("mpi_inputs")
    with gzip.open(LAMBDA, "rb") as handle:
        base = b"".join(line.strip() for line in handle if not line.startswith(b">"))
    genome = simulate.genome_with_repeats(base, np.random.default_rng(11))
    simulate.write_fasta(directory / "genome.fa", genome)
    reads = simulate.simulate_reads(genome, 301, rng=np.random.default_rng(8), paired=True)
    sequences = [r.sequence for r in reads]
    table = pa.table({
        "read_id": [r.name[:-2] for r in reads],
        "mate": pa.array([1, 2] * (len(reads) // 2), pa.int8()),
        "sequence": [s.decode() for s in sequences],
        "quality": [r.quality.decode() for r in reads],
        "embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(embedding.embed(sequences).astype(np.float16).ravel()), embedding.DIMS),
    }, schema=embedding.parquet_schema())
    # 37 rows per group: odd, so some pairs straddle a row-group boundary and the ranks' shares cut groups.
    pq.write_table(table, directory / "S1.parquet", row_group_size=37)
    return directory


def run_driver(ranks: int, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    workdir.mkdir(exist_ok=True)
    # The same relative --out in separate directories, so the @PG command line is the same for both runs.
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, "-m", "helixflow.phase2.mpi", *args],
                          cwd=workdir, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [
    ["align", "{inputs}/S1.parquet", "--reference", "{inputs}/genome.fa", "--out", "S1.sam", "--searcher", "index"],
    ["align", "{inputs}/S1.parquet", "--reference", "{inputs}/genome.fa", "--out", "S1.sam", "--searcher", "dense"],
    ["cluster", "{inputs}/S1.parquet", "--out", "S1.clusters.tsv"],
], ids=["align-index", "align-dense", "cluster"])
def test_two_ranks_write_the_same_bytes_as_one(tmp_path, inputs, command):
    args = [a.format(inputs=inputs) for a in command] + ["--device", "cpu", "--threads", "1", "--report", "report.json"]
    outputs, reports = [], []
    for ranks in (1, 2):
        done = run_driver(ranks, tmp_path / f"n{ranks}", *args)
        assert done.returncode == 0, done.stderr
        outputs.append((tmp_path / f"n{ranks}" / args[args.index("--out") + 1]).read_bytes())
        reports.append(json.loads((tmp_path / f"n{ranks}" / "report.json").read_text()))
    assert outputs[0] == outputs[1]
    lines = outputs[0].decode().splitlines()
    body = [line for line in lines if not line.startswith("@")]
    assert len(body) == 602 + (1 if command[0] == "cluster" else 0)  # every read once (+ TSV header)
    assert reports[0] == {"size": 1, "records": [602]}
    # One communicator of two ranks that split the reads between them, each doing a share.
    assert reports[1]["size"] == 2 and len(reports[1]["records"]) == 2
    assert sum(reports[1]["records"]) == 602 and min(reports[1]["records"]) > 0


def test_a_bad_reference_stops_every_rank_with_the_named_error(tmp_path, inputs):
    bad = tmp_path / "bad.fa"
    bad.write_text("ACGT\n")
    done = run_driver(2, tmp_path / "run", "align", str(inputs / "S1.parquet"), "--reference", str(bad),
                      "--out", "S1.sam", "--device", "cpu")
    assert done.returncode == 2
    assert "InvalidReference: SEQUENCE_BEFORE_HEADER" in done.stderr
