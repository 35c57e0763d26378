"""Phase 1 on the Lambda path (Plan -> SplitIntoChunks -> Distributed Map -> MergeChunks) inside the real
state machine gives the same outputs as `helixflow preprocess` on the same input."""

from __future__ import annotations

import json

import pytest
import yaml

from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.stack import LocalStack
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


@pytest.mark.parametrize(("paired", "fmt"), [(True, "gzip"), (False, "bgzf"), (False, "none")])
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
    assert list(versions) == ["Validate", "Phase1", "Publish"]
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
