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

Distributed validation (the plan's ``validation`` is "distributed": an input too large for one Validate Lambda).
No function validates or re-compresses the whole input, and no pass waits on another: ScanMates runs one pass
per mate straight from S3, each in its own invocation and in parallel (``scan_mate``, i.e.
``helixflow.fastq.access.scan_input``: the offsets of every grid record from the line count, a gzip seek index
stored under work/, BGZF block offsets, the stored bytes' SHA-256); SplitIntoChunks joins the two scans into the
record-aligned chunk plan (``_join_scans``); each map item (or Ray task) reads only its span at
index points, validates its records with the validator (``helixflow.fastq.chunked``) and, when they are valid,
runs the engine on the same decompressed bytes: one pass per chunk. ValidateChunks then reports the first
defect in input order, exactly as the single Validate would, before MergeChunks writes anything.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from helixflow.fastq.bgzf import BgzfWriter, block_size_at
from helixflow.pipeline import keys, runs
from helixflow.pipeline.runs import SUMMARY_NAME, checkpoint_prefix
from helixflow.errors import IncompleteResults, InvalidFastq
from helixflow.pipeline.storage import (COPY_BYTES, MIN_PART_BYTES, ByteRange, ObjectOpener, Source, delete_prefix,
                                        download, get_json, join_objects, joinable, list_objects, open_object,
                                        put_json, read_range, upload)
from helixflow.versions import PHASE1, environment_versions

MANIFEST_NAME = "chunks.json"
# Adapter detection reads the first DETECT_READS reads of R1: the distributed pass keeps this much of them.
HEAD_BYTES = 48 << 20


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


def scan_key(request: dict[str, Any], mate: int, suffix: str) -> str:
    """A mate's pass's results under work/: the facts (``.json``) and its offsets (``.npz``)."""
    return f"{work_prefix(request)}scan/mate{mate}{suffix}"


def scan_mate(*, s3: Any, request: dict[str, Any], mate_index: int, chunk_bytes: int, scratch: Path) -> dict[str, Any]:
    """The distributed path's pass over one mate, straight from S3 (no download, no re-compression), in its own
    invocation (the ScanMates Map runs both mates at once): inflate, SHA-256 of the bytes as stored, the gzip
    seek index or the BGZF block map, and the offset of every grid record (``helixflow.fastq.chunked``); mate 1
    also resolves the engine parameters (the detected adapter) from its first records. Nothing here depends on
    the other mate: SplitIntoChunks joins the two scans into the chunk plan."""
    import numpy as np

    from helixflow.fastq.access import index_spacing, scan_input
    from helixflow.fastq.chunked import CutFinder, FileFacts, grid_records

    bucket, item = request["bucket"], request["inputs"][mate_index]
    finder = CutFinder(grid=grid_records(chunk_bytes))
    # Both readers (this pass and the index's process) fetch ahead: one GET stream alone is slower than the pass.
    with open_object(s3, bucket, item["key"], size=item["size"], if_match=item["etag"], read_ahead=True) as source:
        try:
            scan = scan_input(source, name=item["key"], finder=finder, spacing=index_spacing(chunk_bytes),
                              head_bytes=HEAD_BYTES if mate_index == 0 else 0,
                              reopen=ObjectOpener(bucket, item["key"], item["size"], item["etag"], read_ahead=True))
        except InvalidFastq:
            _name_the_gzip_defect(s3, request)
            raise
    if not scan.trailer_ok:  # cut off, trailing bytes, or several members: the validator decides
        _name_the_gzip_defect(s3, request)
    index_key = None
    if scan.index is not None:
        index_key = f"{work_prefix(request)}index/mate{item['mate']}.gzidx"
        s3.put_object(Bucket=bucket, Key=index_key, Body=scan.index)
    arrays = {"grid": np.asarray(finder.grid_offsets, np.int64)}
    if scan.blocks is not None:
        arrays.update(block_comp=scan.blocks[0], block_decomp=scan.blocks[1])
    body = io.BytesIO()
    np.savez(body, **arrays)
    s3.put_object(Bucket=bucket, Key=scan_key(request, mate_index, ".npz"), Body=body.getvalue())
    params = None
    if mate_index == 0:
        from helixflow.phase1.engine import resolve_params

        head = scratch / "head.fastq"
        head.parent.mkdir(parents=True, exist_ok=True)
        head.write_bytes(scan.head[:_complete_records_end(scan.head)])
        params = resolve_params(engine_params(request["params"]), str(head),
                                "mate 2" if len(request["inputs"]) > 1 else None).to_dict()
        head.unlink()
    facts = FileFacts(item["key"], scan.compression, scan.gzip_members, scan.compressed_bytes,
                      scan.decompressed_bytes, scan.sha256, finder.records_total)
    document = {"file": asdict(facts), "crlf": finder.crlf, "grid": finder.grid, "index_key": index_key,
                "params": params}
    put_json(s3, bucket, scan_key(request, mate_index, ".json"), document)
    return {"mate": item["mate"], "records": finder.records_total, "decompressed_bytes": scan.decompressed_bytes}


def _join_scans(*, s3: Any, request: dict[str, Any], chunk_bytes: int) -> dict[str, Any]:
    """The distributed path's Split: the chunk plan from the mates' scans (mate 1's cuts on its grid records,
    the same records in mate 2 from its grid), read from work/ where ScanMates left them."""
    import numpy as np

    from helixflow.fastq.access import bgzf_range
    from helixflow.fastq.chunked import LOOKAHEAD_BYTES, offsets_at, plan_cuts

    bucket, prefix = request["bucket"], work_prefix(request)
    scans = []
    for m in range(len(request["inputs"])):
        document = get_json(s3, bucket, scan_key(request, m, ".json"))
        with np.load(io.BytesIO(s3.get_object(Bucket=bucket, Key=scan_key(request, m, ".npz"))["Body"].read())) as npz:
            document["arrays"] = {name: npz[name] for name in npz.files}
        scans.append(document)
    first = scans[0]
    offsets, records = plan_cuts(first["arrays"]["grid"], first["grid"], chunk_bytes,
                                 first["file"]["decompressed_bytes"])
    cuts = [offsets] + [offsets_at(scan["arrays"]["grid"].tolist(), scan["grid"], records,
                                   scan["file"]["decompressed_bytes"]) for scan in scans[1:]]
    items = []
    for k in range(len(records)):
        last = k + 1 == len(records)
        mates = []
        for item, scan, starts in zip(request["inputs"], scans, cuts):
            total, start = scan["file"]["decompressed_bytes"], starts[k]
            end = total if last else starts[k + 1]
            span = min(total, end + (0 if last else LOOKAHEAD_BYTES)) - start
            compression = scan["file"]["compression"]
            mate = {"key": item["key"], "etag": item["etag"], "size": item["size"], "compression": compression,
                    "start": start, "length": end - start, "span": span, "first_record": records[k],
                    "crlf": scan["crlf"] if k else None, "index_key": scan["index_key"]}
            if compression == "bgzf":
                blocks = (scan["arrays"]["block_comp"], scan["arrays"]["block_decomp"])
                first_byte, stop, skip = bgzf_range(blocks, start, start + span, scan["file"]["compressed_bytes"])
                mate.update(range=[first_byte, stop], skip=skip)
            mates.append(mate)
        items.append({"index": k, "validate": True, "stop_after": None if last else records[k + 1], "mates": mates})
    put_json(s3, bucket, keys.phase1_files(request["sample"], request["run_id"]), [scan["file"] for scan in scans])
    manifest_key = prefix + MANIFEST_NAME
    put_json(s3, bucket, manifest_key, items)
    return {"bucket": bucket, "manifest_key": manifest_key, "chunk_count": len(items), "params": first["params"]}


def _complete_records_end(head: bytes) -> int:
    """End of the last complete 4-line record in ``head`` (adapter detection reads whole records)."""
    import numpy as np

    newlines = np.flatnonzero(np.frombuffer(head, np.uint8) == 10)
    complete = len(newlines) // 4 * 4
    return int(newlines[complete - 1]) + 1 if complete else 0


def _name_the_gzip_defect(s3: Any, request: dict[str, Any]) -> None:
    """The pass could not inflate an input, or its gzip trailer does not cover the stream: the single-pass
    validator names that defect (member, offsets, record, or an earlier FASTQ defect) exactly. It reads the
    input in one function, which the distributed path otherwise avoids: this is the failure path (and a
    multi-member plain gzip file, which it then accepts)."""
    from helixflow.pipeline.state import SampleRequest
    from helixflow.pipeline.validate import validate_sample

    validate_sample(s3=s3, request=SampleRequest.model_validate(request))


def split_into_chunks(*, s3: Any, request: dict[str, Any], scratch: Path, chunk_bytes: int,
                      distributed: bool = False) -> dict[str, Any]:
    if distributed:
        return _join_scans(s3=s3, request=request, chunk_bytes=chunk_bytes)
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


part_name = keys.phase1_part_name




def _read_mate_span(s3: Any, bucket: str, mate: dict[str, Any]) -> bytes:
    """The mate's decompressed bytes from the chunk's first record through the lookahead, read at index
    points / whole blocks / byte offsets (``helixflow.fastq.access``), nothing else of the object."""
    from helixflow.fastq.access import read_span

    if mate["compression"] == "bgzf":
        first, stop = mate["range"]
        body = s3.get_object(Bucket=bucket, Key=mate["key"], Range=f"bytes={first}-{stop - 1}",
                             IfMatch=mate["etag"])["Body"].read()
        return read_span(io.BytesIO(body), "bgzf", mate["start"], mate["span"], skip=mate["skip"])
    index = s3.get_object(Bucket=bucket, Key=mate["index_key"])["Body"].read() if mate["index_key"] else None
    with open_object(s3, bucket, mate["key"], size=mate["size"], if_match=mate["etag"]) as source:
        return read_span(source, mate["compression"], mate["start"], mate["span"], index=index)


def _validated_chunks(s3: Any, bucket: str, item: dict[str, Any], workdir: Path):
    """Validate the item's records; when valid, its plain-text chunks for the engine (same bytes, one read)."""
    from helixflow.fastq.chunked import MateChunk, validate_chunk
    from helixflow.fastq.scan import ChunkStart
    from helixflow.phase1.reader import Chunk

    spans = [_read_mate_span(s3, bucket, mate) for mate in item["mates"]]
    verdict = validate_chunk([MateChunk(mate["key"], data, ChunkStart(mate["first_record"], mate["start"],
                                                                      mate["crlf"]))
                              for mate, data in zip(item["mates"], spans)], stop_after=item["stop_after"])
    if verdict.defect is not None:
        return verdict, None
    chunks = []
    workdir.mkdir(parents=True, exist_ok=True)
    for m, (mate, data) in enumerate(zip(item["mates"], spans)):
        path = workdir / f"input{m}.fastq"
        path.write_bytes(memoryview(data)[:mate["length"]])
        chunks.append(Chunk(path=str(path), first_record=mate["first_record"], first_byte=mate["start"]))
    return verdict, chunks


def process_chunk_item(*, s3: Any, item: dict[str, Any], request: dict[str, Any], params: dict[str, Any],
                       scratch: Path, runs_table: Any = None) -> dict[str, Any]:
    """One chunk: its parts and result document under work/. With ``runs_table`` (the Lambda path), a chunk
    that finds its run already failed when it is done withdraws what it wrote (``runs.has_failed``)."""
    bucket, prefix, name = request["bucket"], work_prefix(request), part_name(item["index"])
    written: list[str] = []
    answer = _process_chunk_item(s3, item, request, params, scratch / name, written)
    shutil.rmtree(scratch / name, ignore_errors=True)
    if runs_table is not None and request.get("identity") and runs.has_failed(
            runs_table, identity=request["identity"], run_id=request["run_id"]):
        for start in range(0, len(written), 1000):  # DeleteObjects takes 1,000 keys
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in written[start:start + 1000]],
                                                     "Quiet": True})
    return answer


