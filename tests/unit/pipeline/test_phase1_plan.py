"""PlanPhase1 sizes first, then routes: who validates comes from the objects' sizes and a sampled compression
ratio, before anything reads a whole input."""

from __future__ import annotations

import io

import boto3
import numpy as np
import pytest
from isal import igzip
from moto import mock_aws

from helixflow.fastq.bgzf import BgzfWriter
from helixflow.pipeline import plan as planning
from helixflow.pipeline.state import SampleInput

GB = 1 << 30
_RNG = np.random.default_rng(3)
# Random bases and qualities compress about as little as real reads: ~2.5 MB of gzip, more than one sample.
_SEQS = np.frombuffer(b"ACGT", np.uint8)[_RNG.integers(0, 4, (20_000, 150))].tobytes()
_QUALS = _RNG.integers(35, 75, (20_000, 150), dtype=np.uint8).tobytes()
TEXT = b"".join(b"@r%d\n%s\n+\n%s\n" % (i, _SEQS[150 * i:150 * i + 150], _QUALS[150 * i:150 * i + 150])
                for i in range(20_000))


@pytest.fixture(autouse=True)
def ray_configured(monkeypatch):
    monkeypatch.setenv("RAY_JOBS_URL", "http://127.0.0.1:1")


def gz_input(size: int, mate: int = 1) -> SampleInput:
    return SampleInput(key=f"incoming/S_R{mate}.fastq.gz", etag="e", size=size, mate=mate)


def test_small_inputs_keep_the_single_validate_and_large_ones_are_validated_per_chunk():
    small = planning.plan_phase1([gz_input(GB // 8), gz_input(GB // 8, 2)], ratios=[3.5, 3.5])
    assert small.placement == "lambda" and small.validation == "single"
    # One Validate would finish this pair in time, but it goes to Ray (Lambda's scratch cannot hold its
    # re-blocking): there the chunk runners validate as they transform.
    on_ray = planning.plan_phase1([gz_input(GB), gz_input(GB, 2)], ratios=[3.5, 3.5])
    assert on_ray.validate_seconds < planning.SAFETY * planning.LAMBDA_TIMEOUT_S
    assert on_ray.placement == "ray" and on_ray.validation == "distributed"
    assert planning.plan_phase1([gz_input(GB), gz_input(GB, 2)], ratios=[3.5, 3.5],
                                validation="single").validation == "single"
    # A 50 GB pair is validated per chunk, and Lambda takes it: each mate's pass fits its one function, and the
    # chunk functions are cheaper than a cluster within the deadline.
    large = planning.plan_phase1([gz_input(25 * GB), gz_input(25 * GB, 2)], ratios=[3.5, 3.5])
    assert large.validation == "distributed" and large.placement == "lambda"
    # The sampled ratio, not the file name, sizes the decompressed work.
    assert large.decompressed_mb == pytest.approx(50 * 1024 * 3.5, rel=1e-3)
    assert planning.plan_phase1([gz_input(GB)], ratios=[5.0]).decompressed_mb == pytest.approx(5 * 1024)


@pytest.mark.parametrize("forced", ["single", "distributed"])
def test_the_validation_parameter_overrides_the_size_rule(forced):
    assert planning.plan_phase1([gz_input(1000)], ratios=[3.0], validation=forced).validation == forced


@pytest.mark.parametrize("fmt", ["gzip", "bgzf", "none"])
def test_the_ratio_is_sampled_from_the_first_mib_of_the_object(fmt):
    if fmt == "gzip":
        blob = igzip.compress(TEXT, compresslevel=1)
    elif fmt == "bgzf":
        out = io.BytesIO()
        writer = BgzfWriter(out)
        writer.write(TEXT)
        writer.close()
        blob = out.getvalue()
    else:
        blob = TEXT
    true_ratio = len(TEXT) / len(blob)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="plan-bucket")
        etag = s3.put_object(Bucket="plan-bucket", Key="incoming/S.fastq.gz", Body=blob)["ETag"].strip('"')
        item = SampleInput(key="incoming/S.fastq.gz", etag=etag, size=len(blob), mate=0)
        (ratio,) = planning.sample_ratios(s3, "plan-bucket", [item])
    assert len(blob) > planning.SAMPLE_BYTES or fmt == "none"
    assert ratio == pytest.approx(true_ratio, rel=0.05)
