"""A samplesheet's batch report: one MultiQC report across the samples of one sheet version (the BatchReport state,
in the Phase 1 image with MultiQC, as the run's report).

Event-driven: every declared sample's execution, however it ends (published, failed, or reusing an earlier run),
records its outcome in the sheet's batch item (helixflow.pipeline.samplesheet.record_outcome, one atomic update)
and reads back every outcome so far. The execution that finds no declared sample pending builds the report from
what each succeeded sample *published* (the ``qc/`` files its manifest lists: fastp JSON, samtools stats and
flagstat, the embeddings' custom content), so the report only ever shows published results. A failed sample does
not hold the batch back: it is listed as FAILED with its error in the report's "Batch samples" table, and a later
successful run of it rebuilds the report.

Idempotent: two samples ending at once may both see the batch complete and both build it, from the same outcomes
and the same published files, hence the same report; each object is one PUT, the report last, so a reader that
finds ``multiqc_report.html`` finds the rest. A batch whose report already exists for exactly these outcomes
(``batch.json`` records them) is not built again (a repeated delivery, a sample reusing its run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from helixflow.pipeline import samplesheet
from helixflow.pipeline.keys import batch_prefix
from helixflow.pipeline.run_report import SECTION_PARENT, DATA_ZIP, REPORT_NAME, Report, run_multiqc
from helixflow.pipeline.state import BatchReportSummary, PipelineState
from helixflow.pipeline.storage import download, upload

BATCH_JSON = "batch.json"  # the samples, their outcomes and the sheet: what the report was built from
MANIFEST = "manifest.json"
QC_PREFIX = "qc/"  # what a published run holds for MultiQC (its report reads the same files)


def outcome_of(state: PipelineState) -> dict[str, Any]:
    """How this execution ended for its sample: FAILED (the caught error, its code and error.json), SUCCEEDED
    (published here), or SUCCEEDED reusing the earlier run of the same identity."""
    request = state.require_sample()
    if state.failure is not None:
        record = state.failure_record
        return {"status": "FAILED", "run_id": request.run_id, "error": state.failure.Error,
                "code": record.code if record else None, "error_key": record.error_key if record else None}
    if request.status == "already_processed":  # the same outcome as the run's own: a batch re-run rebuilds nothing
        return {"status": "SUCCEEDED", "run_id": request.previous_run, "results_prefix": request.results_prefix}
    return {"status": "SUCCEEDED", "run_id": request.run_id, "results_prefix": request.results_prefix}


def samples_section(batch: str, samples: list[str], outcomes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every declared sample in row order: its status, run, and where its results or error are."""
    rows = {}
    for sample in samples:
        outcome = outcomes[sample]
        failed = outcome["status"] == "FAILED"
        rows[sample] = {"status": outcome["status"], "run_id": outcome["run_id"],
                        "error": f"{outcome['error']} ({outcome['code']})" if failed else "",
                        "where": (outcome.get("error_key") or "") if failed else outcome["results_prefix"]}
    failed = [sample for sample in samples if outcomes[sample]["status"] == "FAILED"]
    return {
        "id": "helixflow_batch_samples", "section_name": "Batch samples", **SECTION_PARENT,
        "description": (f"The {len(samples)} samples of batch <code>{batch}</code>, as its samplesheet declared them; "
                        + (f"{len(failed)} failed ({', '.join(failed)}) and are in no other section."
                           if failed else "every one succeeded.")),
        "plot_type": "table",
        "pconfig": {"id": "helixflow_batch_samples_table", "title": "helixflow: batch samples", "col1_header": "sample",
                    "no_violin": True, "sort_rows": False},
        "headers": {"status": {"title": "status"}, "run_id": {"title": "run"}, "error": {"title": "error (code)"},
                    "where": {"title": "results or error.json"}},
        "data": rows,
    }


