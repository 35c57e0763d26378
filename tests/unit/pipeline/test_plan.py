"""PlanPhase1 (Mashup placement from the measured profile) and the profile fitting it reads."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from helixflow.errors import ClusterNotConfigured, InputTooLarge
from helixflow.pipeline import plan as planning
from helixflow.pipeline import profiles
from helixflow.pipeline.publish import trace_rows
from helixflow.pipeline.state import PlacementPrediction, SampleInput
from tests.helpers import ROOT

GB = 1024 ** 3
PROFILE = profiles.load_profile(profiles.PROFILE_PATH)


def paired(gigabytes: float) -> list[SampleInput]:
    half = int(gigabytes * GB / 2)
    return [SampleInput(key="incoming/S1_R1.fastq.gz", etag="a", size=half, mate=1),
            SampleInput(key="incoming/S1_R2.fastq.gz", etag="b", size=half, mate=2)]


@pytest.fixture
def no_ray(monkeypatch):
    for name in ("RAY_JOBS_URL", "HELIXFLOW_JOB_BACKEND", "HELIXFLOW_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ray(monkeypatch, no_ray):
    monkeypatch.setenv("RAY_JOBS_URL", "http://127.0.0.1:1")


def test_a_small_sample_goes_to_lambda_with_both_predictions_and_the_reason(no_ray):
    placed = planning.plan_phase1(paired(0.2))
    assert placed.placement == "lambda" and placed.reason.startswith("bursty, stateless")
    lam, ray = placed.predictions
    assert (lam.placement, ray.placement) == ("lambda", "ray") and lam.feasible
    # A cold cluster pays its start-up and idle tail: slower and dearer for a small sample.
    assert lam.seconds < ray.seconds and lam.usd < ray.usd
    assert ray.startup_seconds == PROFILE["platforms"]["ray"]["startup_cold_s"]
    assert (placed.lambda_seconds, placed.cluster_usd) == (lam.seconds, ray.usd)
    assert placed.profile_version == PROFILE["version"] and placed.objective == planning.OBJECTIVE


def test_past_one_functions_disk_the_cluster_takes_it_and_says_why(ray):
    placed = planning.plan_phase1(paired(5))
    assert placed.placement == "ray" and "would not fit one Lambda" in placed.reason
    assert not placed.predictions[0].feasible and "scratch" in placed.predictions[0].limit


def test_past_one_functions_disk_without_a_ray_head_fails_named(no_ray):
    with pytest.raises(ClusterNotConfigured) as caught:
        planning.plan_phase1(paired(5))
    assert caught.value.code == "RAY_NOT_CONFIGURED" and caught.value.details["placement"] == "ray"


def test_requested_lambda_too_large_fails_named_and_requested_ray_is_honoured(ray):
    with pytest.raises(InputTooLarge) as caught:
        planning.plan_phase1(paired(5), "lambda")
    assert caught.value.code == "TOO_LARGE_FOR_LAMBDA"
    assert planning.plan_phase1(paired(0.01), "ray").placement == "ray"


def test_the_objective_is_cost_within_the_deadline_else_the_fastest():
    cheap_slow = PlacementPrediction(placement="lambda", seconds=600, usd=0.5, feasible=True)
    dear_fast = PlacementPrediction(placement="ray", seconds=400, usd=2.0, feasible=True)
    options = {"lambda": cheap_slow, "ray": dear_fast}
    assert planning.choose(options, deadline_s=3600)[0] == "lambda"
    assert planning.choose(options, deadline_s=500)[0] == "ray"
    placement, why = planning.choose(options, deadline_s=100)
    assert placement == "ray" and "no placement meets" in why


def test_a_warm_cluster_skips_start_up_and_idle_tail():
    cold = planning.predict_phase1(paired(3))["ray"]
    warm = planning.predict_phase1(paired(3), cluster=planning.ClusterState(idle_workers=16))["ray"]
    assert warm.seconds == pytest.approx(cold.seconds - PROFILE["platforms"]["ray"]["startup_cold_s"]
                                         + PROFILE["platforms"]["ray"]["startup_warm_s"], abs=0.2)
    assert warm.usd < cold.usd


def test_the_planner_reads_the_profile_file(tmp_path, monkeypatch, no_ray):
    slow = json.loads(json.dumps(PROFILE))
    slow["stages"]["chunk"]["rate_mb_s"] /= 10
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(slow))
    before = planning.plan_phase1(paired(0.5)).lambda_seconds
    monkeypatch.setenv("HELIXFLOW_PROFILE", str(path))
    assert planning.plan_phase1(paired(0.5)).lambda_seconds > before


def test_the_distributed_design_lifts_lambdas_disk_limit_up_to_what_one_mates_scan_reads():
    assert not planning.predict_phase1(paired(20))["lambda"].feasible
    assert planning.predict_phase1(paired(20), distributed=True)["lambda"].feasible
    # One function reads each mate once (gzip is one stream): past what it inflates in 60% of Lambda's 15
    # minutes (the profile's pass rate at its gzip ratio), its scan is the limit.
    profile = planning.load_profile()
    mate_gb = (planning.SAFETY * 900 * profile["distributed"]["scan_mb_s_per_mate"] / profile["gzip_ratio"]["value"]
               * 2**20 / GB)
    assert planning.predict_phase1(paired(1.9 * mate_gb), distributed=True)["lambda"].feasible
    assert "ScanMate over" in planning.predict_phase1(paired(2.1 * mate_gb), distributed=True)["lambda"].limit


# ------------------------------------------------------------------------------------------ profiles


def _obs(stage: str, mb: float, seconds: float, vcpus: float = 1.0, run: str = "r") -> profiles.Observation:
    return profiles.Observation(run_id=run, stage=stage, placement="lambda", input_bytes=int(mb * 2 ** 20 / 3),
                                decompressed_mb=mb, reads=0, wall_s=seconds, vcpus=vcpus)


def test_fit_recovers_overhead_and_rate_from_runs_of_different_sizes():
    observed = [_obs("split", mb, 2.0 + mb / 100.0, run=f"r{i}") for i, mb in enumerate((100, 400, 1600))]
    fitted = profiles.fit(observed, PROFILE)
    model = fitted["stages"]["split"]
    assert model["rate_mb_s"] == pytest.approx(100.0) and model["overhead_s"] == pytest.approx(2.0)
    assert model["observations"] == 3 and model["source"].startswith("measured")
    assert fitted["stages"]["merge"] == PROFILE["stages"]["merge"]  # unobserved stages keep the initial profile
    assert fitted["version"] == "fitted-3-runs"
    assert fitted["gzip_ratio"] == PROFILE["gzip_ratio"]


def test_fit_of_one_size_keeps_the_overhead_and_engine_rates_are_per_vcpu():
    fitted = profiles.fit([_obs("chunk", 340, 1.0 + 2.0, vcpus=1.7)], PROFILE)
    overhead = PROFILE["stages"]["chunk"]["overhead_s"]
    assert fitted["stages"]["chunk"]["rate_mb_s"] == pytest.approx(340 / 1.7 / (3.0 - overhead))


def test_observations_of_a_published_run_and_the_store_round_trip(tmp_path):
    history = json.loads((ROOT / "tests" / "events" / "history_lambda_path_at_publish.json").read_text())
    finished = datetime.fromisoformat(history[-1]["timestamp"]) + timedelta(milliseconds=250)
    rows = trace_rows(history, item_counts={"ProcessChunks": 3}, running_until=finished)
    params = {"run_id": "run-9", "inputs": [{"key": "incoming/S1.fastq.gz", "size": 3_000_000}],
              "stages": {"validation": {"records": 1000, "reports": [{"decompressed_bytes": 9_000_000}]}}}
    functions = {"ProcessChunks": {"memory_mb": 3008, "max_concurrency": 40}, "Validate": {"memory_mb": 2048}}
    observed = profiles.observations_from_run(params, rows, functions=functions, profile=PROFILE)
    by_stage = {o.stage: o for o in observed}
    assert set(by_stage) == {"validate", "split", "chunk", "merge"}
    chunk_row = next(r for r in rows if r["name"] == "ProcessChunks")
    assert by_stage["chunk"].items == 3 and by_stage["chunk"].wall_s == pytest.approx(chunk_row["duration_ms"] / 1000)
    assert by_stage["chunk"].decompressed_mb == pytest.approx(9_000_000 / 2 ** 20 / 3)
    assert by_stage["validate"].memory_mb == 2048 and by_stage["validate"].cpu_s is None
    profiles.write_store(tmp_path, "run-9", observed)
    assert profiles.read_store(tmp_path) == observed
    fitted = profiles.fit(observed, PROFILE)
    assert fitted["gzip_ratio"]["value"] == pytest.approx(9_000_000 / 3_000_000, abs=1e-3)
    # 9 MB of work is all overhead: stored, not fitted.
    assert fitted["stages"]["chunk"]["rate_mb_s"] == PROFILE["stages"]["chunk"]["rate_mb_s"]
    assert fitted["stages"]["chunk"]["skipped_observations"] == 1


def test_phase2_records_both_partitions_predictions_with_the_queue_wait():
    from helixflow.pipeline.state import Phase1Summary

    summary = Phase1Summary(outputs=["embeddings/S1.parquet"], staged_prefix="work/S1/x/", reads_before=20_000_000,
                            reads_after=20_000_000, chunks=4)
    placed = planning.plan_phase2(summary, "S1", "off")
    cpu, gpu = placed.predictions
    assert (cpu.placement, gpu.placement) == ("slurm-cpu", "slurm-gpu")
    assert cpu.startup_seconds == PROFILE["platforms"]["slurm-cpu"]["queue_wait_cold_s"]
    assert gpu.seconds - gpu.startup_seconds < cpu.seconds - cpu.startup_seconds  # a GPU rank searches faster
    warm = planning.predict_phase2(20_000_000, placed.ranks, queue_wait_s={"slurm-cpu": 0.0})["slurm-cpu"]
    assert warm.seconds == pytest.approx(cpu.seconds - cpu.startup_seconds, abs=0.2) and warm.usd < cpu.usd
