"""The run's MultiQC report (BuildReport) built by real MultiQC from saved stage outputs (tests/fixtures/report/):
MultiQC's fastp and samtools modules find our files, the helixflow custom-content sections carry the numbers of
those files, the report names the run, its inputs, parameters and versions, and opens offline."""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from collections import Counter
from datetime import datetime, timedelta
from html.parser import HTMLParser

import boto3
import pytest
from moto import mock_aws

from helixflow.pipeline import run_report
from helixflow.pipeline.publish import trace_rows
from helixflow.pipeline.state import PipelineState
from tests.helpers import ROOT, pipeline_state

pytestmark = pytest.mark.slow  # each MultiQC run takes a few seconds
SAVED = ROOT / "tests" / "fixtures" / "report" / "S1"  # Phase 1 + Phase 2 outputs of sample S1 (see README.md there)
BUCKET = "helixflow-report-test"
PHASE1_PREFIX = "work/S1/_checkpoints/abc/phase1/outputs/"
PHASE2_PREFIX = "work/S1/run-7/phase2/"
PHASE1_OUTPUTS = ["qc/S1.fastp.json", "qc/S1_mqc.json", "embeddings/S1.parquet"]
PHASE2_OUTPUTS = ["clusters/S1.clusters.tsv", "qc/S1.flagstat.txt", "qc/S1.stats.txt"]
INPUTS = [{"key": "incoming/S1_R1.fastq.gz", "etag": "e1", "size": 45164, "mate": 1},
          {"key": "incoming/S1_R2.fastq.gz", "etag": "e2", "size": 45212, "mate": 2}]


def _state() -> PipelineState:
    plan1 = {"placement": "lambda", "reason": "0.1 MB fits one Lambda chunk", "input_bytes": 90376,
             "decompressed_mb": 0.2, "chunk_bytes": 67108864, "expected_chunks": 1, "lambda_seconds": 1.5,
             "lambda_usd": 0.0001, "cluster_seconds": 60.0, "cluster_usd": 0.01, "compression_ratios": [3.2],
             "validation": "single", "validate_seconds": 0.1}
    plan2 = {"placement": "slurm-cpu", "reason": "requested", "reads": 600, "ranks": 1, "time_limit_minutes": 10,
             "embeddings_key": PHASE1_PREFIX + "embeddings/S1.parquet",
             "reference": {"key": "references/ref.fa", "etag": "r1", "cache_prefix": "references/_cache/r1/",
                           "cached": False, "contigs": ["contig1"], "lengths": [30000]}}
    return PipelineState.model_validate(pipeline_state(
        "run-7",
        sample={"status": "ready", "run_id": "run-7", "bucket": BUCKET, "sample": "S1", "inputs": INPUTS,
                "params": {"min_length": 30, "phase2": "slurm-cpu"}, "results_prefix": "results/S1/run-7/",
                "identity": "abc"},
        validation={"records": 600, "bases": 90000, "paired": True, "reports": [],
                    "versions": {"helixflow": "0.1.0", "isal": "1.9.1"}},
        plan={"phase1": plan1}, plan2={"phase2": plan2},
        phase1={"outputs": PHASE1_OUTPUTS + ["reads/S1_R1.trimmed.fastq.gz"], "staged_prefix": PHASE1_PREFIX,
                "reads_before": 600, "reads_after": 600, "chunks": 1,
                "versions": {"helixflow": "0.1.0", "numba": "0.61"}},
        phase2={"outputs": PHASE2_OUTPUTS + ["alignments/S1.bam"], "staged_prefix": PHASE2_PREFIX, "reads": 600,
                "clusters": 1, "ranks": 1, "versions": {"helixflow": "0.1.0", "samtools": "1.16.1"}}))


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.remote: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if tag in ("script", "link", "img", "iframe", "source") and name in ("src", "href") and value and \
                    re.match(r"(https?:)?//", value):
                self.remote.append(f"<{tag} {name}={value}>")


