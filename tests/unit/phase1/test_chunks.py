"""Processing a file as record-aligned chunks and merging gives exactly what processing it whole gives: the same
decompressed reads, the same Parquet rows and the same JSON statistics - for plain, gzip and BGZF input."""

from __future__ import annotations

import gzip
import json

import pyarrow.parquet as pq
import pytest

from helixflow.phase1 import engine, reader, simulate, stats


@pytest.fixture
def small_samples(monkeypatch):
    # Small sample capacities make the merge raise sampling levels, the hard case for exactness.
    monkeypatch.setattr(stats, "DUPLICATION_CAPACITY", 300)
    monkeypatch.setattr(stats, "READ_SAMPLE_CAPACITY", 200)


def _run_chunks(tmp_path, chunks, params):
    results = []
    for i, chunk in enumerate(chunks):
        result = engine.process_chunk(chunk, params, str(tmp_path / "parts"), f"part-{i:05d}")
        # Through JSON, as the Lambda path carries it between states.
        results.append(engine.ChunkResult.from_dict(json.loads(json.dumps(result.to_dict()))))
    return engine.merge_results(results)


def _outputs(out_dir, sample, paired):
    paths = engine.output_paths(str(out_dir), sample, paired)
    doc = json.loads(open(paths["fastp_json"]).read())
    reads = [gzip.open(p).read() for p in paths["reads"]]
    table = pq.read_table(paths["embeddings"])
    return doc, reads, table


@pytest.mark.parametrize("fmt", ["none", "gzip", "bgzf"])
@pytest.mark.parametrize("paired", [False, True], ids=["single", "paired"])
def test_chunked_equals_whole(tmp_path, small_samples, fmt, paired):
    files = simulate.write_sample(tmp_path / "in", 3000, paired=paired, fmt=fmt, seed=3, duplicate_fraction=0.3)
    params = engine.resolve_params(engine.Params(poly_g=10), files[0], files[1] if paired else None)
    whole = (reader.whole_file(files[0]), reader.whole_file(files[1])) if paired else reader.whole_file(files[0])
    engine.write_outputs(engine.process_chunk(whole, params, str(tmp_path / "whole_parts")), str(tmp_path / "whole"),
                         "s")

    chunks = reader.plan_chunks(files[0], 70_000, mate=files[1] if paired else None)
    assert len(chunks) >= 5
    engine.write_outputs(_run_chunks(tmp_path, chunks, params), str(tmp_path / "chunked"), "s")

    doc_w, reads_w, table_w = _outputs(tmp_path / "whole", "s", paired)
    doc_c, reads_c, table_c = _outputs(tmp_path / "chunked", "s", paired)
    assert reads_c == reads_w
    assert table_c.equals(table_w)
    assert doc_c == doc_w
    assert doc_w["summary"]["before_filtering"]["total_reads"] == 3000 * (2 if paired else 1)
    assert doc_w["duplication"]["rate"] > 0.05


def test_chunks_cover_every_record_once(tmp_path):
    path = simulate.write_sample(tmp_path, 1000, paired=False, fmt="bgzf", seed=4)[0]
    chunks = reader.plan_chunks(path, 30_000)
    ids = [bytes(b.data[b.name_start[i]:b.name_end[i]]) for c in chunks for b in reader.iter_batches(c)
           for i in range(b.n)]
    assert ids == [f"sim{i}".encode() for i in range(1000)]