def _process_chunk_item(s3: Any, item: dict[str, Any], request: dict[str, Any], params: dict[str, Any],
                        scratch: Path, written: list[str]) -> dict[str, Any]:
    from helixflow.phase1.engine import Params, process_chunk
    from helixflow.phase1.reader import Chunk

    bucket, prefix, name = request["bucket"], work_prefix(request), part_name(item["index"])
    result_key = f"{prefix}parts/{name}.json"
    if item.get("validate"):
        # The verdict is its own small object: ValidateChunks reads one per chunk, not the statistics.
        verdict, chunks = _validated_chunks(s3, bucket, item, scratch)
        verdict_key = keys.phase1_part(request["sample"], request["run_id"], item["index"], ".validation.json")
        written.append(put_json(s3, bucket, verdict_key, verdict.to_dict()))
        if chunks is None:  # an invalid chunk transforms nothing; ValidateChunks reports the first defect
            return {"index": item["index"], "result_key": result_key}
    else:
        chunks = []
        for mate_index, mate in enumerate(item["mates"]):
            local = download(s3, bucket, mate["key"], scratch / f"input{mate_index}", tuple(mate["range"]),
                             if_match=mate["etag"])
            chunks.append(Chunk(path=str(local), offset=0, skip=mate["skip"], length=mate["length"],
                                first_record=mate["first_record"], first_byte=mate["first_byte"]))
    parts_dir = scratch / "parts"
    result = process_chunk(tuple(chunks) if len(chunks) == 2 else chunks[0], Params(**params), str(parts_dir), name)
    uploaded = {}
    for path in [p for part in result.reads_parts for p in part] + result.embedding_parts:
        uploaded[path] = f"{prefix}parts/{os.path.basename(path)}"
        written.append(uploaded[path])  # before the upload: a part half-written still gets withdrawn
        s3.upload_file(path, bucket, uploaded[path])
    document = result.to_dict()
    document["versions"] = environment_versions(PHASE1)
    document["reads_parts"] = [[uploaded[p] for p in part] for part in result.reads_parts]
    document["embedding_parts"] = [uploaded[p] for p in result.embedding_parts]
    written.append(put_json(s3, bucket, result_key, document))
    return {"index": item["index"], "result_key": result_key}


