"""The MPI driver (``python -m helixflow.phase2.mpi``) gives byte-identical output with 1 and 2 ranks, on Phase
1-style Parquet input whose row groups split mate pairs, for both searchers and for clustering. Its ``--report``
proves the two-rank run really was one communicator of two ranks that both did work: two independent one-rank
copies started side by side would write the same bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_phase2_inputs



ROOT = Path(__file__).resolve().parents[2]
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return write_phase2_inputs(tmp_path_factory.mktemp("mpi_inputs"), 301)


def run_driver(ranks: int, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    workdir.mkdir(exist_ok=True)
    # The same relative --out in separate directories, so the @PG command line is the same for both runs.
    return subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, "-m", "helixflow.phase2.mpi", *args],
                          cwd=workdir, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [
    ["align", "{inputs}/embeddings/S1.parquet", "--reference", "{inputs}/genome.fa", "--out", "S1.sam", "--searcher", "index"],
    ["align", "{inputs}/embeddings/S1.parquet", "--reference", "{inputs}/genome.fa", "--out", "S1.sam", "--searcher", "dense"],
    ["cluster", "{inputs}/embeddings/S1.parquet", "--out", "S1.clusters.tsv"],
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
    done = run_driver(2, tmp_path / "run", "align", str(inputs / "embeddings" / "S1.parquet"), "--reference", str(bad),
                      "--out", "S1.sam", "--device", "cpu")
    assert done.returncode == 2
    assert "InvalidReference: SEQUENCE_BEFORE_HEADER" in done.stderr
