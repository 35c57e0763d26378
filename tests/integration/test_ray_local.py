"""Phase 1 on a real local Ray head (token auth on) through the Ray Jobs REST API, against a moto S3 server:
the adapter's submit/status/cancel/logs, and the Ray Data job, whose merged outputs equal `helixflow preprocess`
on the same input."""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from helixflow.errors import ClusterUnavailable
from helixflow.phase1.engine import process_file
from helixflow.phase1.simulate import write_sample
from helixflow.pipeline.jobs import TERMINAL_STATES, JobSpec, backend_for, poll
from helixflow.pipeline.keys import results_prefix
from helixflow.pipeline.phase1_lambda import engine_params, merge_chunks, split_into_chunks
from helixflow.pipeline.params import RunParameters
from helixflow.pipeline.stage_jobs import phase1_spec
from helixflow.pipeline.state import PipelineState
from helixflow_local.ray_head import LocalRay, free_port
from tests.helpers import pipeline_state, relative_files, same_outputs

pytestmark = pytest.mark.integration

BUCKET = "helixflow-ray-test"
AWS = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


@pytest.fixture(scope="module")
def moto_s3():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    patch = pytest.MonkeyPatch()
    # The test's own boto3 clients (split, merge, the adapter's progress reads) and the job's, through runtime_env.
    for name, value in {**AWS, "AWS_ENDPOINT_URL": endpoint}.items():
        patch.setenv(name, value)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    yield {**AWS, "AWS_ENDPOINT_URL": endpoint}
    patch.undo()
    server.stop()


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    with LocalRay(tmp_path_factory.mktemp("ray")) as head:
        print(f"ray head up in {head.start_seconds:.1f} s, PSS {head.pss_bytes() / 2**20:.0f} MiB")
        yield head


@pytest.fixture
def adapter(ray_head, moto_s3, monkeypatch):
    for name, value in ray_head.environment().items():
        monkeypatch.setenv(name, value)
    return backend_for("ray")


