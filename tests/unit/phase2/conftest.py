"""Shared Phase 2 test data: lambda phage (a real genome, NCBI NC_001416.1 as shipped in Debian's
bowtie2-examples) grown into a two-contig genome with exact, inverted, diverged and tandem repeats, plus
simulated reads whose true origins are known."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from helixflow.phase2 import simulate

LAMBDA = Path(__file__).parent / "genomes" / "lambda_virus.fa.gz"


@pytest.fixture(scope="session")
def lambda_sequence() -> bytes:
    with gzip.open(LAMBDA, "rb") as handle:
        return b"".join(line.strip() for line in handle if not line.startswith(b">"))


@pytest.fixture(scope="session")
def repeat_genome(lambda_sequence) -> dict[str, bytes]:
    return simulate.genome_with_repeats(lambda_sequence, np.random.default_rng(11))


@pytest.fixture(scope="session")
def repeat_fasta(repeat_genome, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "genome.fa"
    simulate.write_fasta(path, repeat_genome)
    return path


@pytest.fixture(scope="session")
def single_reads(repeat_genome) -> list[simulate.SimulatedRead]:
    return simulate.simulate_reads(repeat_genome, 3000, rng=np.random.default_rng(5))


@pytest.fixture(scope="session")
def paired_reads(repeat_genome) -> list[simulate.SimulatedRead]:
    return simulate.simulate_reads(repeat_genome, 1000, rng=np.random.default_rng(6), paired=True)
