"""Samplesheets on the local stack, as nf-core users drive them: a sheet before its files, a sheet after its files
(one run per sample, however often the sheet's event is delivered), a single-end row whose file is named like a
mate, a file in no sheet following the name rules, and a bad sheet failing with its named error and position."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helixflow_local.client import Upload, collect, execution_arn, submit, upload_file, wait_for_run
from helixflow.pipeline.run_report import multiqc_data
from helixflow_local.samplesheets import (SamplesFailed, batch_line, collect_batch_report, raise_for, read_sheet,
                                          submit_samplesheet, summary_line, wait_for_samples)
from helixflow_local.stack import LocalStack
from tests.helpers import poll_until

pytestmark = pytest.mark.integration

RECORDS = b"".join(b"@read%d\n%s\n+\n%s\n" % (i, b"ACGTTGCAAC" * 8, b"I" * 80) for i in range(1, 61))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # A short mate wait: the first mate's execution of a declared pair ends within the test.
    with LocalStack(tmp_path_factory.mktemp("stack"), parameters={"MateWaitSeconds": "4"}) as running:
        yield running


def _params_json(outcome) -> dict:
    return json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())


def _write(directory: Path, files: dict[str, bytes]) -> None:
    for name, body in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(body)


def _executions_for_key(stack, key: str) -> list[dict]:
    sfn = stack.client("stepfunctions")
    found = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.info.state_machine_arn):
        for execution in page["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            if json.loads(described["input"])["detail"]["object"]["key"] == key:
                found.append(described)
    return found


def _finished(stack, arn: str) -> dict:
    sfn = stack.client("stepfunctions")
    return poll_until(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
                      timeout=120, what=arn)


def test_sheet_first_then_files_runs_each_declared_sample_with_its_row(stack, tmp_path):
    _write(tmp_path, {"reads/P1_R1.fastq": RECORDS, "reads/P1_R2.fastq": RECORDS, "reads/S1_R1.fastq": RECORDS,
                      "first.samplesheet.csv": b"sample,fastq_1,fastq_2,quality\n"
                                               b"pairA,reads/P1_R1.fastq,reads/P1_R2.fastq,30\n"
                                               b"soloB,reads/S1_R1.fastq,,\n"})
    sheet = read_sheet(tmp_path / "first.samplesheet.csv")
    results = wait_for_samples(stack.info, submit_samplesheet(stack.info, sheet), tmp_path / "out", timeout=300)
    raise_for(results)  # every sample succeeded
    pair, solo = (r.outcome for r in results)
    # The sample ids, mates and parameters are the sheet's, not what the file names would say.
    assert _params_json(pair)["sample"] == "pairA" and _params_json(pair)["params"]["quality"] == 30
    assert [(i["mate"], i["key"]) for i in _params_json(pair)["inputs"]] == [
        (1, "incoming/reads/P1_R1.fastq"), (2, "incoming/reads/P1_R2.fastq")]
    # A single-end row: S1_R1 is named like a first mate and runs alone at once, waiting for no S1_R2.
    assert _params_json(solo)["sample"] == "soloB" and _params_json(solo)["params"]["quality"] == 20
    assert [(i["mate"], i["key"]) for i in _params_json(solo)["inputs"]] == [(0, "incoming/reads/S1_R1.fastq")]
    lines = [summary_line(r) for r in results]
    assert lines[0].startswith(f"SUCCEEDED pairA run {pair.run_id}: results ") and lines[1].startswith("SUCCEEDED soloB")
    # The same sheet and files again: every sample reuses its run (samplesheet parameters are part of the identity).
    again = wait_for_samples(stack.info, submit_samplesheet(stack.info, sheet), tmp_path / "out2", timeout=300)
    assert [(r.outcome.reused, r.outcome.run_id) for r in again] == [(True, pair.run_id), (True, solo.run_id)]


@pytest.mark.extended  # name rules and sidecars have their own tests in test_state_machine and test_run_identity
def test_a_file_in_no_sheet_follows_the_name_rules_and_its_sidecar(stack, tmp_path):
    _write(tmp_path, {"free_R1.fastq": RECORDS})
    outcome = collect(stack.info, wait_for_run(stack.info, submit(stack.info, [tmp_path / "free_R1.fastq"],
                                                                  {"quality": 25}), timeout=120), tmp_path / "out")
    assert outcome.succeeded, outcome.error_document
    assert _params_json(outcome)["sample"] == "free" and _params_json(outcome)["params"]["quality"] == 25


def test_files_first_then_sheet_starts_the_declared_run_once(stack, tmp_path):
    _write(tmp_path, {"late.fastq": RECORDS})
    s3 = stack.client("s3")
    # The file lands before any sheet names it: the name rules run it as sample "late".
    early = upload_file(s3, stack.info.bucket, tmp_path / "late.fastq", "incoming/late.fastq")
    by_name = collect(stack.info, wait_for_run(stack.info, [early], timeout=120), tmp_path / "out")
    assert by_name.succeeded and _params_json(by_name)["sample"] == "late"
    # The sheet lands after: its execution starts the declared sample's run at once.
    s3.put_object(Bucket=stack.info.bucket, Key="incoming/after.samplesheet.csv",
                  Body=b"sample,fastq_1,fastq_2,min_length\nlateDeclared,late.fastq,,20\n")
    sheet_run = poll_until(lambda: _executions_for_key(stack, "incoming/after.samplesheet.csv"), timeout=60,
                           what="the samplesheet's execution")[0]
    declared = json.loads(_finished(stack, sheet_run["executionArn"])["output"])["samplesheet"]["samples"]
    assert [(d["sample"], d["present"]) for d in declared] == [("lateDeclared", ["incoming/late.fastq"])]
    started = execution_arn(stack.info, declared[0]["started"])
    outcome = collect(stack.info, wait_for_run(stack.info, [], follow=(started,), timeout=120), tmp_path / "out")
    assert outcome.succeeded, outcome.error_document
    assert _params_json(outcome)["sample"] == "lateDeclared" and _params_json(outcome)["params"]["min_length"] == 20
    # EventBridge delivers at least once: the sheet's event again starts no second run of the sample.
    sfn = stack.client("stepfunctions")
    repeat = sfn.start_execution(stateMachineArn=stack.info.state_machine_arn, name="run-repeated-sheet-event",
                                 input=sheet_run["input"])["executionArn"]
    assert json.loads(_finished(stack, repeat)["output"])["skipped"] == "duplicate_event"
    assert len(_executions_for_key(stack, "incoming/late.fastq")) == 2  # its own upload's and the sheet's replay
    assert [key for key in _result_samples(stack) if key.startswith("lateDeclared/")] == [
        f"lateDeclared/{outcome.run_id}"]


def _batch_step(stack, arn: str) -> dict:
    """What the execution's BatchReport state left: its summary, or the error its Catch kept."""
    events = stack.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    exited = [json.loads(e["stateExitedEventDetails"]["output"]) for e in events
              if e.get("stateExitedEventDetails", {}).get("name") == "BatchReport"]
    return {k: v for k, v in (exited[-1] if exited else {}).items() if k.startswith("batch_report")}


