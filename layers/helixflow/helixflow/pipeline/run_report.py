"""The run's report: one MultiQC report per run (the BuildReport state, in the Phase 1 image).

MultiQC's own modules read what they know: the fastp module our fastp-compatible ``qc/<sample>.fastp.json``,
the samtools module the ``qc/<sample>.flagstat.txt`` / ``qc/<sample>.stats.txt`` the Phase 2 job writes next to
the BAM. What no module covers goes in as custom content (``*_mqc.json`` files written here, grouped under one
"helixflow" heading): embedding statistics (norm distribution, nearest-neighbour similarity), cluster sizes,
the run's inputs and parameters, the placement decisions, the trace as a timeline, and the cost per stage when
``pipeline_info/cost.json`` is among the run's files. The run id, inputs, parameters and versions also go into
MultiQC's report header and its software-versions section (from our nf-core-layout software_versions.yml).

MultiQC runs as a child process (argument vector, no shell): it keeps global state and installs its own log
handlers, which a warm Lambda container must not carry from one run to the next. It is told never to reach the
network (no version check, no AI summary); the report inlines its scripts, so it opens offline.

MultiQC 1.35 with its dependencies is ~330 MB installed (kaleido 221 MB, plotly 64 MB, multiqc 30 MB, polars):
past Lambda's 250 MB limit for a zip function and its layers, hence the Phase 1 container image.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import numpy as np

from helixflow.errors import ReportFailed
from helixflow.pipeline.keys import work_prefix
from helixflow.pipeline.publish import (recorded_stages, render_yaml, reported_versions, run_cost, trace_inputs,
                                        trace_rows)
from helixflow.pipeline.state import PipelineState, ReportSummary
from helixflow.pipeline.storage import download, open_object, upload
from helixflow.versions import REPORT, environment_versions

REPORT_NAME = "multiqc_report.html"
DATA_DIR = "multiqc_data"
DATA_ZIP = f"{DATA_DIR}.zip"  # MultiQC's --zip-data-dir: its ~30 data files as one output
COST_PATH = "pipeline_info/cost.json"
# What the report downloads of the staged outputs (never the BAM or the trimmed reads: MultiQC needs only their
# statistics; the embeddings Parquet is read in place, its embedding column alone); paths relative to the
# results prefix.
REPORT_INPUTS = ("qc/", "clusters/", COST_PATH)
NN_SAMPLE = 4096  # reads in the nearest-neighbour sample: a 4096 x 4096 similarity matrix is 64 MB of float32
MULTIQC_SECONDS = 600
SECTION_PARENT = {"parent_id": "helixflow", "parent_name": "helixflow",
           "parent_description": "What the pipeline itself measured and decided for this run."}
# The timeline's stacked bar: an invisible offset from the run's start, then the queue wait, then the run.
_TIMELINE_CATEGORIES = {"offset": {"name": "since run start", "color": "rgba(0,0,0,0)"},
                        "queued": {"name": "queued (submit to start)", "color": "#f0ad4e"},
                        "running": {"name": "running", "color": "#337ab7"}}


@dataclass
class RunInfo:
    """What the report says about the run itself (the rest it reads from the stages' files)."""

    sample: str
    run_id: str
    inputs: list[dict[str, Any]]  # key, etag, size, mate
    params: dict[str, Any]
    started_by: str
    placements: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage -> the plan's placement
    trace: list[dict[str, Any]] = field(default_factory=list)  # publish.trace_rows
    versions: dict[str, dict[str, str]] = field(default_factory=dict)  # process -> tool -> version
    # The cost hook: {"stages": [{"stage", "usd"}], "total_usd"} as pipeline_info/cost.json holds it. Set it here
    # (run_info) when the cost is computed in-process; otherwise a staged pipeline_info/cost.json is read.
    cost: dict[str, Any] | None = None


@dataclass(frozen=True)
class Report:
    html: Path
    data_zip: Path
    modules: dict[str, list[str]]  # MultiQC module -> the samples it found (report_data_sources)
    plots: list[str]  # every plot/table id in the report
    sections: list[str]  # custom-content section ids this run gave MultiQC


# ----------------------------------------------------------------------------------- custom content sections

def _histogram(values: np.ndarray, lo: float, hi: float, bins: int) -> list[list[float]]:
    """[bin centre, count] pairs: a line graph's points as a list, since JSON object keys (x) would be strings
    and MultiQC would draw them as categories."""
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return [[round(float((a + b) / 2), 6), int(c)] for a, b, c in zip(edges[:-1], edges[1:], counts)]


# Row groups of the embeddings Parquet read at once: in place on S3 each read is a ranged GET, and one at a time
# their latency added up to more than downloading the file (2 M reads: 12.3 s vs 9.5 s on the local stack).
READ_AHEAD = 8


def _embedding_vectors(open_parquet: Callable[[], BinaryIO]) -> Iterable[np.ndarray]:
    """Each row group's embeddings, in file order, READ_AHEAD row groups in flight (each on its own handle)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    from helixflow import embedding

    with open_parquet() as handle:
        metadata = pq.ParquetFile(handle).metadata

    def read(group: int) -> np.ndarray:
        with open_parquet() as handle:
            table = pq.ParquetFile(handle, metadata=metadata).read_row_group(group, columns=["embedding"])
        return embedding.unit_vectors(embedding.codes_from_column(table.column("embedding")))

    with ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="embeddings") as pool:
        pending: deque = deque()
        for group in range(metadata.num_row_groups):
            pending.append(pool.submit(read, group))
            if len(pending) >= READ_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def embedding_sections(open_parquet: Callable[[], BinaryIO], sample: str,
                       nn_sample: int = NN_SAMPLE) -> list[dict[str, Any]]:
    """L2 norms of every read's embedding as Phase 2 reads it (the stored int8 codes L2-normalised: 1 up to
    float32 rounding, 0 for reads without a k-mer free of N),
    and the cosine similarity of each read in an evenly spaced sample to its most similar other read in that
    sample (a mate overlapping its pair counts: that is what the clustering sees too)."""
    norms, rows = [], []
    total = 0
    for vectors in _embedding_vectors(open_parquet):
        norms.append(np.linalg.norm(vectors.astype(np.float32), axis=1))
        rows.append(vectors)
        total += len(vectors)
        if sum(len(r) for r in rows) > 4 * nn_sample:  # keep memory bounded: thin what is held so far
            held = np.concatenate(rows)
            rows = [held[:: max(len(held) // (2 * nn_sample), 1)]]
    norm = np.concatenate(norms) if norms else np.zeros(0, np.float32)
    held = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 1), np.float32)
    lengths = np.linalg.norm(held, axis=1)
    held = held[lengths > 0] / lengths[lengths > 0, None]
    picked = held[np.linspace(0, len(held) - 1, min(nn_sample, len(held))).astype(int)] if len(held) else held
    zero = int((norm == 0).sum())
    nonzero = norm[norm > 0]
    lo, hi = (float(nonzero.min()), float(nonzero.max())) if nonzero.size else (0.0, 1.0)
    if hi - lo < 1e-4:
        lo, hi = lo - 5e-5, hi + 5e-5
    sections = [{
        "id": "helixflow_embedding_norms", "section_name": "Embedding norms", **SECTION_PARENT,
        "description": (f"L2 norm of each read's embedding ({total:,} reads). Embeddings are L2-normalised, so "
                        f"norms sit at 1 up to float32 rounding; {zero:,} zero vectors (reads without a "
                        "k-mer free of N) are left out of the plot."),
        "plot_type": "linegraph",
        "pconfig": {"id": "helixflow_embedding_norms_plot", "title": "helixflow: embedding L2 norm",
                    "xlab": "L2 norm", "ylab": "reads", "ymin": 0},
        "data": {sample: _histogram(nonzero, lo, hi, 40)},
    }]
    if len(picked) >= 2:
        similarity = picked @ picked.T
        np.fill_diagonal(similarity, -np.inf)
        nearest = np.clip(similarity.max(axis=1), -1.0, 1.0)
        sections.append({
            "id": "helixflow_nn_similarity", "section_name": "Nearest-neighbour similarity", **SECTION_PARENT,
            "description": (f"Cosine similarity of each read to its most similar other read, among {len(picked):,} "
                            f"reads spaced evenly through the {total:,} embedded (median "
                            f"{float(np.median(nearest)):.3f}). Reads from the same locus score high; a peak near 0 "
                            "means reads with nothing alike in the sample."),
            "plot_type": "linegraph",
            "pconfig": {"id": "helixflow_nn_similarity_plot", "title": "helixflow: nearest-neighbour cosine similarity",
                        "xlab": "cosine similarity to the nearest other read", "ylab": "reads", "xmin": -1,
                        "xmax": 1, "ymin": 0},
            "data": {sample: _histogram(nearest, -1.0, 1.0, 80)},
        })
    return sections


def cluster_size_section(clusters_tsv: Path, sample: str) -> dict[str, Any]:
    """Phase 2's clusters: how many clusters have each size (reads per cluster)."""
    with open(clusters_tsv) as handle:
        header = next(handle).rstrip("\n").split("\t")
        column = header.index("cluster_id")
        sizes = Counter(line.rstrip("\n").split("\t")[column] for line in handle)
    by_size = Counter(sizes.values())
    reads = sum(sizes.values())
    singletons = by_size.get(1, 0)
    return {
        "id": "helixflow_cluster_sizes", "section_name": "Cluster sizes", **SECTION_PARENT,
        "description": (f"Phase 2's read-graph clusters: {len(sizes):,} clusters of {reads:,} reads; "
                        f"{singletons:,} singletons; the largest holds {max(sizes.values(), default=0):,} reads."),
        "plot_type": "linegraph",
        "pconfig": {"id": "helixflow_cluster_sizes_plot", "title": "helixflow: cluster size distribution",
                    "xlab": "reads in the cluster", "ylab": "clusters", "xlog": True, "ymin": 0},
        "data": {sample: [[size, by_size[size]] for size in sorted(by_size)]},
    }