def _remote_resources(page: str) -> list[str]:
    parser = _Resources()
    parser.feed(page)
    return parser.remote


def _history() -> list[dict]:
    return json.loads((ROOT / "tests" / "events" / "history_lambda_path_at_publish.json").read_text())


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """BuildReport run for real (its S3 glue against moto): the stages' outputs staged as the pipeline stages
    them, the report staged for Publish, and what it staged downloaded."""
    scratch = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for prefix, outputs in ((PHASE1_PREFIX, PHASE1_OUTPUTS), (PHASE2_PREFIX, PHASE2_OUTPUTS)):
            for path in outputs:
                s3.upload_file(str(SAVED / path), BUCKET, prefix + path)
        summary = run_report.build_run_report(s3=s3, state=_state(), history_events=_history(),
                                              scratch=scratch / "scratch")
        out = scratch / "staged"
        for name in summary.outputs:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, summary.staged_prefix + name, str(out / name))
    return summary, out


def test_build_report_stages_the_html_and_its_data_for_publish(staged):
    summary, out = staged
    assert summary.staged_prefix == "work/S1/run-7/report/"
    assert summary.outputs == [run_report.REPORT_NAME, run_report.DATA_ZIP]
    assert summary.modules == ["Samtools", "fastp"]
    assert summary.versions["multiqc"] == "1.35"


def test_multiqc_modules_read_our_fastp_json_and_the_samtools_statistics(staged):
    _, out = staged
    data = run_report.multiqc_data(out / run_report.DATA_ZIP)
    sources = data["report_data_sources"]
    assert set(sources["fastp"]["all_sections"]) == {"S1"}
    assert set(sources["Samtools"]["stats"]) == {"S1"} and set(sources["Samtools"]["flagstat"]) == {"S1"}
    general = data["report_general_stats_data"]
    fastp = json.loads((SAVED / "qc/S1.fastp.json").read_text())
    assert general["fastp"]["S1"]["before_filtering_total_reads"] == fastp["summary"]["before_filtering"]["total_reads"]
    flagstat_total = int((SAVED / "qc/S1.flagstat.txt").read_text().split(" ", 1)[0])
    samtools = {k: v for part in general.values() for k, v in part.get("S1", {}).items()}
    assert samtools["flagstat_total"] == flagstat_total == 600


def test_custom_sections_carry_the_numbers_of_the_run(staged):
    _, out = staged
    plots = run_report.multiqc_data(out / run_report.DATA_ZIP)["report_plot_data"]
    for section in ("helixflow_inputs_table", "helixflow_parameters_table", "helixflow_placement_table",
                    "helixflow_timeline_plot", "helixflow_embedding_norms_plot", "helixflow_nn_similarity_plot",
                    "helixflow_cluster_sizes_plot", "helixflow_embeddings_table"):
        assert section in plots, sorted(plots)
    assert "helixflow_cost_plot" not in plots  # no pipeline_info/cost.json was staged
    placement = json.dumps(plots["helixflow_placement_table"])
    assert "slurm-cpu" in placement and "references/ref.fa" in placement
    # Cluster sizes: the clusters in the TSV, by size.
    with open(SAVED / "clusters/S1.clusters.tsv") as handle:
        next(handle)
        sizes = Counter(Counter(line.split("\t")[1] for line in handle).values())
    (series,) = plots["helixflow_cluster_sizes_plot"]["datasets"][0]["lines"]
    assert {int(x): int(y) for x, y in series["pairs"]} == dict(sizes)
    # Norms: every read of the Parquet is counted once; similarities lie in [-1, 1].
    (norms,) = plots["helixflow_embedding_norms_plot"]["datasets"][0]["lines"]
    assert sum(y for _, y in norms["pairs"]) == 600
    (nearest,) = plots["helixflow_nn_similarity_plot"]["datasets"][0]["lines"]
    assert sum(y for _, y in nearest["pairs"]) == 600 and all(-1 <= x <= 1 for x, _ in nearest["pairs"])