def _result_samples(stack) -> set[str]:
    s3 = stack.client("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.info.bucket,
                                                                            Prefix="results/")
            for o in page.get("Contents", [])]
    return {"/".join(key.split("/")[1:3]) for key in keys}


def test_a_bad_sheet_fails_with_its_named_error_row_and_column(stack, tmp_path):
    s3 = stack.client("s3")
    key = "incoming/broken.samplesheet.csv"
    put = s3.put_object(Bucket=stack.info.bucket, Key=key,
                        Body=b"sample,fastq_1,fastq_2\nX1,x1.fastq,\nX2,x2.fastq,../../results/x.fastq\n")
    described = wait_for_run(stack.info, [Upload(key=key, etag=put["ETag"].strip('"'), version_id=put["VersionId"])],
                             timeout=120)
    outcome = collect(stack.info, described, tmp_path / "out")
    assert (outcome.status, outcome.error) == ("FAILED", "InvalidSamplesheet")
    document = outcome.error_document
    assert document["code"] == "PATH_OUTSIDE_PREFIX"
    assert (document["file"], document["record"], document["line"]) == (key, 2, 3)
    assert document["details"] == {"row": 2, "column": "fastq_2"}
    # Where the user finds it: errors/<sheet file name>/<run_id>/error.json.
    assert outcome.local_dir.relative_to(tmp_path / "out").as_posix() == \
        f"errors/broken.samplesheet.csv/{outcome.run_id}"
    # Nothing of the bad sheet was declared: a later x1.fastq follows the name rules.
    _write(tmp_path, {"x1.fastq": RECORDS})
    x1 = collect(stack.info, wait_for_run(stack.info, submit(stack.info, [tmp_path / "x1.fastq"]), timeout=120),
                 tmp_path / "out")
    assert x1.succeeded and _params_json(x1)["sample"] == "x1"


