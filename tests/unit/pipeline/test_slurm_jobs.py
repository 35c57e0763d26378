"""The Slurm adapter without a cluster: v0.0.43 request shapes against Slurm's published schema, PCS tokens and
PCS discovery against botocore's real service models (Stubber), state and exit-code mapping."""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import boto3
import fastjsonschema
import jwt
import pytest
from botocore.stub import Stubber

from tests.helpers import ROOT
from helixflow.errors import ClusterNotConfigured
from helixflow.pipeline import slurm_jobs
from helixflow.pipeline.jobs import JobSpec
from helixflow.pipeline.slurm_jobs import JOB_SCRIPT, V0038, V0040, SlurmJobs, SlurmRest, TokenSigner, api_for

SCHEMA = ROOT / "tests" / "fixtures" / "slurm" / "v0.0.43_job_submit_req.schema.json"
CLUSTER = "pcs_abc123"
VERSION = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
KEY = os.urandom(32)
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pcs!slurm-jwt-key-abc123-AbCdEf"
PCS_ENV = {"PCS_CLUSTER_ID": CLUSTER, "PCS_REGION": "us-east-1", "SLURM_USER_NAME": "helixflow",
           "PCS_SLURM_UID": "2001", "PCS_SLURM_GID": "2001", "PCS_SLURM_GIDS": "2001,3000"}


def spec(placement: str = "slurm-gpu", **resources) -> JobSpec:
    return JobSpec(stage="phase2", placement=placement, run_id="run-1", sample="S1", bucket="results-bucket",
                   work_prefix="work/S1/run-1/phase2/", module="helixflow.phase2.mpi",
                   arguments=["align", "a b.parquet", "; rm -rf /", "$(x)"], environment={"EXTRA": "1"},
                   resources={"ranks": 4, **resources})


class Offline(SlurmRest):
    """A client whose API version is fixed, so request bodies can be built without a server."""

    def __init__(self, api) -> None:
        super().__init__("http://unused", TokenSigner(KEY, {"sun": "u"}), lambda token: {})
        self._api = api


def cluster_response() -> dict:
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    return {"cluster": {
        "name": "helixflow", "id": CLUSTER, "arn": f"arn:aws:pcs:us-east-1:123456789012:cluster/{CLUSTER}",
        "status": "ACTIVE", "createdAt": now, "modifiedAt": now,
        "scheduler": {"type": "SLURM", "version": "25.05"}, "size": "SMALL",
        "slurmConfiguration": {"jwtAuth": {"jwtKey": {"secretArn": SECRET_ARN, "secretVersion": VERSION}},
                               "slurmRest": {"mode": "STANDARD"}},
        "networking": {"subnetIds": ["subnet-1"], "securityGroupIds": ["sg-1"]},
        "endpoints": [{"type": "SLURMCTLD", "privateIpAddress": "10.0.0.5", "port": "6817"},
                      {"type": "SLURMRESTD", "privateIpAddress": "10.0.0.5", "port": "6820"}]}}


@pytest.fixture
def stubbed_pcs():
    slurm_jobs._PCS_CACHE.clear()
    pcs = boto3.client("pcs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    secrets = boto3.client("secretsmanager", region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x")
    with Stubber(pcs) as pcs_stub, Stubber(secrets) as secrets_stub:
        # Stubber checks both the parameters and the canned response against the services' real models.
        pcs_stub.add_response("get_cluster", cluster_response(), {"clusterIdentifier": CLUSTER})
        secrets_stub.add_response("get_secret_value",
                                  {"ARN": SECRET_ARN, "Name": "pcs!slurm-jwt-key", "VersionId": VERSION,
                                   "SecretString": base64.b64encode(KEY).decode()},
                                  {"SecretId": SECRET_ARN, "VersionId": VERSION})
        yield pcs, secrets
    slurm_jobs._PCS_CACHE.clear()


def test_v0043_gpu_request_matches_slurms_schema():
    validate = fastjsonschema.compile(json.loads(SCHEMA.read_text()))
    backend = SlurmJobs(Offline(V0040("v0.0.43")), "gpu", {"HELIXFLOW_SLURM_PYTHON": "/opt/hx/bin/python"},
                        logs_in_s3=True)
    body = backend.job_request(spec(time_limit_minutes=30, nodes=2, workdir="/fsx/work"))
    validate(body)
    job = body["job"]
    assert job["script"] == JOB_SCRIPT and "script" not in {k for k in body if k != "job"}
    assert job["argv"] == ["helixflow-job", "align", "a b.parquet", "; rm -rf /", "$(x)"]
    assert job["partition"] == "gpu" and job["tres_per_node"] == "gres/gpu:4" and job["tasks"] == 4
    assert (job["minimum_nodes"], job["maximum_nodes"]) == (2, 2)
    assert job["time_limit"] == {"set": True, "infinite": False, "number": 30}
    environment = dict(entry.split("=", 1) for entry in job["environment"])
    assert environment["HELIXFLOW_MODULE"] == "helixflow.phase2.mpi"
    assert environment["HELIXFLOW_PYTHON"] == "/opt/hx/bin/python" and environment["EXTRA"] == "1"
    assert environment["HELIXFLOW_LOG_BUCKET"] == "results-bucket"
    assert environment["HELIXFLOW_LOG_PREFIX"] == "work/S1/run-1/phase2/logs/"
    assert job["standard_error"] == "/fsx/work/helixflow-phase2-S1-%j.err"


