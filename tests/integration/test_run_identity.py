"""What a run is, as a user re-running files sees it: the same files and parameters again reuse the run that
succeeded, new parameters start a new run with them, a failed run never blocks a re-run, `--force` runs again,
and a multipart (> 8 MiB) paired upload is one run that the client follows to its results."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from helixflow.phase1.simulate import write_sample
from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.stack import LocalStack

pytestmark = pytest.mark.integration

RECORDS = b"".join(b"@read%d\n%s\n+\n%s\n" % (i, b"ACGTTGCAAC" * 8, b"I" * 80) for i in range(1, 101))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with LocalStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def _run(stack, tmp_path, reads, params=None, force=False):
    described = wait_for_run(stack.info, submit(stack.info, reads, params, force=force), timeout=300)
    return collect(stack.info, described, tmp_path / "out")


def _params_json(outcome) -> dict:
    return json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())


def test_same_inputs_reuse_new_parameters_run_again_and_force_reruns(stack, tmp_path):
    reads = tmp_path / "ident.fastq.gz"
    reads.write_bytes(gzip.compress(RECORDS))
    first = _run(stack, tmp_path, [reads])
    assert first.succeeded and not first.reused
    reused = _run(stack, tmp_path, [reads])
    assert reused.succeeded and reused.reused and reused.run_id == first.run_id
    assert reused.manifest == first.manifest
    q30 = _run(stack, tmp_path, [reads], {"quality": 30})
    assert q30.succeeded and not q30.reused and q30.run_id != first.run_id
    assert _params_json(q30)["params"]["quality"] == 30 and _params_json(first)["params"]["quality"] == 20
    # The default parameters again: the first run is still the answer, whatever ran in between.
    assert _run(stack, tmp_path, [reads]).run_id == first.run_id
    forced = _run(stack, tmp_path, [reads], force=True)
    assert forced.succeeded and not forced.reused and forced.run_id not in (first.run_id, q30.run_id)


def test_a_failed_run_never_blocks_a_rerun_of_the_same_bytes(stack, tmp_path):
    reads = tmp_path / "phred.fastq"
    # Phred+64 qualities: refused unless the parameters allow them.
    reads.write_bytes(b"".join(b"@r%d\nACGTACGTAC\n+\nhhhhhhhhhh\n" % i for i in range(20)))
    failed = _run(stack, tmp_path, [reads])
    assert (failed.status, failed.error) == ("FAILED", "InvalidFastq")
    assert failed.error_document["code"] == "PHRED64_NOT_SUPPORTED"
    fixed = _run(stack, tmp_path, [reads], {"allow_phred64": True})
    assert fixed.succeeded, fixed.error_document
    # And the very same (failing) parameters again run again rather than being skipped.
    again = _run(stack, tmp_path, [reads])
    assert (again.status, again.error) == ("FAILED", "InvalidFastq") and again.run_id != failed.run_id


def test_a_multipart_paired_upload_is_one_run_the_client_follows(stack, tmp_path):
    r1, r2 = (Path(p) for p in write_sample(tmp_path / "in", 32_000, paired=True, fmt="none", name="big"))
    assert min(r1.stat().st_size, r2.stat().st_size) > 8 * 1024 * 1024  # boto3 uploads these in parts
    outcome = _run(stack, tmp_path, [r1, r2])
    assert outcome.succeeded, outcome.error_document
    assert [i["key"] for i in _params_json(outcome)["inputs"]] == ["incoming/big_R1.fastq", "incoming/big_R2.fastq"]
    sfn = stack.client("stepfunctions")
    runs = [e for e in sfn.list_executions(stateMachineArn=stack.info.state_machine_arn)["executions"]
            if "big_R" in sfn.describe_execution(executionArn=e["executionArn"])["input"]]
    assert len(runs) == 2  # one per mate's object version: the first waits, the second runs the pair
