"""The results layout: MultiQC reads the fastp JSON and the custom content, the Parquet embeddings follow the
shared schema, and the command line runs the engine. (The run's MultiQC report: tests/unit/pipeline/test_run_report.py.)"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner

from helixflow import embedding
from helixflow.phase1 import engine
from helixflow_local.cli import main
from helixflow_local.commands.preprocess import preprocess_command


def test_multiqc_reads_the_fastp_json_and_custom_content(tmp_path, single_gz, run_tool):
    engine.process_file(single_gz, None, str(tmp_path / "out"), "sampleA")
    run_tool("multiqc", str(tmp_path / "out" / "qc"), "-o", str(tmp_path / "mqc"), "--no-ansi", "-f")
    data = tmp_path / "mqc" / "multiqc_data"
    assert (data / "multiqc_fastp.txt").read_text().splitlines()[1].split("\t")[0] == "sampleA"
    rows = [line.split("\t") for line in (data / "multiqc_general_stats.txt").read_text().splitlines()]
    row = dict(zip(rows[0], rows[1]))
    assert row["Sample"] == "sampleA"
    doc = json.loads((tmp_path / "out" / "qc" / "sampleA.fastp.json").read_text())
    kept = doc["filtering_result"]["passed_filter_reads"] / doc["summary"]["before_filtering"]["total_reads"]
    assert abs(float(row["fastp-pct_surviving_reads"]) - 100 * kept) < 1e-6
    assert abs(float(row["fastp-pct_duplication"]) - 100 * doc["duplication"]["rate"]) < 1e-6
    custom = [p for p in data.iterdir() if "helixflow_embeddings" in p.name]
    assert custom, sorted(p.name for p in data.iterdir())
    assert "sampleA" in custom[0].read_text()


def test_parquet_row_i_is_trimmed_read_i_mates_interleaved_with_its_embedding(tmp_path, pair_bgzf):
    result = engine.process_file(*pair_bgzf, str(tmp_path / "out"), "p")
    paths = engine.output_paths(str(tmp_path / "out"), "p", True)
    table = pq.read_table(paths["embeddings"])
    assert table.schema.equals(embedding.parquet_schema(), check_metadata=True)
    # The trimmed reads are not repeated in the Parquet: Phase 2 reads them from the FASTQ beside it.
    assert table.schema.names == ["read_id", "mate", "embedding"]
    kept = result.trim.status_counts[0]
    assert table.num_rows == kept
    mates = table.column("mate").to_numpy()
    assert (mates[0::2] == 1).all() and (mates[1::2] == 2).all()
    records = [gzip.open(path).read().split(b"\n") for path in paths["reads"]]
    interleaved_ids = [header[1:].split()[0].decode() for pair in zip(records[0][0::4], records[1][0::4])
                       for header in pair if header]
    assert table.column("read_id").to_pylist() == interleaved_ids
    sequences = [sequence for pair in zip(records[0][1::4], records[1][1::4]) for sequence in pair][:table.num_rows]
    codes = embedding.codes_from_column(table.column("embedding"))
    # Stored losslessly: the codes normalised are exactly the vectors Phase 2 computes from the trimmed sequence.
    np.testing.assert_array_equal(embedding.unit_vectors(codes), embedding.embed(sequences))


def test_codes_are_the_signed_kmer_counts_clipped_to_int8():
    from helixflow.seq.packing import pack

    rng = np.random.default_rng(4)
    read = bytes(np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, 150)])
    codes, kmers = embedding.embed_codes_packed(*pack([read, b"A" * 300, b"ACGTNACGT", read + b"N" + read]))
    assert kmers.tolist() == [140, 290, 0, 280]
    # Every k-mer adds +-1 to one dimension: the codes' absolute sum is at most the k-mer count, with the same
    # parity, and a read and its doubled copy have proportional codes.
    assert abs(codes[0].astype(int)).sum() <= 140 and abs(codes[0].astype(int)).sum() % 2 == 0
    np.testing.assert_array_equal(codes[3].astype(int), 2 * codes[0].astype(int))
    # 290 copies of one canonical 11-mer: one dimension, clipped at the int8 limit, still a unit vector.
    assert np.count_nonzero(codes[1]) == 1 and abs(int(codes[1][codes[1] != 0][0])) == embedding.CODE_LIMIT
    assert not codes[2].any()  # no k-mer free of N: the zero vector
    vectors = embedding.unit_vectors(codes)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), [1, 1, 0, 1], atol=1e-6)


def test_cosine_rises_with_shared_kmers():
    rng = np.random.default_rng(9)
    base = bytes(np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, 150)])
    variants = []
    for changed in (0, 10, 30, 60, 90, 120, 150):
        tail = bytes(np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, changed)])
        variants.append(base[: 150 - changed] + tail)
    vectors = embedding.embed([base] + variants)
    cosine = vectors[1:] @ vectors[0]
    assert abs(cosine[0] - 1.0) < 1e-5
    assert (np.diff(cosine) < 0).all(), cosine
    assert abs(cosine[-1]) < 0.25


def test_preprocess_command(tmp_path, single_gz):
    out = tmp_path / "out"
    res = CliRunner().invoke(preprocess_command, [single_gz, "--out", str(out), "--sample", "cliS", "--quiet",
                                                  "--adapter", "AGATCGGAAGAGC", "--min-length", "30",
                                                  "--no-embeddings"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "qc" / "cliS.fastp.json").read_text())
    assert doc["adapter_cutting"]["read1_adapter_sequence"] == "AGATCGGAAGAGC"
    assert doc["filtering_result"]["too_short_reads"] > 0
    lengths = [len(s) for s in gzip.open(out / "reads" / "cliS.trimmed.fastq.gz").read().split(b"\n")[1::4]]
    assert min(lengths) >= 30
    assert not (out / "embeddings").exists()


def test_preprocess_command_reports_invalid_fastq(tmp_path):
    bad = tmp_path / "bad.fastq"
    bad.write_bytes(b"@r1\nACGT\n+\nIIII\n@r2\nACGT\n+\nIII\n")
    res = CliRunner().invoke(main, ["preprocess", str(bad), "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 2
    assert res.stderr.startswith("InvalidFastq (SEQ_QUAL_LENGTH_MISMATCH): ")


def test_a_read_and_its_reverse_complement_get_the_same_vector():
    """Canonical k-mers: the strand a read was sequenced from cannot change its embedding - bit for bit, since
    both strands yield the same multiset of canonical k-mers (Ns and lower case included)."""
    rng = np.random.default_rng(17)
    complement = bytes.maketrans(b"ACGTNacgtn", b"TGCANtgcan")
    reads = [bytes(np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, int(n))]) for n in rng.integers(11, 300, 50)]
    reads[1] = reads[1][:40] + b"N" + reads[1][41:]
    reads[2] = reads[2].lower()
    reverse = [r.translate(complement)[::-1] for r in reads]
    forward_vectors, reverse_vectors = embedding.embed(reads), embedding.embed(reverse)
    np.testing.assert_array_equal(forward_vectors, reverse_vectors)
    assert np.all(np.abs(forward_vectors).sum(axis=1) > 0)
    # Not trivially equal: a different read gets a different vector.
    assert not np.array_equal(forward_vectors[0], forward_vectors[3])