def test_the_schema_rejects_v0038_shapes():
    validate = fastjsonschema.compile(json.loads(SCHEMA.read_text()))
    body = SlurmJobs(Offline(V0038()), "cpu", {}, logs_in_s3=False).job_request(spec("slurm-cpu"))
    with pytest.raises(fastjsonschema.JsonSchemaException):
        validate(body)  # environment as an object, nodes as a list, plain time limit


def test_v0038_request_carries_arguments_as_numbered_environment():
    body = SlurmJobs(Offline(V0038()), "cpu", {}, logs_in_s3=False).job_request(spec("slurm-cpu"))
    job = body["job"]
    assert body["script"] == JOB_SCRIPT and "argv" not in job and "gres" not in job
    assert job["environment"]["HELIXFLOW_ARGC"] == "4"
    assert [job["environment"][f"HELIXFLOW_ARG_{i}"] for i in range(4)] == spec().arguments


def test_api_version_is_the_newest_supported_one():
    assert api_for(["/slurm/v0.0.37/job/submit", "/slurm/v0.0.38/job/submit", "/slurm/v0.0.38/jobs"]).version \
        == "v0.0.38"
    assert api_for([f"/slurm/v0.0.{n}/job/submit" for n in (41, 42, 43, 44)]).version == "v0.0.43"


@pytest.mark.parametrize(("states", "seam"), [
    (["PENDING"], "PENDING"), (["PENDING", "REQUEUED"], "PENDING"), (["CONFIGURING"], "PENDING"),
    (["RUNNING"], "RUNNING"), (["COMPLETING"], "RUNNING"), (["SUSPENDED"], "RUNNING"),
    (["COMPLETED"], "SUCCEEDED"), (["FAILED"], "FAILED"), (["TIMEOUT"], "FAILED"), (["NODE_FAIL"], "FAILED"),
    (["OUT_OF_MEMORY"], "FAILED"), (["BOOT_FAIL"], "FAILED"), (["DEADLINE"], "FAILED"),
    (["PREEMPTED"], "FAILED"), (["CANCELLED"], "CANCELLED")])
def test_states_map_onto_the_seam(states, seam):
    assert slurm_jobs.SLURM_STATES[V0040("v0.0.43").state({"job_state": states})] == seam
    assert slurm_jobs.SLURM_STATES[V0038().state({"job_state": states[0]})] == slurm_jobs.SLURM_STATES[states[0]]


def test_exit_codes_from_both_versions():
    v43 = V0040("v0.0.43")
    assert v43.exit_code({"exit_code": {"status": ["EXITED"], "return_code": {"set": True, "number": 3}}}) == 3
    assert v43.exit_code({"exit_code": {"status": ["SIGNALED"], "return_code": {"set": True, "number": 0},
                                        "signal": {"id": {"set": True, "number": 9}, "name": "KILL"}}}) == 137
    assert V0038().exit_code({"exit_code": 3 << 8}) == 3 and V0038().exit_code({"exit_code": 9}) == 137


def test_pcs_discovery_and_token_claims(stubbed_pcs):
    pcs, secrets = stubbed_pcs
    url, key = slurm_jobs.pcs_endpoint_and_key(CLUSTER, "us-east-1", pcs=pcs, secrets=secrets)
    assert (url, key) == ("http://10.0.0.5:6820", KEY)
    # Cached per process: a second lookup makes no call (the Stubber would fail on an unexpected one).
    assert slurm_jobs.pcs_endpoint_and_key(CLUSTER, "us-east-1", pcs=pcs, secrets=secrets) == (url, key)
    signer = TokenSigner(key, slurm_jobs.pcs_claims(PCS_ENV))
    token = signer.token()
    assert signer.token() == token  # reused until near expiry
    claims = jwt.decode(token, KEY, algorithms=["HS256"])
    assert claims["sun"] == "helixflow" and (claims["uid"], claims["gid"]) == (2001, 2001)
    assert claims["id"] == {"gecos": "helixflow", "dir": "/home/helixflow", "shell": "/bin/bash",
                            "gids": [2001, 3000]}
    assert 0 < claims["exp"] - claims["iat"] <= slurm_jobs.TOKEN_TTL_S
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_pcs_factory_sends_a_bearer_token(stubbed_pcs, monkeypatch):
    pcs, secrets = stubbed_pcs
    slurm_jobs.pcs_endpoint_and_key(CLUSTER, "us-east-1", pcs=pcs, secrets=secrets)
    backend = slurm_jobs.factory("slurm-cpu", PCS_ENV)
    assert backend.client.base_url == "http://10.0.0.5:6820" and backend.logs_in_s3
    headers = backend.client._headers_for(backend.client._signer.token())
    assert list(headers) == ["Authorization"] and headers["Authorization"].startswith("Bearer ")


@pytest.mark.parametrize("environ", [{}, {"SLURM_REST_URL": "http://127.0.0.1:1"},
                                     {"PCS_CLUSTER_ID": CLUSTER, "SLURM_USER_NAME": "u"}])
def test_missing_configuration_is_cluster_not_configured(environ):
    with pytest.raises(ClusterNotConfigured) as caught:
        slurm_jobs.factory("slurm-cpu", environ)
    assert caught.value.code == "SLURM_NOT_CONFIGURED"
