"""The "ray" job adapter against a recording HTTP server (the request it sends, how it reads Ray's answers) and
its configuration errors; tests/integration/test_ray_local.py runs it against a real Ray head."""

from __future__ import annotations

import json
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from moto import mock_aws

from helixflow.errors import ClusterNotConfigured, ClusterUnavailable
from helixflow.pipeline import ray_jobs
from helixflow.pipeline.jobs import JobSpec, backend_for
from helixflow_local.ray_head import free_port

SPEC = JobSpec(stage="phase1", placement="ray", run_id="run-1", sample="s$(touch pwned)", bucket="helixflow-b",
               work_prefix="work/s/run-1/phase1/", module="helixflow.phase1.ray_job",
               arguments=["--sample", "s$(touch pwned)", "--params-json", '{"adapter": "AG; rm -rf /"}'],
               environment={"AWS_DEFAULT_REGION": "eu-west-1"})


class _Ray(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, dict, str]] = []
    answers: dict[tuple[str, str], tuple[int, object]] = {}

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        self.requests.append((method, self.path, body, self.headers.get("Authorization")))
        status, payload = self.answers.get((method, self.path), (404, {"error": "not found"}))
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's names
        self._answer("GET")

    def do_POST(self):  # noqa: N802
        self._answer("POST")

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_ray(monkeypatch, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ray)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Ray.requests, _Ray.answers = [], {}
    (tmp_path / "token").write_text("secret-token\n")
    monkeypatch.setenv("RAY_JOBS_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("RAY_JOBS_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("RAY_JOB_PYTHON", "/opt/venv/bin/python")
    yield _Ray
    server.shutdown()


def test_submit_sends_a_quoted_argument_vector_with_the_token(fake_ray):
    fake_ray.answers[("POST", "/api/jobs/")] = (200, {"job_id": "raysubmit_1", "submission_id": "run-1-phase1"})
    handle = backend_for("ray").submit(SPEC)
    assert (handle.job_id, handle.backend, handle.details) == ("run-1-phase1", "ray", {"bucket": "helixflow-b"})
    method, path, body, authorization = fake_ray.requests[0]
    assert (method, path, authorization) == ("POST", "/api/jobs/", "Bearer secret-token")
    assert shlex.split(body["entrypoint"]) == ["/opt/venv/bin/python", "-m", SPEC.module, *SPEC.arguments]
    assert body["submission_id"] == "run-1-phase1"
    assert body["runtime_env"] == {"env_vars": {"AWS_DEFAULT_REGION": "eu-west-1"}}
    assert body["metadata"] == {"sample": SPEC.sample, "run_id": "run-1", "stage": "phase1",
                                "work_prefix": SPEC.work_prefix}


def test_a_repeated_submission_id_is_the_job_already_submitted(fake_ray):
    fake_ray.answers[("POST", "/api/jobs/")] = (500, "Job with submission_id run-1-phase1 already exists.")
    fake_ray.answers[("GET", "/api/jobs/run-1-phase1")] = (200, {"status": "RUNNING"})
    assert backend_for("ray").submit(SPEC).job_id == "run-1-phase1"


def test_other_server_errors_are_named(fake_ray):
    fake_ray.answers[("POST", "/api/jobs/")] = (500, "runtime_env is invalid")
    with pytest.raises(ClusterUnavailable) as refused:
        backend_for("ray").submit(SPEC)
    assert refused.value.code == "RAY_SUBMIT_REJECTED"


@pytest.mark.parametrize(("status", "code"), [(401, "RAY_UNAUTHENTICATED"), (403, "RAY_FORBIDDEN")])
def test_authentication_failures_are_named(fake_ray, status, code):
    fake_ray.answers[("POST", "/api/jobs/")] = (status, "no")
    with pytest.raises(ClusterUnavailable) as refused:
        backend_for("ray").submit(SPEC)
    assert refused.value.code == code


def test_an_unreachable_head_is_named(monkeypatch, tmp_path):
    (tmp_path / "token").write_text("t")
    monkeypatch.setenv("RAY_JOBS_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("RAY_JOBS_TOKEN_FILE", str(tmp_path / "token"))
    with pytest.raises(ClusterUnavailable) as refused:
        backend_for("ray").submit(SPEC)
    assert refused.value.code == "RAY_UNREACHABLE"


@pytest.mark.parametrize("environment", [{}, {"RAY_JOBS_URL": "http://10.0.0.1:8265"},
                                         {"RAY_JOBS_TOKEN_FILE": "/nonexistent"},
                                         {"RAY_JOBS_URL": "http://10.0.0.1:8265", "RAY_JOBS_TOKEN_FILE": "/nonexistent"}])
def test_no_head_or_no_token_is_not_configured(monkeypatch, environment):
    for name in ("RAY_JOBS_URL", "RAY_JOBS_TOKEN_FILE", "RAY_JOBS_TOKEN_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ClusterNotConfigured) as missing:
        backend_for("ray")
    assert missing.value.code == "RAY_NOT_CONFIGURED"


def test_the_token_comes_from_secrets_manager_in_aws(monkeypatch):
    monkeypatch.delenv("RAY_JOBS_TOKEN_FILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("RAY_JOBS_URL", "http://10.0.0.1:8265")
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="helixflow/ray-token", SecretString="tok")["ARN"]
        monkeypatch.setenv("RAY_JOBS_TOKEN_SECRET_ARN", arn)
        ray_jobs._secret_token.cache_clear()
        assert backend_for("ray")._token == "tok"


@pytest.mark.parametrize(("native", "state"), [("PENDING", "PENDING"), ("RUNNING", "RUNNING"),
                                               ("SUCCEEDED", "SUCCEEDED"), ("FAILED", "FAILED"),
                                               ("STOPPED", "CANCELLED")])
def test_ray_states_map_onto_the_seam(fake_ray, monkeypatch, native, state):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    fake_ray.answers[("POST", "/api/jobs/")] = (200, {})
    fake_ray.answers[("GET", "/api/jobs/run-1-phase1")] = (200, {"status": native, "message": "m",
                                                                  "driver_exit_code": None})
    fake_ray.answers[("GET", "/api/jobs/run-1-phase1/logs")] = (200, {"logs": "a\nb\nlast line\n"})
    backend = backend_for("ray")
    with mock_aws():  # the bucket the progress object would be in; no chunk has finished yet
        boto3.client("s3").create_bucket(Bucket="helixflow-b")
        status = backend.status(backend.submit(SPEC))
    assert (status.state, status.native_state, status.message) == (state, native, "m")
    assert status.log_tail == (["a", "b", "last line"] if state in ("FAILED", "CANCELLED") else [])