def test_timeline_has_a_bar_per_trace_row_from_its_submit_to_its_end():
    ended = datetime.fromisoformat(_history()[-1]["timestamp"]) + timedelta(seconds=1)
    rows = trace_rows(_history(), running_until=ended)
    section = run_report.timeline_section(rows)
    assert list(section["data"]) == [f"{r['task_id']:02d} {r['name']}" for r in rows]
    first, last = section["data"][f"01 {rows[0]['name']}"], section["data"][f"{len(rows):02d} {rows[-1]['name']}"]
    assert first["offset"] == 0
    total = lambda bar: bar["offset"] + bar["queued"] + bar["running"]  # noqa: E731
    end = (datetime.fromisoformat(rows[-1]["complete"]) - datetime.fromisoformat(rows[0]["submit"])).total_seconds()
    assert abs(total(last) - end) < 1e-3


def test_report_names_the_run_inputs_parameters_and_versions_and_opens_offline(staged):
    _, out = staged
    page = (out / run_report.REPORT_NAME).read_text()
    assert "run-7" in page and "S1_R1.fastq.gz" in page and "S1_R2.fastq.gz" in page and "min_length" in page
    # Nothing loaded from the network: no script, stylesheet, image or frame of the page comes from another
    # origin (HTMLParser reads script bodies as text, so markup inside the inlined libraries' strings is not a tag).
    assert _remote_resources(page) == []
    versions = run_report.multiqc_data(out / run_report.DATA_ZIP)
    header = {k: v for item in versions["config_report_header_info"] for k, v in item.items()}
    assert header["Run id"] == "run-7" and header["Inputs"] == "S1_R1.fastq.gz, S1_R2.fastq.gz"
    assert json.loads(header["Parameters"]) == {"min_length": 30, "phase2": "slurm-cpu"}
    assert header["Phase 1 command"].startswith("helixflow preprocess --report_title S1")
    with zipfile.ZipFile(out / run_report.DATA_ZIP) as archive:
        software = archive.read("multiqc_software_versions.txt").decode()
    assert "samtools" in software and "1.16.1" in software and "multiqc" in software


def test_phase1_only_run_has_no_samtools_or_cluster_section_and_shows_a_cost_file_when_present(tmp_path):
    run_dir = tmp_path / "run"
    for path in PHASE1_OUTPUTS:
        (run_dir / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAVED / path, run_dir / path)
    cost = {"stages": [{"stage": "Validate", "usd": 0.00002}, {"stage": "Phase1", "usd": 0.0004}], "total_usd": 0.00042}
    (run_dir / "pipeline_info").mkdir()
    (run_dir / run_report.COST_PATH).write_text(json.dumps(cost))
    info = run_report.RunInfo(sample="S1", run_id="run-8", inputs=INPUTS, params={}, started_by="a test")
    report = run_report.build_report(run_dir, tmp_path / "out", info, work_dir=tmp_path / "work")
    assert report.modules == {"fastp": ["S1"]}
    assert "helixflow_cost_plot" in report.plots and "helixflow_cluster_sizes_plot" not in report.plots
    bars = run_report.multiqc_data(report.data_zip)["report_plot_data"]["helixflow_cost_plot"]["datasets"][0]
    assert "0.0004" in json.dumps(bars)


def test_a_multiqc_failure_is_a_named_error_with_its_last_lines(tmp_path):
    from helixflow.errors import ReportFailed

    (tmp_path / "run").mkdir()  # no qc/: MultiQC refuses a search path that does not exist
    info = run_report.RunInfo(sample="S1", run_id="run-9", inputs=INPUTS, params={}, started_by="a test")
    with pytest.raises(ReportFailed) as caught:
        run_report.build_report(tmp_path / "run", tmp_path / "out", info, work_dir=tmp_path / "work")
    assert caught.value.code == "MULTIQC_FAILED" and caught.value.details["stderr_tail"]
    assert "qc" in " ".join(caught.value.details["stderr_tail"])