# The end of a Parquet part read to find its footer: one request for the footers chunk parts have (a few KiB).
FOOTER_PROBE_BYTES = 64 << 10


def _parquet_join(s3: Any, bucket: str, keys: list[str], sizes: dict[str, int]) -> list[Source] | None:
    """The ``join_objects`` sources that make the Parquet parts one file without decoding them: each part's pages
    copied by S3 (the first with its opening ``PAR1``), then the joined footer (``helixflow.parquet_footer``);
    a last part below S3's part minimum is read and sent with the footer. None when another part is below that
    minimum (small runs, whose parts are rewritten instead: cheap at that size)."""
    from concurrent.futures import ThreadPoolExecutor

    from helixflow import parquet_footer

    def footer(key: str) -> tuple[int, bytes]:
        size = sizes[key]
        tail = read_range(s3, bucket, ByteRange(key, max(0, size - FOOTER_PROBE_BYTES), size))
        start, length = parquet_footer.footer_span(tail, size)
        if length + parquet_footer.TAIL_BYTES > len(tail):
            tail = read_range(s3, bucket, ByteRange(key, start, size))
        return start, tail[-parquet_footer.TAIL_BYTES - length:-parquet_footer.TAIL_BYTES]

    magic = len(parquet_footer.MAGIC)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="footers") as pool:
        footers = list(pool.map(footer, keys))
    tail = parquet_footer.joined_tail([f for _, f in footers], [start - magic for start, _ in footers])
    # A part without rows (every read of its chunk filtered out) has no pages to copy and no row group in its
    # footer. Every part opens with PAR1, so the first part with pages gives the joined file its own.
    pages = [(key, start) for key, (start, _) in zip(keys, footers) if start > magic]
    if not pages:
        return [parquet_footer.MAGIC + tail]
    bodies = [ByteRange(key, 0 if index == 0 else magic, start) for index, (key, start) in enumerate(pages)]
    if not joinable([body.size for body in bodies]):
        return None
    if bodies[-1].size < MIN_PART_BYTES:
        return [*bodies[:-1], read_range(s3, bucket, bodies[-1]) + tail]
    return [*bodies, tail]


