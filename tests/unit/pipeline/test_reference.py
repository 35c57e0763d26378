"""A run's reference: validated before any work with the FASTA rules' positions, once per content (ETag)."""

import gzip
import io

import boto3
import numpy as np
import pytest
from moto import mock_aws

from helixflow.errors import InvalidReference
from helixflow.pipeline.reference import CACHE_ROOT, prepare_reference
from helixflow.seq.fasta import fasta_lines, scan_fasta

BUCKET = "helixflow-reference-test"
GOOD = b">chr1 first contig\nACGTACGTNN\nacgtRY\n>chr2\nGGGG\n"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def scan(content: bytes):
    return list(scan_fasta(fasta_lines(io.BytesIO(content), name="ref.fa"), name="ref.fa"))


@pytest.mark.parametrize("content, code, line, byte_offset", [
    (b"ACGT\n>chr1\nACGT\n", "SEQUENCE_BEFORE_HEADER", 1, 0),
    (b">chr1\nACGT\nACGTXACGT\n", "INVALID_SYMBOL", 3, 15),  # the X itself: 6 + 5 + 4
    (b">chr1\n  AC*GT\n", "INVALID_SYMBOL", 2, 10),  # leading blanks count towards the byte offset
    (b">chr1\nACGT\n>chr2\n>chr3\nAC\n", "EMPTY_SEQUENCE", 3, 11),
    (b">chr1\nACGT\n>chr1\nACGT\n", "DUPLICATE_NAME", 3, 11),
    (b">chr1\nAC\n> \nAC\n", "EMPTY_NAME", 3, 9),
    (b"\n\n", "NO_SEQUENCES", 2, 2),
])
def test_each_fasta_defect_is_named_with_its_line_and_byte(content, code, line, byte_offset):
    with pytest.raises(InvalidReference) as raised:
        scan(content)
    assert raised.value.code == code
    assert (raised.value.position.line, raised.value.position.byte_offset) == (line, byte_offset)


def test_gzip_is_recognised_by_its_magic_and_a_damaged_stream_is_named():
    compressed = gzip.compress(GOOD)
    contigs = list(scan_fasta(fasta_lines(io.BytesIO(compressed), name="ref"), name="ref", keep=False))
    assert [(c.name, c.length, c.lines) for c in contigs] == [("chr1", 16, []), ("chr2", 4, [])]
    with pytest.raises(InvalidReference) as raised:
        scan(compressed[: len(compressed) // 2])
    assert raised.value.code == "DAMAGED_GZIP"


def test_sequence_is_normalised_uppercase_with_ambiguity_codes_as_n():
    assert [b"".join(c.lines) for c in scan(GOOD)] == [b"ACGTACGTNNACGTNN", b"GGGG"]


def test_a_missing_reference_is_named(s3):
    with pytest.raises(InvalidReference) as raised:
        prepare_reference(s3=s3, bucket=BUCKET, key="references/nope.fa")
    assert raised.value.code == "REFERENCE_NOT_FOUND"


def test_a_bad_reference_is_refused_and_nothing_is_cached(s3):
    s3.put_object(Bucket=BUCKET, Key="references/bad.fa.gz", Body=gzip.compress(b">chr1\nACGT\nAC-GT\n"))
    with pytest.raises(InvalidReference) as raised:
        prepare_reference(s3=s3, bucket=BUCKET, key="references/bad.fa.gz")
    assert (raised.value.code, raised.value.position.file, raised.value.position.line) == (
        "INVALID_SYMBOL", "references/bad.fa.gz", 3)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=CACHE_ROOT)


def test_the_verdict_is_cached_per_content_and_reused_without_reading_the_fasta(s3):
    s3.put_object(Bucket=BUCKET, Key="references/g.fa", Body=GOOD)
    first = prepare_reference(s3=s3, bucket=BUCKET, key="references/g.fa")
    assert (first.cached, first.contigs, first.lengths) == (False, ["chr1", "chr2"], [16, 4])
    assert first.cache_prefix == f"{CACHE_ROOT}{first.etag}/"
    reads = []
    s3.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: reads.append(params["Key"]))
    # The same content under another name shares the verdict (the cache is keyed by content, not by name).
    s3.put_object(Bucket=BUCKET, Key="references/copy.fa", Body=GOOD)
    again = prepare_reference(s3=s3, bucket=BUCKET, key="references/copy.fa")
    assert (again.cached, again.etag, again.contigs) == (True, first.etag, first.contigs)
    assert reads == [f"{first.cache_prefix}reference.json"]
    # New content is a new verdict.
    s3.put_object(Bucket=BUCKET, Key="references/g.fa", Body=GOOD + b">chr3\nT\n")
    changed = prepare_reference(s3=s3, bucket=BUCKET, key="references/g.fa")
    assert (changed.cached, changed.contigs) == (False, ["chr1", "chr2", "chr3"])


def test_the_minimizer_index_is_saved_once_and_loaded_for_the_same_reference_only(tmp_path):
    from helixflow.phase2.index import MinimizerIndex
    from helixflow.phase2.reference import Reference

    rng = np.random.default_rng(7)
    buffer = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, 5000)]
    reference = Reference(("c1", "c2"), buffer.copy(), np.array([0, 3000, 5000], dtype=np.int64))
    path = str(tmp_path / MinimizerIndex.CACHE_NAME)
    built, loaded = MinimizerIndex.build_or_load(reference, path)
    assert not loaded
    again, loaded = MinimizerIndex.build_or_load(reference, path)
    assert loaded and all(np.array_equal(getattr(built, f), getattr(again, f))
                          for f in ("hashes", "positions", "strands"))
    other = Reference(("c1",), buffer.copy(), np.array([0, 5000], dtype=np.int64))
    assert not MinimizerIndex.build_or_load(other, path)[1]