def run_section(info: RunInfo) -> dict[str, Any]:
    """The inputs the run read (name, mate, size, etag) and what started it."""
    rows = {item["key"].rsplit("/", 1)[-1]: {"mate": item.get("mate", 0), "bytes": item["size"],
                                             "etag": item["etag"], "key": item["key"]} for item in info.inputs}
    return {
        "id": "helixflow_inputs", "section_name": "Inputs", **SECTION_PARENT,
        "description": f"Run <code>{info.run_id}</code> of sample <code>{info.sample}</code>: {info.started_by}.",
        "plot_type": "table",
        "pconfig": {"id": "helixflow_inputs_table", "title": "helixflow: inputs", "col1_header": "file",
                    "no_violin": True},
        "headers": {"mate": {"title": "mate", "format": "{:,.0f}"},
                    "bytes": {"title": "size (bytes)", "format": "{:,.0f}"},
                    "etag": {"title": "etag"}, "key": {"title": "key"}},
        "data": rows,
    }


def parameters_section(info: RunInfo) -> dict[str, Any]:
    """The run's effective parameters (what its identity hashed), one row per parameter."""
    rows = {name: {"value": json.dumps(value) if not isinstance(value, str) else value}
            for name, value in sorted(info.params.items())}
    return {
        "id": "helixflow_parameters", "section_name": "Parameters", **SECTION_PARENT,
        "description": "The run's parameters after defaults and the sidecar/samplesheet were applied.",
        "plot_type": "table",
        "pconfig": {"id": "helixflow_parameters_table", "title": "helixflow: parameters", "col1_header": "parameter",
                    "no_violin": True, "sort_rows": False},
        "data": rows or {"(none)": {"value": "defaults"}},
    }