def merge_chunks(*, s3: Any, request: dict[str, Any], chunk_count: int, scratch: Path) -> dict[str, Any]:
    """The chunks' parts into the Phase 1 outputs, staged under the identity's checkpoint. When the parts are
    large enough for a multipart upload, S3 itself joins each mate's trimmed reads (gzip members, so
    concatenable) and the embeddings (the parts' row groups under one new footer: ``_parquet_join``), and
    their bytes are read once to hash them, never written through here (``storage.join_objects``). Otherwise
    (small runs), and for the reports, the parts are read from S3 as they are merged (never downloaded: scratch
    holds the outputs once, not the parts as well), and each output is uploaded as soon as it is complete,
    while the next one is merged."""
    from concurrent.futures import ThreadPoolExecutor

    from helixflow.phase1.engine import ChunkResult, merge_results, write_outputs
    from helixflow.phase1.layout import output_paths

    bucket, prefix, sample = request["bucket"], work_prefix(request), request["sample"]
    sizes = {obj["Key"]: obj["Size"] for obj in list_objects(s3, bucket, f"{prefix}parts/")}
    missing = [index for index in range(chunk_count) if f"{prefix}parts/{part_name(index)}.json" not in sizes]
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
        results.append(ChunkResult.from_dict(document))
    merged = replace(merge_results(results), inputs=[item["key"] for item in request["inputs"]])
    out_dir = scratch / "results"
    # Outputs wait under the identity's checkpoint, not results/: only Publish writes results/, and a re-run
    # of this identity after a later failure resumes from here (helixflow.pipeline.runs).
    checkpoint = checkpoint_prefix(sample, request["identity"], "phase1")
    staged = checkpoint + "outputs/"
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="merge-upload") as uploads:  # 3 joins hash at once
        pending: dict = {}
        layout = output_paths("", sample, merged.paired)
        joins = {relative: [part[mate] for part in merged.reads_parts] for mate, relative in enumerate(layout["reads"])
                 if joinable([sizes[part[mate]] for part in merged.reads_parts])}
        embeddings = merged.embedding_parts and _parquet_join(s3, bucket, merged.embedding_parts, sizes)
        if embeddings:
            joins[layout["embeddings"]] = embeddings
        for relative, sources in joins.items():
            pending[relative] = uploads.submit(join_objects, s3, bucket, sources, staged + relative)

        def written(path: str) -> None:
            relative = Path(path).relative_to(out_dir).as_posix()
            pending[relative] = uploads.submit(upload, s3, bucket, path, staged + relative)

        write_outputs(merged, str(out_dir), sample, written=written, joined=set(joins),
                      open_part=lambda key: open_object(s3, bucket, key, size=sizes[key]))
        for future in pending.values():
            future.result()
    outputs = sorted([p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()]
                     + list(joins))
    if outputs != sorted(pending):  # every file the layout holds is staged, or the checkpoint is not marked
        raise RuntimeError(f"outputs written but not staged: {sorted(set(outputs) - set(pending))}")
    summary = {"outputs": outputs, "staged_prefix": staged, "reads_before": sum(s.reads for s in merged.before),
               "reads_after": sum(s.reads for s in merged.after), "chunks": chunk_count, "versions": versions}
    put_json(s3, bucket, checkpoint + SUMMARY_NAME, summary)  # last: it marks the checkpoint complete
    delete_prefix(s3, bucket, prefix)
    shutil.rmtree(scratch, ignore_errors=True)
    return summary
