"""Phase 2 through the whole state machine: the local stack with a real local Slurm (munged, slurmctld, slurmd,
slurmrestd with JWT) as its Phase 2 cluster. Phase 1 runs on Lambda, PlanPhase2 places Phase 2 on Slurm, the job
(helixflow.cluster.phase2_job under srun) clusters (and aligns to a reference) and Publish puts its outputs in
the manifest; a job cancelled with scancel ends the run Phase2JobFailed with no manifest."""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from helixflow.phase1.simulate import write_sample
from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.stack import LocalStack
from tests.helpers import poll_until, require_tool

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "unit" / "phase2" / "genomes" / "lambda_virus.fa.gz"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_tool(all(shutil.which(d) for d in ("munged", "slurmctld", "slurmd", "slurmrestd", "scancel")),
                 "Slurm (slurm-wlm, slurmrestd, slurm-wlm-jwt-plugin, munge)")
    with LocalStack(tmp_path_factory.mktemp("stack"), slurm=True) as running:
        running.client("s3").upload_file(str(REFERENCE), running.info.bucket, "references/lambda_virus.fa.gz")
        yield running


def _paired(tmp_path: Path, name: str, pairs: int) -> list[Path]:
    return [Path(p) for p in write_sample(tmp_path / "in", pairs, paired=True, fmt="gzip", name=name,
                                          fragment_mean=180.0)]


def test_phase2_on_slurm_publishes_clusters_and_an_indexed_bam(stack, tmp_path):
    reads = _paired(tmp_path, "slurmrun", 300)
    params = {"phase2": "slurm-cpu", "reference": "references/lambda_virus.fa.gz"}
    outcome = collect(stack.info, wait_for_run(stack.info, submit(stack.info, reads, params), timeout=600),
                      tmp_path / "out")
    assert outcome.succeeded, outcome.error_document
    paths = {entry["path"] for entry in outcome.manifest["files"]}
    assert {"clusters/slurmrun.clusters.tsv", "alignments/slurmrun.bam", "alignments/slurmrun.bam.bai"} <= paths
    assert "embeddings/slurmrun.parquet" in paths  # Phase 1's outputs are published with Phase 2's
    lines = (outcome.local_dir / "clusters/slurmrun.clusters.tsv").read_text().splitlines()
    assert lines[0] == "read_id\tcluster_id\trepresentative" and len(lines) > 1
    samtools = shutil.which("samtools")
    require_tool(samtools is not None, "samtools")
    assert subprocess.run([samtools, "quickcheck", str(outcome.local_dir / "alignments/slurmrun.bam")]).returncode == 0
    stages = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())["stages"]
    assert stages["plan2"]["phase2"]["placement"] == "slurm-cpu"
    job = stages["phase2_job"]
    assert (job["backend"], job["state"], job["placement"]) == ("slurm", "SUCCEEDED", "slurm-cpu")
    assert stages["phase2"]["job_id"] == job["job_id"] and stages["phase2"]["reads"] == len(lines) - 1
    assert stages["phase2"]["aligned_reads"] == len(lines) - 1
    reference = stages["validation"]["reference"]
    assert (reference["key"], reference["contigs"]) == ("references/lambda_virus.fa.gz", ["gi|9626243|ref|NC_001416.1|"])
    assert stages["phase2"]["reference_index"] in ("built", "cached")  # another test may have built it first
    versions = (outcome.local_dir / "pipeline_info/software_versions.yml").read_text()
    assert "Phase2:" in versions and "mpi4py" in versions
    with open(outcome.local_dir / "pipeline_info/trace.tsv") as handle:
        trace = {row["name"]: row for row in csv.DictReader(handle, delimiter="\t")}
    for name in ("PlanPhase2", "SubmitPhase2Job", "PollPhase2Job", "CollectPhase2", "Publish"):
        assert trace[name]["status"] == "COMPLETED", name
    # The Slurm job's own row: its id, partition, and queue/run times from slurmrestd.
    slurm = trace["Phase2Job"]
    assert (slurm["type"], slurm["native_id"], slurm["queue"], slurm["status"]) == (
        "slurm job", job["job_id"], "cpu", "COMPLETED")
    assert slurm["submit"] <= slurm["start"] <= slurm["complete"] and slurm["duration_ms"] != ""