def _until_terminal(backend, handle, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handle, status = poll(backend, handle)
        if status.state in TERMINAL_STATES:
            return handle, status
        time.sleep(0.5)
    raise AssertionError(f"job {handle.job_id} still {handle.state} after {timeout} s")


def _arguments(run_id: str, manifest_key: str) -> list[str]:
    request = {"bucket": BUCKET, "sample": "s1", "run_id": run_id, "inputs": []}
    return ["--bucket", BUCKET, "--manifest-key", manifest_key, "--request-json", json.dumps(request),
            "--params-json", "{}"]


def _spec(run_id: str, arguments: list[str], environment: dict[str, str]) -> JobSpec:
    return JobSpec(stage="phase1", placement="ray", run_id=run_id, sample="s1", bucket=BUCKET,
                   work_prefix=f"work/s1/{run_id}/phase1/", module="helixflow.phase1.ray_job", arguments=arguments,
                   environment=environment)


def test_head_listens_on_loopback_only_and_wants_the_token(ray_head):
    addresses = ray_head.listening_addresses()
    assert addresses
    for address in addresses:
        host = ipaddress.ip_address(address.rsplit(":", 1)[0])
        assert (getattr(host, "ipv4_mapped", None) or host).is_loopback, address
    for headers, expected in (({}, 401), ({"Authorization": "Bearer not-the-token"}, 403)):
        request = urllib.request.Request(ray_head.url + "/api/jobs/", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == expected


def test_a_wrong_token_is_a_named_error(ray_head, monkeypatch, tmp_path):
    for name, value in ray_head.environment().items():
        monkeypatch.setenv(name, value)
    (tmp_path / "token").write_text("not-the-token")
    monkeypatch.setenv("RAY_JOBS_TOKEN_FILE", str(tmp_path / "token"))
    with pytest.raises(ClusterUnavailable) as refused:
        backend_for("ray").submit(_spec("wrong-token", [], {}))
    assert refused.value.code == "RAY_FORBIDDEN"


def test_a_failing_job_reports_failed_with_its_message_and_log_tail(adapter, moto_s3, ray_head):
    # A manifest outside the run's work prefix: the driver refuses it with a named error before starting Ray.
    arguments = _arguments("failing", "work/other/run/phase1/chunks.json")
    handle = adapter.submit(_spec("failing", arguments, moto_s3))
    handle, status = _until_terminal(adapter, handle)
    assert (status.state, status.native_state, status.exit_code) == ("FAILED", "FAILED", 1)
    assert "exit code 1" in status.message
    assert any("MANIFEST_OUTSIDE_RUN" in line for line in status.log_tail), status.log_tail
    # The console's job log: the same Jobs API log through the stack's token, its last lines only.
    from helixflow_local.console.job_logs import JobLogs
    from helixflow_local.history import Job

    job = Job(stage="phase1", backend="ray", job_id=handle.job_id, state="FAILED", placement="ray")
    shown = JobLogs(ray_head.environment()).tail(job, lines=3)
    assert shown.problem is None and shown.lines == status.log_tail[-3:]
    assert shown.source.endswith(f"/api/jobs/{handle.job_id}/logs")


def test_stop_ends_the_job_as_cancelled(adapter, moto_s3):
    handle = adapter.submit(_spec("stopped", _arguments("stopped", "work/s1/stopped/phase1/chunks.json"), moto_s3))
    adapter.cancel(handle)
    handle, status = _until_terminal(adapter, handle)
    assert (status.state, status.native_state) == ("CANCELLED", "STOPPED")


def _paired_sample(s3, directory: Path, sample: str, run_id: str) -> dict:
    paths = write_sample(directory, 4000, paired=True, fmt="gzip", fragment_mean=180.0)
    inputs = []
    for mate, path in enumerate(paths, start=1):
        key = f"incoming/{sample}_R{mate}.fastq.gz"
        s3.upload_file(path, BUCKET, key)
        head = s3.head_object(Bucket=BUCKET, Key=key)
        inputs.append({"key": key, "mate": mate, "etag": head["ETag"], "size": head["ContentLength"]})
    return {"status": "ready", "bucket": BUCKET, "sample": sample, "run_id": run_id, "inputs": inputs,
            "params": RunParameters().model_dump(), "results_prefix": results_prefix(sample, run_id),
            "identity": f"identity-of-{run_id}"}, paths


def test_phase1_as_a_ray_data_job_equals_preprocess(adapter, ray_head, moto_s3, tmp_path):
    s3 = boto3.client("s3")
    request, paths = _paired_sample(s3, tmp_path / "in", "rayse", "run-ray-1")
    chunks = split_into_chunks(s3=s3, request=request, scratch=tmp_path / "split", chunk_bytes=400_000)
    assert chunks["chunk_count"] >= 3
    plan = {"phase1": {"placement": "ray", "reason": "test", "input_bytes": 0, "decompressed_mb": 0.0,
                       "compression_ratios": [], "validation": "single", "validate_seconds": 0.0,
                       "chunk_bytes": 400_000, "expected_chunks": chunks["chunk_count"], "lambda_seconds": 0.0,
                       "lambda_usd": 0.0, "cluster_seconds": 0.0, "cluster_usd": 0.0}}
    state = PipelineState(**pipeline_state(request["run_id"], sample=request, chunks=chunks, plan=plan))
    # The spec SubmitJob builds, with the moto endpoint for the job's S3 clients.
    spec = phase1_spec(state).model_copy(update={"environment": moto_s3})
    handle = adapter.submit(spec)
    # A retried Submit hands back the same job instead of starting a second one.
    again = adapter.submit(spec)
    assert again.job_id == handle.job_id == "run-ray-1-phase1"
    assert [job["submission_id"] for job in ray_head.status()["jobs"]].count(handle.job_id) == 1
    handle, status = _until_terminal(adapter, handle)
    # The log as text: a tuple's repr is cut to a line, which hid why a job failed once under CI's load.
    assert status.state == "SUCCEEDED", "\n".join([str(status.message), *adapter.log_tail(handle)])
    assert status.details["chunks_done"] == status.details["chunk_count"] == chunks["chunk_count"]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="results/").get("KeyCount", 0) == 0
    parts = [key for key in adapter.outputs(handle) if key.endswith(".json") and "/parts/" in key]
    assert len(parts) == chunks["chunk_count"]

    merged = merge_chunks(s3=s3, request=request, chunk_count=chunks["chunk_count"], scratch=tmp_path / "merge")
    pipeline_dir = tmp_path / "pipeline"
    for relative in merged["outputs"]:
        target = pipeline_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(BUCKET, merged["staged_prefix"] + relative, str(target))
    local = tmp_path / "local"
    process_file(paths[0], paths[1], str(local), request["sample"], engine_params(request["params"]))
    expected = relative_files(local)
    assert set(expected) == set(merged["outputs"])
    same_outputs(pipeline_dir, local, [p for p in expected if not p.endswith(".html")])
