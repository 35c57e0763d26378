"""`helixflow run --samplesheet SHEET`: the client side of samplesheets (helixflow.pipeline.samplesheet).

The local sheet names its files relative to its own folder; the same relative paths are their keys under
incoming/, so the sheet is uploaded byte for byte (inputs are never rewritten) as
``incoming/<batch>.samplesheet.csv`` (``<batch>`` = the sheet's name without ``.samplesheet``/``.csv``), and its
files once the sheet's execution has declared them: every file then lands already declared. The command follows each sample's run to its end, one after
the other (they run concurrently on the stack), downloads what each published and then the batch report the last
sample's run built (results/_batches/<batch>/<sheet etag>/, helixflow.pipeline.batch_report).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from helixflow.errors import InvalidSamplesheet, Position
from helixflow.pipeline.batch_report import BATCH_JSON
from helixflow.pipeline.keys import INCOMING_PREFIX, SAMPLESHEET_SUFFIX, batch_prefix, parse_samplesheet_key
from helixflow.pipeline.run_report import DATA_ZIP, REPORT_NAME
from helixflow.pipeline.samplesheet import SheetRow, parse_samplesheet
from helixflow_local.client import (TERMINAL, RunNotStarted, RunOutcome, Upload, collect, executions_for, needs_ray,
                                   upload_file, wait_for_run)
from helixflow_local.exit_codes import ExitCode, ToolError
from helixflow_local.progress import Snapshot
from helixflow_local.stack import StackInfo


@dataclass(frozen=True)
class LocalSheet:
    path: Path
    key: str  # incoming/<batch>.samplesheet.csv
    document: bytes
    rows: list[SheetRow]

    def local_file(self, key: str) -> Path:
        return self.path.parent / key[len(INCOMING_PREFIX):]

    @property
    def needs_ray(self) -> bool:
        return any(needs_ray([self.local_file(k) for k in row.files], row.params.model_dump(exclude_unset=True))
                   for row in self.rows)

    @property
    def needs_slurm(self) -> bool:
        return any(row.params.phase2 in ("slurm-cpu", "slurm-gpu") or row.params.reference for row in self.rows)


@dataclass(frozen=True)
class Submission:
    """What `submit_samplesheet` uploaded: the sheet's version (its ETag names the batch) and each sample's files."""

    sheet: LocalSheet
    sheet_etag: str
    uploads: dict[str, list[Upload]]

    @property
    def batch_prefix(self) -> str:
        return batch_prefix(parse_samplesheet_key(self.sheet.key), self.sheet_etag)


@dataclass
class SampleOutcome:
    sample: str
    outcome: RunOutcome | None = None
    problem: str | None = None  # why no run outcome: it never started, or the wait timed out
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.outcome is not None and self.outcome.succeeded


def read_sheet(path: Path) -> LocalSheet:
    """Check the sheet as the pipeline will (same parser) and that every file it names exists, before anything
    starts or is uploaded."""
    name = path.name
    batch = name[: -len(SAMPLESHEET_SUFFIX)] if name.endswith(SAMPLESHEET_SUFFIX) else name.removesuffix(".csv")
    key = f"{INCOMING_PREFIX}{batch}{SAMPLESHEET_SUFFIX}"
    parse_samplesheet_key(key)
    document = path.read_bytes()
    sheet = LocalSheet(path=path, key=key, document=document, rows=parse_samplesheet(document, source=str(path)))
    for row in sheet.rows:
        for column, file in zip(("fastq_1", "fastq_2"), row.files):
            if not sheet.local_file(file).is_file():
                raise InvalidSamplesheet(
                    f"{path} row {row.row} (line {row.line}), column {column}: {sheet.local_file(file)} does not exist "
                    "(paths are relative to the samplesheet's folder)", code="FILE_NOT_FOUND",
                    position=Position(file=str(path), record=row.row, line=row.line),
                    details={"row": row.row, "column": column})
    return sheet


def submit_samplesheet(info: StackInfo, sheet: LocalSheet, *, declare_timeout: float = 120) -> Submission:
    """Upload the sheet, wait until its execution has declared the samples, then upload each sample's files
    (fastq_1 first). Without the wait a file's event could be resolved before the sheet's and run under its
    name-derived sample (the sheet then starts the declared sample as well, but in a run not followed here)."""
    s3 = info.client("s3")
    put = s3.put_object(Bucket=info.bucket, Key=sheet.key, Body=sheet.document, ContentType="text/csv")
    upload = Upload(key=sheet.key, etag=put["ETag"].strip('"'), version_id=put["VersionId"])
    sfn, known, deadline = info.client("stepfunctions"), {}, time.monotonic() + declare_timeout
    while not any(d["status"] in TERMINAL for d in executions_for(sfn, info, [upload], known).values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the samplesheet's execution did not end within {declare_timeout:.0f} s")
        time.sleep(0.2)
    return Submission(sheet=sheet, sheet_etag=put["ETag"].strip('"'),
                      uploads={row.sample: [upload_file(s3, info.bucket, sheet.local_file(key), key) for key in row.files]
                               for row in sheet.rows})


def collect_batch_report(info: StackInfo, submission: Submission, out_dir: Path) -> Path | None:
    """Download the batch report (and its data and batch.json) of the submitted sheet into ``out_dir`` under the
    bucket's layout; its local path, or None when it was not built (a sample has not ended, or its build failed)."""
    s3 = info.client("s3")
    prefix = submission.batch_prefix
    try:
        s3.head_object(Bucket=info.bucket, Key=prefix + REPORT_NAME)
    except ClientError:
        return None
    for name in (DATA_ZIP, BATCH_JSON, REPORT_NAME):
        target = out_dir / prefix / name
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(info.bucket, prefix + name, str(target))
    return out_dir / prefix / REPORT_NAME