def test_a_cost_given_in_process_is_a_section_without_a_file(tmp_path):
    cost = {"stages": [{"stage": "Phase2Job", "usd": 0.012}], "total_usd": 0.012}
    info = run_report.RunInfo(sample="S1", run_id="run-10", inputs=INPUTS, params={}, started_by="a test", cost=cost)
    sections = {s["id"]: s for s in run_report.custom_sections(tmp_path, info)}
    assert sections["helixflow_cost"]["data"] == {"Phase2Job": {"usd": 0.012}}
    assert "0.0120 USD" in sections["helixflow_cost"]["description"]
    assert "helixflow_cluster_sizes" not in sections and "helixflow_embedding_norms" not in sections


class _CountingS3:
    """The S3 client, counting the bytes GET returns per key (the Parquet's ranged reads go through it)."""

    def __init__(self, client) -> None:
        self.client, self.fetched = client, Counter()

    def get_object(self, **kwargs):
        response = self.client.get_object(**kwargs)
        body = response["Body"].read()
        self.fetched[kwargs["Key"]] += len(body)
        response["Body"] = io.BytesIO(body)
        return response

    def __getattr__(self, name):
        return getattr(self.client, name)


def _large_embeddings(directory) -> "Path":
    """A Phase 1 Parquet of 40,000 reads (~8 MB, 8 row groups): big enough that reading a column is not
    reading the file."""
    from helixflow.phase1 import engine
    from helixflow.phase1.simulate import fastq_bytes, random_genome, simulate_pairs

    _, seqs, quals, _, _ = simulate_pairs(40_000, 150, seed=3, genome=random_genome(300_000, 3), paired=False)
    reads = directory / "large.fastq"
    reads.write_bytes(fastq_bytes([f"r{i}" for i in range(40_000)], seqs, quals))
    engine.process_file(str(reads), None, str(directory / "large"), "S1")
    return directory / "large" / "embeddings" / "S1.parquet"


def test_build_report_reads_the_embedding_column_in_place_not_the_whole_parquet(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    parquet = _large_embeddings(tmp_path)
    scratch = tmp_path / "scratch"
    downloaded = []
    download = run_report.download
    monkeypatch.setattr(run_report, "download", lambda s3, bucket, key, path: (downloaded.append(key),
                                                                               download(s3, bucket, key, path))[1])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = _CountingS3(boto3.client("s3"))
        s3.create_bucket(Bucket=BUCKET)
        for prefix, outputs in ((PHASE1_PREFIX, PHASE1_OUTPUTS), (PHASE2_PREFIX, PHASE2_OUTPUTS)):
            for path in outputs:
                source = parquet if path == "embeddings/S1.parquet" else SAVED / path
                s3.upload_file(str(source), BUCKET, prefix + path)
        summary = run_report.build_run_report(s3=s3, state=_state(), history_events=_history(), scratch=scratch)
    key = PHASE1_PREFIX + "embeddings/S1.parquet"
    assert key not in downloaded and not list(scratch.rglob("*.parquet"))
    metadata = pq.ParquetFile(parquet).metadata
    assert metadata.num_row_groups > 1
    column = pq.ParquetFile(parquet).schema_arrow.get_field_index("embedding")
    codes = sum(metadata.row_group(g).column(column).total_compressed_size for g in range(metadata.num_row_groups))
    # The embedding column and the footer (pyarrow reads the file's last 64 KiB for it), each row group's read
    # within a 64 KiB buffer.
    assert s3.fetched[key] <= codes + (64 << 10) * (metadata.num_row_groups + 1)
    assert summary.outputs == [run_report.REPORT_NAME, run_report.DATA_ZIP]
