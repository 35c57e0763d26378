"""Phase 1 on Lambda: split -> Distributed Map over record-aligned chunks -> merge.

Chunking strategy (one code path for every input format):
- Split downloads the sample to scratch and makes sure each mate is random-access: plain text and BGZF already
  are; a plain gzip stream is not (a reader must inflate from the first byte), so Split re-blocks it once into
  BGZF (isal level 1) and uploads that copy under work/. It then resolves the engine parameters once for the
  sample (the auto-detected adapter), finds record boundaries every ``chunk_bytes`` decompressed bytes (the same
  record indexes in both mates) and writes the chunk manifest: per chunk and mate an S3 object, a byte range
  and the reader's coordinates inside that range.
- Each map item downloads only its byte ranges (whole BGZF blocks, or the plain-text span) and runs the engine
  on them; its trimmed reads, embeddings and statistics go to work/<sample>/<run_id>/phase1/parts/.
- Merge adds the statistics exactly, concatenates the gzip parts (gzip members concatenate) and rewrites the
  Parquet parts into one file, then uploads the results layout under results/<sample>/<run_id>/ and removes
  work/. The outputs equal `helixflow preprocess` on the same input (tests/integration/test_phase1_lambda.py).
Item payloads stay small (Step Functions' 256 KiB state limit): statistics travel through S3, not the state.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from helixflow.fastq.bgzf import BgzfWriter, block_size_at
from helixflow.pipeline import keys
from helixflow.pipeline.runs import SUMMARY_NAME, checkpoint_prefix
from helixflow.errors import IncompleteResults
from helixflow.pipeline.storage import COPY_BYTES, delete_prefix, download, get_json, list_objects, put_json, upload
from helixflow.versions import PHASE1, environment_versions

MANIFEST_NAME = "chunks.json"


def work_prefix(request: dict[str, Any]) -> str:
    return keys.work_prefix(request["sample"], request["run_id"], "phase1")


def engine_params(run_params: dict[str, Any]):
    from helixflow.phase1.engine import Params

    return Params(adapter=run_params.get("adapter"), adapter2=run_params.get("adapter2"),
                  quality=run_params.get("quality", 20), min_length=run_params.get("min_length", 15))


def _reblock_as_bgzf(source: Path, target: Path) -> None:
    from isal import igzip

    with igzip.open(source, "rb") as stream, open(target, "wb") as sink:
        writer = BgzfWriter(sink, level=1)
        for piece in iter(lambda: stream.read(COPY_BYTES), b""):
            writer.write(piece)
        writer.close()


def _ranges(path: Path, fmt: str, chunks: list) -> list[tuple[tuple[int, int | None], dict[str, Any]]]:
    """(byte range in the object, reader coordinates inside the downloaded range) per chunk."""
    out = []
    for index, chunk in enumerate(chunks):
        following = chunks[index + 1] if index + 1 < len(chunks) else None
        coordinates = {"skip": chunk.skip, "length": chunk.length, "first_record": chunk.first_record,
                       "first_byte": chunk.first_byte}
        if following is None:
            end = None
        elif fmt == "none":
            end = following.offset
        else:  # BGZF: through the block where the next chunk starts, if it starts inside it
            end = following.offset + (block_size_at(str(path), following.offset) if following.skip else 0)
        out.append(((chunk.offset, end), coordinates))
    return out


def split_into_chunks(*, s3: Any, request: dict[str, Any], scratch: Path, chunk_bytes: int) -> dict[str, Any]:
    from helixflow.phase1.engine import resolve_params
    from helixflow.phase1.reader import detect_format, plan_chunks

    bucket, prefix = request["bucket"], work_prefix(request)
    local, sources = [], []
    for item in request["inputs"]:
        path = download(s3, bucket, item["key"], scratch / "inputs" / f"mate{item['mate']}", if_match=item["etag"])
        fmt = detect_format(path)
        if fmt == "gzip":
            blocked = path.with_suffix(".bgzf")
            _reblock_as_bgzf(path, blocked)
            path.unlink()
            path, fmt = blocked, "bgzf"
            source_key = f"{prefix}inputs/{os.path.basename(item['key'])}.bgzf"
            s3.upload_file(str(path), bucket, source_key)
        else:
            source_key = item["key"]
        local.append(path)
        sources.append({"key": source_key, "format": fmt, "etag": None if source_key != item["key"] else item["etag"]})
    params = resolve_params(engine_params(request["params"]), str(local[0]), str(local[1]) if len(local) > 1 else None)
    planned = plan_chunks(str(local[0]), chunk_bytes, mate=str(local[1]) if len(local) > 1 else None)
    per_mate = list(zip(*planned)) if len(local) > 1 else [planned]
    ranges = [_ranges(path, source["format"], chunks) for path, source, chunks in zip(local, sources, per_mate)]
    items = []
    for index in range(len(planned)):
        mates = []
        for source, mate_ranges in zip(sources, ranges):
            byte_range, coordinates = mate_ranges[index]
            mates.append({"key": source["key"], "etag": source["etag"], "range": list(byte_range), **coordinates})
        items.append({"index": index, "mates": mates})
    manifest_key = prefix + MANIFEST_NAME
    put_json(s3, bucket, manifest_key, items)
    shutil.rmtree(scratch / "inputs", ignore_errors=True)
    return {"bucket": bucket, "manifest_key": manifest_key, "chunk_count": len(items), "params": params.to_dict()}


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def process_chunk_item(*, s3: Any, item: dict[str, Any], request: dict[str, Any], params: dict[str, Any],
                       scratch: Path) -> dict[str, Any]:
    from helixflow.phase1.engine import Params, process_chunk
    from helixflow.phase1.reader import Chunk

    bucket, prefix, name = request["bucket"], work_prefix(request), part_name(item["index"])
    chunks = []
    for mate_index, mate in enumerate(item["mates"]):
        local = download(s3, bucket, mate["key"], scratch / name / f"input{mate_index}", tuple(mate["range"]),
                          if_match=mate["etag"])
        chunks.append(Chunk(path=str(local), offset=0, skip=mate["skip"], length=mate["length"],
                            first_record=mate["first_record"], first_byte=mate["first_byte"]))
    parts_dir = scratch / name / "parts"
    result = process_chunk(tuple(chunks) if len(chunks) == 2 else chunks[0], Params(**params), str(parts_dir), name)
    keys = {}
    for path in [p for part in result.reads_parts for p in part] + result.embedding_parts:
        keys[path] = f"{prefix}parts/{os.path.basename(path)}"
        s3.upload_file(path, bucket, keys[path])
    document = result.to_dict()
    document["versions"] = environment_versions(PHASE1)
    document["reads_parts"] = [[keys[p] for p in part] for part in result.reads_parts]
    document["embedding_parts"] = [keys[p] for p in result.embedding_parts]
    result_key = f"{prefix}parts/{name}.json"
    put_json(s3, bucket, result_key, document)
    shutil.rmtree(scratch / name, ignore_errors=True)
    return {"index": item["index"], "result_key": result_key}


def merge_chunks(*, s3: Any, request: dict[str, Any], chunk_count: int, scratch: Path) -> dict[str, Any]:
    from helixflow.phase1.engine import ChunkResult, merge_results, write_outputs

    bucket, prefix, sample = request["bucket"], work_prefix(request), request["sample"]

    def local(key: str) -> str:
        return str(download(s3, bucket, key, scratch / "parts" / os.path.basename(key)))

    present = {obj["Key"] for obj in list_objects(s3, bucket, f"{prefix}parts/")}
    missing = [index for index in range(chunk_count) if f"{prefix}parts/{part_name(index)}.json" not in present]
    if missing:  # a map item that failed (or a map that tolerated it) must not become a silently short result
        raise IncompleteResults(f"{len(missing)} of {chunk_count} Phase 1 chunk(s) produced no result: "
                                + ", ".join(part_name(i) for i in missing[:20]), code="MISSING_OUTPUTS",
                                details={"missing_chunks": missing[:100]})
    results = []
    for index in range(chunk_count):
        document = get_json(s3, bucket, f"{prefix}parts/{part_name(index)}.json")
        # The outputs are the chunks' work, so Phase 1 reports the environment that processed them (this image
        # on the Lambda path, the cluster's on Ray), not the one that merges.
        versions = document["versions"]
        document["reads_parts"] = [[local(key) for key in part] for part in document["reads_parts"]]
        document["embedding_parts"] = [local(key) for key in document["embedding_parts"]]
        results.append(ChunkResult.from_dict(document))
    merged = replace(merge_results(results), inputs=[item["key"] for item in request["inputs"]])
    out_dir = scratch / "results"
    write_outputs(merged, str(out_dir), sample)
    # Outputs wait under the identity's checkpoint, not results/: only Publish writes results/, and a re-run
    # of this identity after a later failure resumes from here (helixflow.pipeline.runs).
    checkpoint = checkpoint_prefix(sample, request["identity"], "phase1")
    staged = checkpoint + "outputs/"
    outputs = []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(out_dir).as_posix()
        upload(s3, bucket, path, staged + relative)
        outputs.append(relative)
    summary = {"outputs": outputs, "staged_prefix": staged, "reads_before": sum(s.reads for s in merged.before),
               "reads_after": sum(s.reads for s in merged.after), "chunks": chunk_count, "versions": versions}
    put_json(s3, bucket, checkpoint + SUMMARY_NAME, summary)  # last: it marks the checkpoint complete
    delete_prefix(s3, bucket, prefix)
    shutil.rmtree(scratch, ignore_errors=True)
    return summary