def wait_for_samples(info: StackInfo, submission: Submission, out_dir: Path, *, timeout: float,
                     on_progress: Callable[[str, Snapshot], None] = lambda sample, snapshot: None) -> list[SampleOutcome]:
    """Each sample's run, followed as `helixflow run` follows one (the executions these uploads started), within
    one deadline for all."""
    deadline = time.monotonic() + timeout
    outcomes = []
    for sample, uploaded in submission.uploads.items():
        try:
            described = wait_for_run(info, uploaded, timeout=max(1.0, deadline - time.monotonic()),
                                     on_progress=lambda snapshot, sample=sample: on_progress(sample, snapshot))
        except RunNotStarted as exc:
            outcomes.append(SampleOutcome(sample, problem=f"{exc.name} ({exc.code}): {exc}"))
        except TimeoutError as exc:
            outcomes.append(SampleOutcome(sample, problem=f"TimedOut (TIMED_OUT): {exc}", timed_out=True))
        else:
            outcomes.append(SampleOutcome(sample, outcome=collect(info, described, out_dir)))
    return outcomes


def summary_line(result: SampleOutcome) -> str:
    """One line per sample: its status, its run and where its results (or its error report) are."""
    outcome = result.outcome
    if outcome is None:
        return f"{'TIMED_OUT' if result.timed_out else 'NOT_RUN'} {result.sample}: {result.problem}"
    if outcome.succeeded:
        run = f"reused run {outcome.run_id} (same inputs and parameters)" if outcome.reused else f"run {outcome.run_id}"
        return f"SUCCEEDED {result.sample} {run}: results {outcome.local_dir}"
    document = outcome.error_document or {}
    report = f"; error report {outcome.local_dir / 'error.json'}" if outcome.local_dir else ""
    return (f"FAILED {result.sample} run {outcome.run_id}: {outcome.error} ({document.get('code') or outcome.status}) "
            f"{' '.join(str(document.get('message') or '').split())}{report}")


def batch_line(submission: Submission, report: Path | None) -> str:
    """The last line of `helixflow run --samplesheet`: where the batch report is, or that it is not there."""
    batch = parse_samplesheet_key(submission.sheet.key)
    if report is None:
        return (f"BATCH {batch}: no batch report at {submission.batch_prefix} (a declared sample has not ended, or "
                "its build failed: batch_report_error in the last sample's execution output)")
    return f"BATCH {batch}: report {report}"


class SamplesFailed(ToolError):
    """Some samples of a samplesheet did not succeed (each has its own summary line)."""

    code = "SAMPLES_FAILED"
    exit_code = ExitCode.RUN_FAILED


def raise_for(results: list[SampleOutcome]) -> None:
    """Exit 1 when a sample failed or never ran, else 5 when one timed out, else 0."""
    failed = [r for r in results if not r.succeeded and not r.timed_out]
    if failed:
        names = ", ".join(f"{r.sample} ({r.outcome.error if r.outcome else 'not run'})" for r in failed)
        raise SamplesFailed(f"{len(failed)} of {len(results)} samples did not succeed: {names}")
    timed_out = [r.sample for r in results if r.timed_out]
    if timed_out:
        raise TimeoutError(f"{len(timed_out)} of {len(results)} samples had no finished run in time: "
                           f"{', '.join(timed_out)}")
