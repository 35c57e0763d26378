"""Shared inputs for the Phase 1 tests: small generated samples (plain, gzip, BGZF) and an ART file with a
real Illumina error profile."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess

import pytest

from helixflow.phase1 import simulate
from tests.helpers import require_tool

LAMBDA_GZ = "/usr/share/doc/bowtie2/examples/reference/lambda_virus.fa.gz"


@pytest.fixture(scope="session")
def single_gz(tmp_path_factory):
    return simulate.write_sample(tmp_path_factory.mktemp("se"), 6000, paired=False, fmt="gzip", seed=11)[0]


@pytest.fixture(scope="session")
def pair_bgzf(tmp_path_factory):
    return simulate.write_sample(tmp_path_factory.mktemp("pe"), 4000, paired=True, fmt="bgzf", seed=12,
                                 fragment_mean=220.0, fragment_sd=80.0)


@pytest.fixture(scope="session")
def art_fastq(tmp_path_factory):
    """Single-end 150 bp reads from the lambda phage genome with ART's HiSeq 2500 profile."""
    require_tool(shutil.which("art_illumina") is not None and os.path.exists(LAMBDA_GZ),
                 "art_illumina or the bowtie2 lambda example")
    d = tmp_path_factory.mktemp("art")
    ref = d / "lambda.fa"
    ref.write_bytes(gzip.decompress(open(LAMBDA_GZ, "rb").read()))
    subprocess.run(["art_illumina", "-ss", "HS25", "-i", str(ref), "-l", "150", "-f", "20", "-rs", "5", "-na",
                    "-q", "-o", str(d / "art")], check=True, capture_output=True)
    return str(d / "art.fq")


@pytest.fixture(scope="session")
def run_tool():
    """Runs a peer tool (fastp, cutadapt, multiqc) from PATH or the venv; fails the test when it is missing."""
    return _run_tool


def _run_tool(*args: str, cwd=None) -> subprocess.CompletedProcess:
    tool = args[0]
    exe = shutil.which(tool) or os.path.join(os.path.dirname(os.sys.executable), tool)
    require_tool(os.path.exists(exe), tool)
    return subprocess.run([exe, *args[1:]], check=True, capture_output=True, text=True, cwd=cwd)
