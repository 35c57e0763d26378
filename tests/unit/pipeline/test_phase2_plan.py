"""PlanPhase2 (placement, ranks, time limit), the Phase 2 job spec, and CollectPhase2's reading of summary.json."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from helixflow.errors import ClusterNotConfigured, IncompleteResults, InvalidParameters
from helixflow.pipeline import plan as planning
from helixflow.pipeline.jobs import JobHandle
from helixflow.pipeline.params import parse_parameters
from helixflow.pipeline.stage_jobs import SPECS, cancel_running_jobs, collect_phase2, phase2_spec
from helixflow.pipeline.state import Phase1Summary, PipelineState, Plan2, ReferenceSummary
from tests.helpers import pipeline_state


def phase1(reads: int = 1000) -> Phase1Summary:
    return Phase1Summary(outputs=["embeddings/S1.parquet", "reads/S1_R2.trimmed.fastq.gz", "qc/S1.fastp.json",
                                  "reads/S1_R1.trimmed.fastq.gz"],
                         staged_prefix="work/S1/checkpoints/abc/phase1/outputs/", reads_before=reads,
                         reads_after=reads, chunks=1)


@pytest.fixture
def no_slurm(monkeypatch):
    for name in ("SLURM_REST_URL", "PCS_CLUSTER_ID", "HELIXFLOW_JOB_BACKEND"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def slurm(monkeypatch, no_slurm):
    monkeypatch.setenv("SLURM_REST_URL", "http://127.0.0.1:1")


def test_auto_without_slurm_is_off_with_the_reason(no_slurm):
    placed = planning.plan_phase2(phase1(), "S1")
    assert placed.placement == "off" and "no Slurm cluster" in placed.reason


REFERENCE = ReferenceSummary(key="references/g.fa", etag="etag1", cache_prefix="references/_cache/etag1/",
                             cached=False, contigs=["chr1"], lengths=[100])


def test_explicit_slurm_without_a_cluster_is_cluster_not_configured(no_slurm):
    with pytest.raises(ClusterNotConfigured) as raised:
        planning.plan_phase2(phase1(), "S1", "slurm-gpu")
    assert raised.value.code == "SLURM_NOT_CONFIGURED"


def test_auto_with_slurm_sizes_ranks_and_time_from_the_reads(slurm):
    small = planning.plan_phase2(phase1(1000), "S1", reference=REFERENCE)
    assert (small.placement, small.ranks, small.time_limit_minutes) == ("slurm-cpu", 1, planning.MIN_TIME_LIMIT_MIN)
    assert small.embeddings_key == "work/S1/checkpoints/abc/phase1/outputs/embeddings/S1.parquet"
    # The trimmed reads the embeddings' rows stand for, R1 first.
    assert small.reads_keys == [f"work/S1/checkpoints/abc/phase1/outputs/reads/S1_R{m}.trimmed.fastq.gz"
                                for m in (1, 2)]
    big = planning.plan_phase2(phase1(100_000_000), "S1")
    assert big.ranks == planning.MAX_RANKS and big.time_limit_minutes > small.time_limit_minutes
    assert planning.plan_phase2(phase1(), "S1", "off").placement == "off"
    assert planning.plan_phase2(phase1(), "S1", "slurm-gpu").placement == "slurm-gpu"


def test_each_rank_asks_for_the_deployments_cpus_per_rank_and_is_predicted_faster_with_them(slurm):
    one, eight = (planning.plan_phase2(phase1(100_000_000), "S1", "slurm-cpu", cpus_per_rank=c) for c in (1, 8))
    assert (one.cpus_per_rank, eight.cpus_per_rank) == (1, 8) and one.ranks == eight.ranks
    seconds = {plan.cpus_per_rank: next(p.seconds - p.startup_seconds for p in plan.predictions
                                        if p.placement == "slurm-cpu") for plan in (one, eight)}
    assert seconds[8] < seconds[1] and eight.time_limit_minutes < one.time_limit_minutes


def test_params_accept_the_placements_and_only_safe_reference_keys():
    assert parse_parameters({"phase2": "slurm-gpu"}, source="s").phase2 == "slurm-gpu"
    assert parse_parameters({"reference": "references/lambda/v1.fa.gz"}, source="s").reference
    for bad in ("../x.fa", "references/../x.fa", "references/-x.fa", "genomes/x.fa", "references/x.txt",
                "references/a b.fa", "references/$(id).fa"):
        with pytest.raises(InvalidParameters):
            parse_parameters({"reference": bad}, source="s")


def _state(slurm_placement: str = "slurm-cpu", **slots) -> PipelineState:
    sample = {"status": "ready", "run_id": "run-1", "bucket": "bkt", "sample": "S1",
              "inputs": [{"key": "incoming/S1_R1.fastq.gz", "etag": "e", "size": 10, "mate": 1}],
              "results_prefix": "results/S1/run-1/"}
    plan = Plan2(phase2=planning.plan_phase2(phase1(), "S1", slurm_placement, REFERENCE))
    return PipelineState.model_validate(pipeline_state(sample=sample, phase1=phase1().model_dump(),
                                                       plan2=plan.model_dump(), **slots))


def test_phase2_spec_is_an_argument_vector_for_the_job_module(slurm, monkeypatch):
    monkeypatch.setenv("HELIXFLOW_SLURM_JOB_ENVIRONMENT", json.dumps({"AWS_ENDPOINT_URL": "http://s3"}))
    spec = SPECS["phase2"](_state())
    assert spec.module == "helixflow.cluster.phase2_job" and spec.placement == "slurm-cpu"
    assert spec.work_prefix == "work/S1/run-1/phase2/"
    assert spec.arguments == ["--bucket", "bkt", "--embeddings-key",
                              "work/S1/checkpoints/abc/phase1/outputs/embeddings/S1.parquet",
                              "--out-prefix", "work/S1/run-1/phase2/", "--sample", "S1",
                              "--reads-key", "work/S1/checkpoints/abc/phase1/outputs/reads/S1_R1.trimmed.fastq.gz",
                              "--reads-key", "work/S1/checkpoints/abc/phase1/outputs/reads/S1_R2.trimmed.fastq.gz",
                              "--reference-key", "references/g.fa", "--reference-etag", "etag1",
                              "--reference-cache-prefix", "references/_cache/etag1/", "--device", "cpu"]
    assert spec.resources == {"ranks": 1, "cpus_per_rank": 1, "time_limit_minutes": planning.MIN_TIME_LIMIT_MIN}
    assert spec.environment == {"AWS_ENDPOINT_URL": "http://s3"}
    assert phase2_spec is SPECS["phase2"]


def _handle(**update) -> dict:
    return JobHandle(backend="slurm", job_id="7", stage="phase2", placement="slurm-cpu",
                     work_prefix="work/S1/run-1/phase2/", submitted="t", **update).model_dump()


@mock_aws
def test_collect_reads_the_summary_and_names_a_missing_one(slurm):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bkt")
    state = _state(phase2_job=_handle(state="SUCCEEDED"))
    with pytest.raises(IncompleteResults):
        collect_phase2(s3, state)
    s3.put_object(Bucket="bkt", Key="work/S1/run-1/phase2/summary.json", Body=json.dumps({
        "sample": "S1", "outputs": ["clusters/S1.clusters.tsv"], "ranks": 2, "reads": 10, "clusters": 3,
        "aligned_reads": None, "reference_key": None, "job_id": "7", "seconds": 1.0, "versions": {"numba": "x"}}))
    summary = collect_phase2(s3, state)
    assert summary.staged_prefix == "work/S1/run-1/phase2/" and summary.outputs == ["clusters/S1.clusters.tsv"]
    assert (summary.reads, summary.clusters, summary.ranks) == (10, 3, 2)


def test_cancel_running_jobs_covers_the_phase2_job(monkeypatch):
    cancelled = []

    class Backend:
        def status(self, handle):
            return type("S", (), {"state": "RUNNING"})()

        def cancel(self, handle):
            cancelled.append(handle.job_id)

    monkeypatch.setattr("helixflow.pipeline.jobs.backend_for", lambda placement: Backend())
    state = PipelineState.model_validate(pipeline_state(phase2_job=_handle(state="RUNNING")))
    assert cancel_running_jobs(state) == ["7"] and cancelled == ["7"]


def test_auto_ignores_the_test_double_override_but_explicit_slurm_uses_it(no_slurm, monkeypatch):
    monkeypatch.setenv("HELIXFLOW_JOB_BACKEND", "tests.doubles.jobs:factory")
    assert planning.plan_phase2(phase1(), "S1").placement == "off"
    assert planning.plan_phase2(phase1(), "S1", "slurm-cpu").placement == "slurm-cpu"
