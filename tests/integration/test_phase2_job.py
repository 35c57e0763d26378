"""helixflow.cluster.phase2_job under mpiexec against an S3 endpoint (moto's server): rank 0 downloads, every
rank works, rank 0 uploads the outputs and summary.json under the out prefix; outputs equal the MPI driver's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.helpers import write_phase2_inputs


ROOT = Path(__file__).resolve().parents[2]
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return write_phase2_inputs(tmp_path_factory.mktemp("p2job"), 101)


def _env(endpoint: str) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "helixflow"), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("ranks", [1, 2])
def test_job_uploads_clusters_bam_and_summary(tmp_path, inputs, s3_endpoint, ranks):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="local",
                      aws_secret_access_key="local")
    bucket = f"p2job-{ranks}"
    s3.create_bucket(Bucket=bucket)
    staged = "work/S1/run/phase1/staged/"
    phase1_outputs = ["embeddings/S1.parquet", "reads/S1_R1.trimmed.fastq.gz", "reads/S1_R2.trimmed.fastq.gz"]
    for path in phase1_outputs:
        s3.upload_file(str(inputs / path), bucket, staged + path)
    s3.upload_file(str(inputs / "genome.fa"), bucket, "references/genome.fa")
    prefix = "work/S1/run/phase2/"
    # This job's own scratch root: other tests' jobs may be using theirs under /tmp at the same time.
    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    done = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, "-m", "helixflow.cluster.phase2_job",
                           "--bucket", bucket, "--embeddings-key", staged + phase1_outputs[0],
                           "--reads-key", staged + phase1_outputs[1], "--reads-key", staged + phase1_outputs[2],
                           "--out-prefix", prefix, "--sample", "S1", "--reference-key", "references/genome.fa",
                           "--device", "cpu", "--threads", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**_env(s3_endpoint), "TMPDIR": str(scratch_root)})
    assert done.returncode == 0, done.stderr
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert keys == {prefix + p for p in ("clusters/S1.clusters.tsv", "alignments/S1.bam", "alignments/S1.bam.bai",
                                         "qc/S1.flagstat.txt", "qc/S1.stats.txt", "summary.json")}
    summary = json.loads(s3.get_object(Bucket=bucket, Key=prefix + "summary.json")["Body"].read())
    assert summary["ranks"] == ranks and summary["reads"] == 202 and summary["aligned_reads"] == 202
    assert summary["outputs"] == ["clusters/S1.clusters.tsv", "alignments/S1.bam", "alignments/S1.bam.bai",
                                  "qc/S1.flagstat.txt", "qc/S1.stats.txt"]
    assert summary["clusters"] >= 1 and "numba" in summary["versions"]
    # The same clusters as the MPI driver on the local file.
    driver = subprocess.run([MPIEXEC, "-n", "1", sys.executable, "-m", "helixflow.phase2.mpi", "cluster",
                             str(inputs / "embeddings" / "S1.parquet"), "--out", str(tmp_path / "d.tsv"),
                             "--device", "cpu"],
                            capture_output=True, text=True, timeout=300, env=_env(s3_endpoint))
    assert driver.returncode == 0, driver.stderr
    got = s3.get_object(Bucket=bucket, Key=prefix + "clusters/S1.clusters.tsv")["Body"].read()
    assert got == (tmp_path / "d.tsv").read_bytes()
    assert not list(scratch_root.glob("helixflow-phase2-*"))  # every rank removed its scratch