def batch_config(*, batch: str, batch_id: str, sheet_key: str, samples: list[str],
                 outcomes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    failed = [sample for sample in samples if outcomes[sample]["status"] == "FAILED"]
    return {
        "title": f"helixflow: batch {batch}", "subtitle": f"samplesheet {sheet_key} (version {batch_id})",
        "intro_text": ("The helixflow pipeline's report across the samples of one samplesheet, built from what each "
                       "sample's run published."),
        "report_header_info": [{"Samplesheet": sheet_key}, {"Batch id": batch_id},
                               {"Samples": f"{len(samples) - len(failed)} succeeded, {len(failed)} failed"},
                               *([{"Failed": ", ".join(failed)}] if failed else [])],
        "output_fn_name": REPORT_NAME, "data_dir_name": "multiqc_data",
        "report_section_order": {"helixflow_batch_samples": {"order": 1000}},  # first: which samples are in it
        "no_version_check": True, "no_ai": True, "show_analysis_paths": False, "export_plots": False,
        "plots_force_interactive": True,
    }


def build_batch(sample_dirs: dict[str, Path], out_dir: Path, *, batch: str, batch_id: str, sheet_key: str,
                samples: list[str], outcomes: dict[str, dict[str, Any]], work_dir: Path) -> Report:
    """MultiQC over each succeeded sample's published ``qc/`` folder (``sample_dirs``: sample -> the folder holding
    its qc/) plus the batch's samples table; the report and its data zip land in ``out_dir``."""
    content = work_dir / "content"
    content.mkdir(parents=True, exist_ok=True)
    section = samples_section(batch, samples, outcomes)
    (content / f"{section['id']}_mqc.json").write_text(json.dumps(section))
    config = batch_config(batch=batch, batch_id=batch_id, sheet_key=sheet_key, samples=samples, outcomes=outcomes)
    search = [sample_dirs[sample] / QC_PREFIX for sample in samples if sample in sample_dirs] + [content]
    report = run_multiqc(config, search, out_dir, private=work_dir / "private")
    return Report(html=report.html, data_zip=report.data_zip, modules=report.modules, plots=report.plots,
                  sections=[section["id"]])


def _get_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def batch_report(*, s3: Any, table: Any, state: PipelineState, scratch: Path) -> BatchReportSummary:
    """BatchReport: record this sample's outcome in its batch; when no declared sample is pending, build the batch
    report under results/_batches/<batch>/<sheet etag>/ (multiqc_data.zip, batch.json, multiqc_report.html last)."""
    request = state.require_sample()
    ref = request.batch
    if ref is None:
        raise ValueError("BatchReport runs for samples a samplesheet declared")
    prefix = batch_prefix(ref.batch, ref.sheet_etag)
    summary = {"batch": ref.batch, "batch_id": ref.sheet_etag}
    recorded = samplesheet.record_outcome(table, bucket=request.bucket, sheet_key=ref.sheet_key,
                                          sheet_etag=ref.sheet_etag, sample=request.sample, outcome=outcome_of(state))
    if recorded is None:  # the batch item expired: no batch to complete
        return BatchReportSummary(**summary, complete=False, pending=[], failed=[])
    samples, outcomes = recorded
    pending = samplesheet.pending_samples(samples, outcomes)
    failed = [sample for sample in samples if sample in outcomes and outcomes[sample]["status"] == "FAILED"]
    if pending:
        return BatchReportSummary(**summary, complete=False, pending=pending, failed=failed)
    document = {"batch": ref.batch, "batch_id": ref.sheet_etag, "samplesheet": ref.sheet_key, "samples": samples,
                "outcomes": {sample: outcomes[sample] for sample in samples}}
    done = _get_json(s3, request.bucket, prefix + BATCH_JSON)
    if done != document or not _exists(s3, request.bucket, prefix + REPORT_NAME):
        sample_dirs = {}
        for sample in samples:
            outcome = outcomes[sample]
            if outcome["status"] != "SUCCEEDED":
                continue
            manifest = _get_json(s3, request.bucket, outcome["results_prefix"] + MANIFEST)
            for entry in (manifest or {}).get("files", []):
                if entry["path"].startswith(QC_PREFIX):
                    download(s3, request.bucket, outcome["results_prefix"] + entry["path"],
                             scratch / "samples" / sample / entry["path"])
            if (scratch / "samples" / sample / QC_PREFIX).is_dir():
                sample_dirs[sample] = scratch / "samples" / sample
        report = build_batch(sample_dirs, scratch / "out", batch=ref.batch, batch_id=ref.sheet_etag,
                             sheet_key=ref.sheet_key, samples=samples, outcomes=outcomes, work_dir=scratch / "work")
        upload(s3, request.bucket, report.data_zip, prefix + DATA_ZIP)
        s3.put_object(Bucket=request.bucket, Key=prefix + BATCH_JSON, ContentType="application/json",
                      Body=(json.dumps(document, indent=2) + "\n").encode())
        upload(s3, request.bucket, report.html, prefix + REPORT_NAME)  # last: its presence means the rest is there
    return BatchReportSummary(**summary, complete=True, pending=[], failed=failed, report_key=prefix + REPORT_NAME)
