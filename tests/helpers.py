"""Helpers the tests share (fixtures stay in conftest.py): saved events, handlers loaded from their folders,
execution states, the rule that a missing peer tool fails a test, and comparing a pipeline's Phase 1 outputs with
`helixflow preprocess` on the same input (Lambda and Ray paths)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "tests" / "events"


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def load_handler(function_dir: str, module: str = "app"):
    """Import functions/<function_dir>/<module>.py as a fresh module (module-level clients bind to the current
    environment, e.g. moto's mock)."""
    path = ROOT / "functions" / function_dir / f"{module}.py"
    name = f"handler_{function_dir}_{module}"
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def pipeline_state(run_id: str = "run-1", **slots: Any) -> dict[str, Any]:
    """An execution state as the state machine hands it to a Task: Initialize's fields plus the given slots."""
    return {"run_id": run_id, "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:p:{run_id}",
            "event": load_event("eventbridge_object_created.json"), **slots}


def poll_until(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    """``check()``'s first truthy value, polled until ``timeout`` seconds; TimeoutError names ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def require_tool(available: bool, what: str) -> None:
    """Peer tools are part of the test setup (`make test` installs them): a missing one fails the test rather
    than letting it pass unexamined."""
    if not available:
        pytest.fail(f"{what} is not installed; `make install` provides it")


def relative_files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def same_outputs(pipeline_dir: Path, local_dir: Path, relative_paths: list[str]) -> None:
    """Reads equal after decompression (gzip members differ in how they are cut), tables and JSON equal."""
    for relative in relative_paths:
        got, want = (pipeline_dir / relative).read_bytes(), (local_dir / relative).read_bytes()
        if relative.endswith(".gz"):
            assert gzip.decompress(got) == gzip.decompress(want), relative
        elif relative.endswith(".parquet"):
            assert pq.read_table(pipeline_dir / relative).equals(pq.read_table(local_dir / relative)), relative
        elif relative.endswith(".json"):
            got_doc, want_doc = json.loads(got), json.loads(want)
            # fastp records the command line, which names the inputs (S3 keys vs local paths).
            got_doc.pop("command", None), want_doc.pop("command", None)
            assert got_doc == want_doc, relative


def write_phase2_inputs(directory: Path, fragments: int) -> Path:
    """A repeat genome built from the lambda phage (genome.fa) and what Phase 1 leaves for ``fragments`` simulated
    pairs, in its results layout: embeddings/S1.parquet (37 rows per group: odd, so pairs straddle row groups
    and ranks' shares cut groups) and the trimmed reads/S1_R1|_R2.trimmed.fastq.gz its rows stand for, as the
    MPI driver and the Phase 2 job read them."""
    import gzip

    import numpy as np
    import pyarrow as pa

    from helixflow import embedding
    from helixflow.phase2 import simulate
    from helixflow.seq.packing import pack

    lambda_genome = ROOT / "tests" / "unit" / "phase2" / "genomes" / "lambda_virus.fa.gz"
    with gzip.open(lambda_genome, "rb") as handle:
        base = b"".join(line.strip() for line in handle if not line.startswith(b">"))
    genome = simulate.genome_with_repeats(base, np.random.default_rng(11))
    simulate.write_fasta(directory / "genome.fa", genome)
    reads = simulate.simulate_reads(genome, fragments, rng=np.random.default_rng(8), paired=True)
    table = pa.table({
        "read_id": [r.name[:-2] for r in reads],
        "mate": pa.array([1, 2] * (len(reads) // 2), pa.int8()),
        "embedding": embedding.codes_column(embedding.embed_codes_packed(*pack([r.sequence for r in reads]))[0]),
    }, schema=embedding.parquet_schema())
    (directory / "embeddings").mkdir()
    pq.write_table(table, directory / "embeddings" / "S1.parquet", row_group_size=37)
    (directory / "reads").mkdir()
    for mate in (1, 2):
        records = b"".join(b"@%s\n%s\n+\n%s\n" % (r.name.encode(), r.sequence, r.quality) for r in reads[mate - 1::2])
        (directory / "reads" / f"S1_R{mate}.trimmed.fastq.gz").write_bytes(gzip.compress(records))
    return directory
