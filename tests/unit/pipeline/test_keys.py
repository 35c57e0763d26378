import boto3
import pytest
from moto import mock_aws

from helixflow.errors import InvalidKey
from helixflow.pipeline.keys import (bounded_component, errors_prefix, parse_incoming_key, results_prefix,
                                     sample_from_path)


@pytest.mark.parametrize(
    ("key", "sample", "mate", "folder"),
    [
        ("incoming/S1.fastq.gz", "S1", 0, "incoming/"),
        ("incoming/S1_R1.fastq.gz", "S1", 1, "incoming/"),
        ("incoming/S1_R2.fq", "S1", 2, "incoming/"),
        ("incoming/S1_1.fq.gz", "S1", 1, "incoming/"),
        ("incoming/S1_2.fastq", "S1", 2, "incoming/"),
        ("incoming/S1_L001_R1_001.fastq.gz", "S1_L001", 1, "incoming/"),
        ("incoming/S1_L001_R2_001.fastq.gz", "S1_L001", 2, "incoming/"),
        ("incoming/projectA/tumour-3.fastq", "tumour-3", 0, "incoming/projectA/"),
    ],
)
def test_sample_id_and_mate_come_from_the_file_name(key, sample, mate, folder):
    parsed = parse_incoming_key(key)
    assert (parsed.sample, parsed.mate, parsed.folder) == (sample, mate, folder)


def test_mates_share_pairing_identity_and_sidecar():
    r1, r2 = parse_incoming_key("incoming/p/S1_R1.fq.gz"), parse_incoming_key("incoming/p/S1_R2.fq.gz")
    assert r1.pairing_key == r2.pairing_key == "incoming/p/S1"
    assert r1.sidecar_key == "incoming/p/S1.json"


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("results/S1.fastq", "OUTSIDE_PREFIX"),
        ("incoming/../results/evil.fastq", "UNSAFE_KEY"),
        # Keys arrive decoded (the local poller decodes the S3 -> SQS encoding once); decoding them again would
        # turn these into incoming/../results/evil.fastq, incoming/conf.fastq and a mate of vic_R1.
        ("incoming%2F..%2Fresults%2Fevil.fastq", "OUTSIDE_PREFIX"),
        ("incoming/con%66.fastq", "UNSAFE_KEY"),
        ("incoming/vic%5FR2.fastq", "UNSAFE_KEY"),
        ("incoming/./S1.fastq", "UNSAFE_KEY"),
        ("incoming//S1.fastq", "UNSAFE_KEY"),
        ("incoming/a b.fastq", "UNSAFE_KEY"),
        ("incoming/a+b.fastq", "UNSAFE_KEY"),  # '+' decodes to a space
        ("incoming/$(reboot).fastq", "UNSAFE_KEY"),
        ("incoming/S1.fastq;rm", "UNSAFE_KEY"),
        ("incoming/S1.bam", "NOT_FASTQ_NAME"),
        ("incoming/S1.FASTQ", "NOT_FASTQ_NAME"),
        ("incoming/.fastq", "BAD_SAMPLE_NAME"),
        ("incoming/_R1.fastq", "BAD_SAMPLE_NAME"),
    ],
)
def test_unsafe_or_foreign_keys_are_rejected_with_a_named_code(key, code):
    with pytest.raises(InvalidKey) as caught:
        parse_incoming_key(key)
    assert caught.value.code == code


def test_overlong_key_is_rejected():
    with pytest.raises(InvalidKey):
        parse_incoming_key("incoming/" + "a" * 600 + ".fastq")


def test_output_prefixes_stay_inside_their_folder():
    assert results_prefix("S1", "run-1") == "results/S1/run-1/"
    assert errors_prefix("S1", "run-1") == "errors/S1/run-1/"
    with pytest.raises(InvalidKey):
        results_prefix("..", "run-1")
    with pytest.raises(InvalidKey):
        errors_prefix("S1", "a/b")


def test_bounded_component_keeps_long_names_short_and_distinct():
    long_a, long_b = "a" * 1000, "a" * 999 + "b"
    assert len(bounded_component(long_a)) == 64
    assert bounded_component(long_a) != bounded_component(long_b)
    assert bounded_component("S1") == "S1"


@pytest.mark.parametrize(("file_name", "sample"), [
    ("S1_L001_R1_001.fastq.gz", "S1_L001"), ("S1_L001_R2_001.fastq.gz", "S1_L001"), ("S1_R1.fastq.gz", "S1"),
    ("S1_2.fq", "S1"), ("S1.fastq", "S1"), ("tumour-3.fq.gz", "tumour-3"), ("S1_R3.fastq", "S1_R3"),
])
def test_one_sample_name_rule_for_the_pipeline_preprocess_align_and_failure_reports(file_name, sample):
    """The same file is the same sample wherever it is named: the pipeline's key parser, the local commands
    (`preprocess`, `align`, `cluster`, the MPI driver: sample_from_path / phase2.engine.sample_name) and the
    folder a failure report is written to."""
    from helixflow.phase2.engine import sample_name
    from helixflow.pipeline.failure import record_failure

    assert parse_incoming_key(f"incoming/{file_name}").sample == sample
    assert sample_from_path(f"/data/run 7/{file_name}") == sample == sample_name([f"reads/{file_name}"])
    assert sample_from_path(f"results/{sample}/embeddings/{sample}.parquet") == sample

    state = {"run_id": "run-1", "event": {"detail": {"object": {"key": f"incoming/{file_name}"}}},
             "failure": {"Error": "InvalidKey", "Cause": "refused"}}
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="helixflow-keys-test")
        record = record_failure(s3=s3, bucket="helixflow-keys-test", state=state)
    assert record["error_key"] == f"errors/{sample}/run-1/error.json"