def placement_section(placements: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Where each phase ran and the numbers the Mashup placement weighed (the plans in params.json)."""
    rows = {stage: {k: v for k, v in plan.items() if not isinstance(v, (dict, list)) and v is not None}
            for stage, plan in placements.items()}
    return {
        "id": "helixflow_placement", "section_name": "Placement decisions", **SECTION_PARENT,
        "description": "Where each phase ran, why, and the predicted times and costs behind the choice.",
        "plot_type": "table",
        "pconfig": {"id": "helixflow_placement_table", "title": "helixflow: placement", "col1_header": "stage",
                    "no_violin": True, "sort_rows": False},
        "data": rows,
    }


def _seconds(later: str, earlier: datetime) -> float:
    return max((datetime.fromisoformat(later) - earlier).total_seconds(), 0.0)


def timeline_section(trace: list[dict[str, Any]]) -> dict[str, Any]:
    """trace.tsv as a timeline: one bar per state or cluster job, from its submit (offset from the run's
    first row) through its queue wait to its end."""
    stamped = [row for row in trace if row.get("submit")]
    origin = min((datetime.fromisoformat(row["submit"]) for row in stamped), default=None)
    data = {}
    for row in stamped:
        submit = _seconds(row["submit"], origin)
        start = _seconds(row["start"], origin) if row.get("start") else submit
        end = _seconds(row["complete"], origin) if row.get("complete") else start
        label = f"{int(row['task_id']):02d} {row['name']}" + (f" ({row['native_id']})" if row.get("native_id") else "")
        data[label] = {"offset": round(submit, 3), "queued": round(start - submit, 3),
                       "running": round(max(end - start, 0.0), 3)}
    return {
        "id": "helixflow_timeline", "section_name": "Timeline", **SECTION_PARENT,
        "description": ("pipeline_info/trace.tsv as a timeline: each Task/Map state and cluster job from its "
                        "submission (seconds after the run's first state) through its queue wait to its end. "
                        "BuildReport drew this, so its own bar ends when the report started and Publish is not in it."),
        "plot_type": "bargraph",
        "categories": _TIMELINE_CATEGORIES,
        "pconfig": {"id": "helixflow_timeline_plot", "title": "helixflow: timeline",
                    "ylab": "seconds since the run started",
                    "cpswitch": False, "sort_samples": False, "stacking": "normal", "hide_zero_cats": False,
                    "tt_decimals": 2},
        "data": data,
    }


def cost_section(cost: dict[str, Any]) -> dict[str, Any]:
    """pipeline_info/cost.json ({"stages": [{"stage", "usd"}], "total_usd"}) as a bar per stage."""
    data = {str(item["stage"]): {"usd": float(item["usd"])} for item in cost.get("stages", [])}
    total = float(cost.get("total_usd", sum(v["usd"] for v in data.values())))
    return {
        "id": "helixflow_cost", "section_name": "Cost per stage", **SECTION_PARENT,
        "description": f"Estimated cost of the run: {total:.4f} USD (pipeline_info/cost.json).",
        "plot_type": "bargraph",
        "categories": {"usd": {"name": "USD", "color": "#5cb85c"}},
        "pconfig": {"id": "helixflow_cost_plot", "title": "helixflow: cost per stage", "ylab": "USD", "cpswitch": False,
                    "sort_samples": False, "tt_decimals": 4},
        "data": data,
    }


def custom_sections(run_dir: Path, info: RunInfo,
                    embeddings: Callable[[], BinaryIO] | None = None) -> list[dict[str, Any]]:
    """Every custom-content section this run's files and facts give (the embeddings Parquet opened by
    ``embeddings`` when given, else from ``run_dir``)."""
    sample = info.sample
    sections = [run_section(info), parameters_section(info)]
    if info.placements:
        sections.append(placement_section(info.placements))
    if info.trace:
        sections.append(timeline_section(info.trace))
    cost = info.cost or (json.loads((run_dir / COST_PATH).read_text()) if (run_dir / COST_PATH).is_file() else None)
    if cost:
        sections.append(cost_section(cost))
    parquet = run_dir / "embeddings" / f"{sample}.parquet"
    if embeddings is not None or parquet.is_file():
        sections += embedding_sections(embeddings or (lambda: open(parquet, "rb")), sample)
    clusters = run_dir / "clusters" / f"{sample}.clusters.tsv"
    if clusters.is_file():
        sections.append(cluster_size_section(clusters, sample))
    return sections


# ------------------------------------------------------------------------------------------ running MultiQC

def multiqc_config(info: RunInfo, fastp_command: str | None, section_ids: list[str]) -> dict[str, Any]:
    header = [{"Run id": info.run_id}, {"Sample": info.sample},
              {"Inputs": ", ".join(item["key"].rsplit("/", 1)[-1] for item in info.inputs)},
              {"Started by": info.started_by},
              {"Parameters": json.dumps(info.params, sort_keys=True) if info.params else "defaults"}]
    if fastp_command:
        header.append({"Phase 1 command": fastp_command})
    helixflow = next((tools["helixflow"] for tools in info.versions.values() if "helixflow" in tools), None)
    if helixflow:
        header.append({"helixflow": helixflow})
    return {
        "title": f"helixflow: {info.sample}", "subtitle": f"run {info.run_id}",
        "intro_text": ("The helixflow pipeline's report of one run: MultiQC's fastp and samtools sections read the "
                       "stages' own files; the helixflow sections are what the pipeline measured and decided."),
        "report_header_info": header,
        # Fixed names whatever the title: MultiQC would otherwise name the files after it.
        "output_fn_name": REPORT_NAME, "data_dir_name": DATA_DIR,
        # The helixflow sections in reading order (MultiQC would sort them by name).
        "report_section_order": {section: {"order": index} for index, section in enumerate(section_ids)},
        "no_version_check": True, "no_ai": True, "show_analysis_paths": False, "export_plots": False,
        "plots_force_interactive": True,
    }


def build_report(run_dir: Path, out_dir: Path, info: RunInfo, *, work_dir: Path,
                 embeddings: Callable[[], BinaryIO] | None = None) -> Report:
    """MultiQC over ``run_dir``'s qc/ (the run's files in the results layout) plus the custom content and
    versions written under ``work_dir`` (``embeddings`` opens the Parquet when it is not in ``run_dir``); the
    report and its data folder land in ``out_dir``."""
    content, private = work_dir / "content", work_dir / "private"
    for directory in (content, private):
        directory.mkdir(parents=True, exist_ok=True)
    sections = custom_sections(run_dir, info, embeddings)
    for section in sections:
        (content / f"{section['id']}_mqc.json").write_text(json.dumps(section))
    if info.versions:
        (content / "helixflow_mqc_versions.yml").write_text(render_yaml(info.versions))
    fastp = run_dir / "qc" / f"{info.sample}.fastp.json"
    command = json.loads(fastp.read_text()).get("command") if fastp.is_file() else None
    report = run_multiqc(multiqc_config(info, command, [s["id"] for s in sections]), [run_dir / "qc", content],
                         out_dir, private=private)
    return Report(html=report.html, data_zip=report.data_zip, modules=report.modules, plots=report.plots,
                  sections=[s["id"] for s in sections])


def run_multiqc(config: dict[str, Any], search: list[Path], out_dir: Path, *, private: Path) -> Report:
    """MultiQC (a child process, argument vector) over the ``search`` folders with ``config``; the report and its
    zipped data folder land in ``out_dir``. ``private`` holds the config, HOME and the temp dir. The run's report
    and the batch report (helixflow.pipeline.batch_report) both run it."""
    private.mkdir(parents=True, exist_ok=True)
    config_path = private / "multiqc_config.yaml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    argv = [sys.executable, "-m", "multiqc", "--force", "--no-ansi", "--quiet", "--strict", "--zip-data-dir",
            "--config", str(config_path), "--outdir", str(out_dir), *map(str, search)]
    # HOME and the temp dir outside the folders MultiQC searches (its own log there matches other modules'
    # patterns), and under scratch: in Lambda only /tmp is writable. No PYTHONPATH: the handlers' folder on it
    # (split.py, merge.py, ...) must not shadow what MultiQC imports.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
           "HOME": str(private), "TMPDIR": str(private), "MPLCONFIGDIR": str(private)}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=MULTIQC_SECONDS)
    except subprocess.TimeoutExpired as exc:
        raise ReportFailed(f"MultiQC ran past {MULTIQC_SECONDS} s", code="MULTIQC_FAILED") from exc
    html, data_zip = out_dir / REPORT_NAME, out_dir / DATA_ZIP
    if done.returncode != 0 or not html.is_file() or not data_zip.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ReportFailed(f"MultiQC exited {done.returncode}: {' | '.join(tail)}", code="MULTIQC_FAILED",
                           details={"stderr_tail": tail})
    modules, plots = found(data_zip)
    return Report(html=html, data_zip=data_zip, modules=modules, plots=plots, sections=[])


def multiqc_data(data_zip: Path) -> dict[str, Any]:
    """multiqc_data.json out of the zipped data folder."""
    with zipfile.ZipFile(data_zip) as archive:
        return json.loads(archive.read("multiqc_data.json"))


def found(data_zip: Path) -> tuple[dict[str, list[str]], list[str]]:
    """From multiqc_data.json: MultiQC module -> the samples it read (custom content is not listed there), and
    the ids of every plot and table in the report (custom content sections' included)."""
    data = multiqc_data(data_zip)
    modules = {module: sorted({name for files in kinds.values() for name in files})
               for module, kinds in data["report_data_sources"].items()}
    return modules, sorted(data["report_plot_data"])


# ------------------------------------------------------------------------------------- the BuildReport stage

def run_info(state: PipelineState, trace: list[dict[str, Any]]) -> RunInfo:
    """What the report says about the run, from the execution state (the same records params.json keeps)."""
    request = state.require_sample()
    detail = state.event.get("detail", {})
    trigger = (f"s3://{detail['bucket']['name']}/{detail['object']['key']} (S3 Object Created)"
               if "bucket" in detail and "object" in detail else "a start_execution call")
    placements = {}
    if state.plan:
        placements["Phase 1"] = state.plan.phase1.model_dump()
    if state.plan2:
        phase2 = state.plan2.phase2
        placements["Phase 2"] = {**phase2.model_dump(exclude={"embeddings_key", "reference"}),
                                 "reference": phase2.reference.key if phase2.reference else None}
    versions = {**reported_versions(recorded_stages(state)), "BuildReport": environment_versions(REPORT)}
    return RunInfo(sample=request.sample, run_id=request.run_id, inputs=[i.model_dump() for i in request.inputs],
                   params=request.params, started_by=f"{trigger} started Step Functions execution {request.run_id}",
                   placements=placements, trace=trace, versions=versions)


def build_run_report(*, s3: Any, state: PipelineState, history_events: Iterable[dict[str, Any]],
                     scratch: Path, functions: dict[str, dict[str, int]] | None = None) -> ReportSummary:
    """BuildReport: download what the report reads of the staged outputs (qc/, clusters/, a staged
    pipeline_info/cost.json; of the embeddings Parquet only its embedding column, read in place with ranged
    GETs: the reads' sequences and qualities are most of the file and the report needs none of them), build the
    MultiQC report and stage it under work/<sample>/<run>/report/ for Publish, which lists it in the manifest
    with every other output."""
    request = state.require_sample()
    run_dir = scratch / "run"
    embeddings_key = None
    for summary in (state.phase1, state.phase2):
        for path in (summary.outputs if summary else ()):
            if path == f"embeddings/{request.sample}.parquet":
                embeddings_key = summary.staged_prefix + path
            elif path.startswith(REPORT_INPUTS):
                download(s3, request.bucket, summary.staged_prefix + path, run_dir / path)
    history_events = list(history_events)
    inputs = trace_inputs(state)
    trace = trace_rows(history_events, running_until=datetime.now(timezone.utc), **inputs)
    info = run_info(state, trace)
    if functions:  # the cost so far (Publish's pipeline_info/cost.json adds its own second or so)
        info.cost = run_cost(trace, history_events, recorded_stages(state), list(inputs.get("jobs", [])), functions)
    embeddings = None
    if embeddings_key is not None:
        size = s3.head_object(Bucket=request.bucket, Key=embeddings_key)["ContentLength"]
        # A small buffer: pyarrow asks for each row group's embedding column chunk exactly, and a larger buffer
        # reads on into the next columns (8 MiB fetched 316 MB of a 398 MB file for its 140 MB of codes).
        embeddings = functools.partial(open_object, s3, request.bucket, embeddings_key, size=size,
                                       buffer_bytes=64 << 10)
    report = build_report(run_dir, scratch / "out", info, work_dir=scratch / "work", embeddings=embeddings)
    staged = work_prefix(request.sample, request.run_id, "report")
    outputs = []
    for path in (report.html, report.data_zip):
        upload(s3, request.bucket, path, staged + path.name)
        outputs.append(path.name)
    return ReportSummary(outputs=outputs, staged_prefix=staged, modules=sorted(report.modules),
                         versions=environment_versions(REPORT))
