"""Phase 1 on the Lambda path (Plan -> SplitIntoChunks -> Distributed Map -> MergeChunks) inside the real
state machine gives the same outputs as `helixflow preprocess` on the same input."""

from __future__ import annotations

import json

import pytest
import yaml
from isal import igzip

from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.runtime import KILL_WORKER
from helixflow_local.stack import LocalStack
from helixflow.errors import InvalidFastq
from helixflow.fastq.chunked import CutFinder, grid_records, plan_cuts
from helixflow.fastq.validator import validate_fastq
from helixflow.phase1.engine import process_file
from helixflow.phase1.simulate import write_sample
from helixflow.pipeline.phase1_lambda import engine_params
from helixflow.pipeline.params import RunParameters
from tests.helpers import relative_files, same_outputs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # 1 MiB chunks, so a few MB of reads take several Distributed Map items.
    with LocalStack(tmp_path_factory.mktemp("stack"), parameters={"Phase1ChunkMiB": "1"}) as running:
        yield running


@pytest.mark.parametrize(("paired", "fmt"), [(True, "gzip"), (False, "bgzf"),
                                             pytest.param(False, "none", marks=pytest.mark.extended)])
def test_lambda_path_equals_preprocess_on_the_same_input(stack, tmp_path, paired, fmt):
    sample = f"sim{'pe' if paired else 'se'}{fmt}"
    paths = write_sample(tmp_path / "in", 9000, paired=paired, fmt=fmt, fragment_mean=180.0)
    suffix = ".fastq" if fmt == "none" else ".fastq.gz"
    reads = []
    for mate, path in enumerate(paths, start=1):
        target = tmp_path / (f"{sample}_R{mate}{suffix}" if paired else f"{sample}{suffix}")
        target.write_bytes(open(path, "rb").read())
        reads.append(target)
    described = wait_for_run(stack.info, submit(stack.info, reads), timeout=300)
    outcome = collect(stack.info, described, tmp_path / "out")
    assert outcome.succeeded, outcome.error_document
    stages = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())["stages"]
    assert stages["phase1"]["chunks"] >= 3
    # Phase 1 reports the environment its chunks ran in (the Phase 1 image's engines), Publish its own.
    versions = yaml.safe_load((outcome.local_dir / "pipeline_info/software_versions.yml").read_text())
    assert {"numba", "pyarrow", "numpy", "isal"} <= versions["Phase1"].keys()
    assert list(versions) == ["Validate", "Phase1", "BuildReport", "Publish"]
    local = tmp_path / "local"
    process_file(str(reads[0]), str(reads[1]) if paired else None, str(local), sample,
                 engine_params(RunParameters().model_dump()))
    expected = relative_files(local)
    listed = {entry["path"] for entry in outcome.manifest["files"]}
    assert set(expected) <= listed
    same_outputs(outcome.local_dir, local, [p for p in expected if not p.endswith(".html")])
    # Nothing is left in the scratch prefix once the run is merged.
    leftovers = stack.client("s3").list_objects_v2(Bucket=stack.info.bucket, Prefix=f"work/{sample}/")
    assert leftovers.get("KeyCount", 0) == 0


# ------------------------------------------------------------------------------ distributed validation
# The plan parameter forces the distributed path on small files: no single Validate, the chunk runners validate
# their records (and transform them in the same pass), ValidateChunks reports, MergeChunks merges.

def _write_reads(tmp_path, sample, paths, paired, suffix):
    reads = []
    for mate, path in enumerate(paths, start=1):
        target = tmp_path / (f"{sample}_R{mate}{suffix}" if paired else f"{sample}{suffix}")
        target.write_bytes(open(path, "rb").read())
        reads.append(target)
    return reads


def _entered(stack, outcome):
    sfn = stack.client("stepfunctions")
    return [e["stateEnteredEventDetails"]["name"] for page in
            sfn.get_paginator("get_execution_history").paginate(executionArn=outcome.execution_arn)
            for e in page["events"] if "stateEnteredEventDetails" in e]


@pytest.mark.parametrize(("paired", "fmt"), [(True, "gzip"), pytest.param(False, "bgzf", marks=pytest.mark.extended)])
def test_distributed_validation_gives_the_single_paths_outputs_and_report(stack, tmp_path, paired, fmt):
    sample = f"dist{'pe' if paired else 'se'}{fmt}"
    paths = write_sample(tmp_path / "in", 9000, paired=paired, fmt=fmt, fragment_mean=180.0)
    reads = _write_reads(tmp_path, sample, paths, paired, ".fastq.gz")
    described = wait_for_run(stack.info, submit(stack.info, reads, {"validation": "distributed"}), timeout=300)
    outcome = collect(stack.info, described, tmp_path / "out")
    assert outcome.succeeded, outcome.error_document
    entered = _entered(stack, outcome)
    assert "Validate" not in entered and entered.index("ValidateChunks") < entered.index("MergeChunks")
    # One pass per mate, each its own invocation, then the join: ScanMate once per input, before the Split.
    assert entered.count("ScanMate") == (2 if paired else 1)
    assert entered.index("ScanMates") < entered.index("ScanMate") < entered.index("SplitIntoChunks")
    stages = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())["stages"]
    assert stages["plan"]["phase1"]["validation"] == "distributed" and stages["phase1"]["chunks"] >= 3
    # The chunks' combined report is the single validator's, file facts included (sha256 of the bytes stored).
    single = validate_fastq(reads[0], name=f"incoming/{reads[0].name}",
                            mate_source=reads[1] if paired else None,
                            mate_name=f"incoming/{reads[1].name}" if paired else None).to_dict()
    assert stages["validation"]["records"] == single["records"] and stages["validation"]["bases"] == single["bases"]
    assert stages["validation"]["reports"] == single["files"]
    local = tmp_path / "local"
    process_file(str(reads[0]), str(reads[1]) if paired else None, str(local), sample,
                 engine_params(RunParameters().model_dump()))
    expected = relative_files(local)
    same_outputs(outcome.local_dir, local, [p for p in expected if not p.endswith(".html")])
    leftovers = stack.client("s3").list_objects_v2(Bucket=stack.info.bucket, Prefix=f"work/{sample}/")
    assert leftovers.get("KeyCount", 0) == 0