def test_the_reference_index_is_built_by_the_first_job_and_read_by_the_next(stack, tmp_path):
    s3 = stack.client("s3")
    # Content no other test uploads (the cache is keyed by content): the lambda genome plus a tagged contig.
    fasta = gzip.decompress(REFERENCE.read_bytes()) + f">tag_{uuid.uuid4().hex}\n{'ACGT' * 50}\n".encode()
    s3.put_object(Bucket=stack.info.bucket, Key="references/tagged.fa", Body=fasta)
    params = {"phase2": "slurm-cpu", "reference": "references/tagged.fa"}
    summaries = []
    for name in ("firstref", "secondref"):
        outcome = collect(stack.info, wait_for_run(stack.info, submit(stack.info, _paired(tmp_path, name, 100),
                                                                      params), timeout=600), tmp_path / name)
        assert outcome.succeeded, outcome.error_document
        stages = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())["stages"]
        summaries.append((stages["validation"]["reference"]["cached"], stages["phase2"]["reference_index"]))
    assert summaries == [(False, "built"), (True, "cached")]
    etag = s3.head_object(Bucket=stack.info.bucket, Key="references/tagged.fa")["ETag"].strip('"')
    cached = {o["Key"] for o in s3.list_objects_v2(Bucket=stack.info.bucket,
                                                    Prefix=f"references/_cache/{etag}/")["Contents"]}
    assert cached == {f"references/_cache/{etag}/reference.json",
                      f"references/_cache/{etag}/minimizer-index-k15-w10-v1.npz"}


def test_a_bad_reference_ends_the_run_before_any_job(stack, tmp_path):
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.info.bucket, Key="references/broken.fa", Body=b">chr1\nACGTACGT\nACGU-ACGT\n")
    before = s3.get_object(Bucket=stack.info.bucket, Key="references/broken.fa")["ETag"]
    outcome = collect(stack.info, wait_for_run(stack.info, submit(stack.info, _paired(tmp_path, "badref", 50),
                                                                  {"phase2": "slurm-cpu",
                                                                   "reference": "references/broken.fa"}),
                                               timeout=300), tmp_path / "out")
    assert (outcome.status, outcome.error, outcome.error_document["code"]) == (
        "FAILED", "InvalidReference", "INVALID_SYMBOL")
    document = outcome.error_document
    assert (document["file"], document["line"], document["byte_offset"]) == ("references/broken.fa", 3, 19)
    assert outcome.manifest is None
    jobs = stack.slurm.client().slurm("GET", "jobs").get("jobs", [])
    assert not any(j.get("name") == "helixflow-phase2-badref" for j in jobs)
    assert s3.get_object(Bucket=stack.info.bucket, Key="references/broken.fa")["ETag"] == before


def test_phase2_off_publishes_phase1_alone(stack, tmp_path):
    reads = _paired(tmp_path, "offrun", 100)
    outcome = collect(stack.info, wait_for_run(stack.info, submit(stack.info, reads, {"phase2": "off"}),
                                               timeout=600), tmp_path / "out")
    assert outcome.succeeded, outcome.error_document
    stages = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())["stages"]
    assert stages["plan2"]["phase2"]["placement"] == "off" and "phase2_job" not in stages
    assert not any(e["path"].startswith("clusters/") for e in outcome.manifest["files"])


def test_a_slurm_job_cancelled_with_scancel_fails_the_run_with_phase2_job_failed(stack, tmp_path):
    reads = _paired(tmp_path, "slurmstop", 3000)
    uploaded = submit(stack.info, reads, {"phase2": "slurm-cpu"})
    client = stack.slurm.client()

    def running_job():
        jobs = client.slurm("GET", "jobs").get("jobs", [])
        return next((str(j["job_id"]) for j in jobs if j.get("name") == "helixflow-phase2-slurmstop"
                     and str(j.get("job_state")).upper() in ("RUNNING", "['RUNNING']")), None)

    job = poll_until(running_job, timeout=400, what="the Phase 2 Slurm job to run", interval=0.3)
    env = {**os.environ, **stack.slurm.environment()}
    subprocess.run(["scancel", job], check=True, env=env, timeout=30)
    outcome = collect(stack.info, wait_for_run(stack.info, uploaded, timeout=300), tmp_path / "out")
    assert (outcome.status, outcome.error) == ("FAILED", "Phase2JobFailed")
    assert outcome.error_document["code"] == "JOB_CANCELLED"
    assert outcome.error_document["details"]["job_id"] == job
    assert outcome.manifest is None