def test_a_failed_sample_gets_its_line_and_exit_status_1(stack, tmp_path):
    _write(tmp_path, {"ok.fastq": RECORDS, "phred.fastq": b"".join(b"@r%d\nACGTACGTAC\n+\nhhhhhhhhhh\n" % i
                                                                    for i in range(20)),
                      "mixed.samplesheet.csv": b"sample,fastq_1,fastq_2\nokS,ok.fastq,\nphredS,phred.fastq,\n"})
    submission = submit_samplesheet(stack.info, read_sheet(tmp_path / "mixed.samplesheet.csv"))
    results = wait_for_samples(stack.info, submission, tmp_path / "out", timeout=300)
    assert [r.succeeded for r in results] == [True, False]
    # The last sample to end built the batch's report: across what the batch published, naming the failed sample.
    report = collect_batch_report(stack.info, submission, tmp_path / "out")
    assert report is not None, [_batch_step(stack, r.outcome.execution_arn) for r in results]
    assert report == tmp_path / "out" / f"results/_batches/mixed/{submission.sheet_etag}/multiqc_report.html"
    assert batch_line(submission, report) == f"BATCH mixed: report {report}"
    batch = json.loads((report.parent / "batch.json").read_text())
    assert batch["samples"] == ["okS", "phredS"]
    assert [(batch["outcomes"][s]["status"], batch["outcomes"][s]["run_id"]) for s in ("okS", "phredS")] == [
        ("SUCCEEDED", results[0].outcome.run_id), ("FAILED", results[1].outcome.run_id)]
    data = multiqc_data(report.parent / "multiqc_data.zip")
    assert {name for table in data["report_general_stats_data"].values() for name in table} == {"okS"}
    assert "PHRED64_NOT_SUPPORTED" in report.read_text()
    assert "FAILED phredS run " in summary_line(results[1]) and "InvalidFastq (PHRED64_NOT_SUPPORTED)" in \
        summary_line(results[1])
    with pytest.raises(SamplesFailed) as caught:
        raise_for(results)
    assert "1 of 2 samples did not succeed: phredS (InvalidFastq)" in str(caught.value)


@pytest.mark.slow  # starts a stack of its own, as the command does
def test_helixflow_run_samplesheet_as_a_user_runs_it(tmp_path):
    """The real command, starting a stack for itself: one line per sample on stdout, the failure's one line on
    stderr, exit 1 because one sample failed."""
    _write(tmp_path, {"data/cli_R1.fastq": RECORDS, "data/cli_R2.fastq": RECORDS, "data/bad.fastq": b"@r1\nACGT\nIIII\n",
                      "data/batch.csv": b"sample,fastq_1,fastq_2,quality\ncliPair,cli_R1.fastq,cli_R2.fastq,28\n"
                                        b"cliBad,bad.fastq,,\n"})
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HELIXFLOW_STATE_DIR": str(tmp_path / "state"), "HELIXFLOW_HOME": str(root)}
    run = subprocess.run([sys.executable, "-c", "from helixflow_local.cli import main; main()", "run",
                          "--samplesheet", str(tmp_path / "data/batch.csv"), "--out", str(tmp_path / "out"),
                          "--timeout", "300"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["SUCCEEDED", "cliPair"], ["FAILED", "cliBad"],
                                                   ["BATCH", "batch:"]], run.stdout
    report = Path(lines[2].split("report ", 1)[1])
    assert report.is_file() and report.parent.parent == tmp_path / "out/results/_batches/batch"
    assert "InvalidFastq (MISSING_PLUS_LINE)" in lines[1] and "error.json" in lines[1]
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("SamplesFailed (SAMPLES_FAILED): 1 of 2 samples")
    params = json.loads(next((tmp_path / "out/results/cliPair").glob("*/pipeline_info/params.json")).read_text())
    assert params["params"]["quality"] == 28 and [i["key"] for i in params["inputs"]] == [
        "incoming/cli_R1.fastq", "incoming/cli_R2.fastq"]