def _break_record(text: bytes, index: int) -> bytes:
    """Record ``index`` (0-based) with its quality line one character short."""
    lines = text.split(b"\n")
    lines[4 * index + 3] = lines[4 * index + 3][:-1]
    return b"\n".join(lines)


@pytest.mark.parametrize("where", ["chunk boundary", "last record", "cut-off gzip"])
def test_distributed_validation_reports_the_first_defect_as_the_validator_does(stack, tmp_path, where):
    sample = f"distbad{where.split()[0].replace('-', '')}"
    paths = write_sample(tmp_path / "in", 9000, paired=True, fmt="none", fragment_mean=180.0)
    texts = [open(p, "rb").read() for p in paths]
    chunk_bytes = 1 << 20  # the stack's chunk size (Phase1ChunkMiB=1)
    finder = CutFinder(grid=grid_records(chunk_bytes))
    finder.feed(texts[0])
    _, cuts = plan_cuts(finder.grid_offsets, finder.grid, chunk_bytes, finder.total)
    assert len(cuts) >= 3
    # R2 breaks in the first record of the second chunk (and, later, in its last record: the first one counts).
    index = {"chunk boundary": cuts[1], "last record": 8999, "cut-off gzip": None}[where]
    if index is not None:
        texts[1] = _break_record(texts[1], index)
    if where == "chunk boundary":
        texts[1] = _break_record(texts[1], 8999)
    reads = []
    for mate, text in enumerate(texts, start=1):
        reads.append(tmp_path / f"{sample}_R{mate}.fastq.gz")
        blob = igzip.compress(text)
        # An interrupted upload: zran would inflate it quietly to where it stops; the validator names it.
        reads[-1].write_bytes(blob[:-20] if where == "cut-off gzip" and mate == 2 else blob)
    if where == "cut-off gzip":
        # Mate 2's scan fails while mate 1's is still running (CI saw it once: mate 1's scan landed in work/ after
        # the failed run had cleaned it). Mate 1 starts late here, so the race goes that way every time.
        stack.runtime.inject_delay("SplitIntoChunksFunction", 8.0, when=lambda event: event.get("scan_mate") == 0)
    described = wait_for_run(stack.info, submit(stack.info, reads, {"validation": "distributed"}), timeout=300)
    outcome = collect(stack.info, described, tmp_path / "out")
    assert outcome.status == "FAILED" and outcome.error == "InvalidFastq", outcome.error_document
    with pytest.raises(InvalidFastq) as caught:
        validate_fastq(reads[0], name=f"incoming/{reads[0].name}", mate_source=reads[1],
                       mate_name=f"incoming/{reads[1].name}")
    expected = caught.value.to_dict()
    assert expected["record"] == index + 1 if index is not None else expected["code"] == "TRUNCATED_GZIP"
    assert {k: outcome.error_document.get(k) for k in expected} == expected
    assert stack.runtime.wait_idle(timeout=60)  # and none of the run's invocations is still writing
    s3 = stack.client("s3")
    for prefix in (f"results/{sample}/", f"work/{sample}/"):  # nothing published, scratch cleaned
        assert s3.list_objects_v2(Bucket=stack.info.bucket, Prefix=prefix).get("KeyCount", 0) == 0


@pytest.mark.extended
def test_a_chunk_that_fails_while_another_still_runs_leaves_nothing_of_the_run(stack, tmp_path):
    """Chunk 0's worker dies on every attempt while chunk 1 starts late: the Map fails with chunk 1 still
    running, and when that invocation ends, the run has still published nothing and left no scratch. (moto's
    Distributed Map waits for its running items before it fails; AWS stops the child executions, and a Lambda
    invocation already running there writes on: the bucket's ExpireScratch rule removes what it leaves.)"""
    sample = "straggler"
    paths = write_sample(tmp_path / "in", 9000, paired=False, fmt="gzip", fragment_mean=180.0)
    reads = tmp_path / f"{sample}.fastq.gz"
    reads.write_bytes(open(paths[0], "rb").read())
    def chunk(index):
        return lambda event: event.get("item", {}).get("index") == index

    stack.runtime.inject_fault("ProcessChunkFunction", KILL_WORKER, times=3, when=chunk(0))
    stack.runtime.inject_delay("ProcessChunkFunction", 12.0, when=chunk(1))
    described = wait_for_run(stack.info, submit(stack.info, [reads]), timeout=300)
    outcome = collect(stack.info, described, tmp_path / "out")
    assert outcome.status == "FAILED", outcome.error_document
    assert stack.runtime.wait_idle(timeout=60)
    s3 = stack.client("s3")
    for prefix in (f"results/{sample}/", f"work/{sample}/"):
        assert s3.list_objects_v2(Bucket=stack.info.bucket, Prefix=prefix).get("KeyCount", 0) == 0, prefix
