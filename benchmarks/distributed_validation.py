"""Distributed validation vs the single Validate Lambda, side by side on one generated paired gzip sample.

    .venv/bin/python benchmarks/distributed_validation.py [--gzip-gb 2.0] [--chunk-mib 256] [--workdir DIR]
        [--qualities simulated|binned] [--rates-only]

Input: a paired sample of 150 bp simulated reads (``helixflow.phase1.simulate``), each mate ONE plain gzip
member (isal level 2), about ``--gzip-gb`` GB of gzip in all; the same reads repeat under new ids past the first
``POOL`` pairs so generating it takes about a minute. ``--qualities binned`` maps the qualities to NovaSeq's four
bins (2, 12, 23, 37), which compresses like the sequencers' output the issue is about (ratio ~3.3, the profile's
gzip ratio; the simulated per-base qualities give ~2.0). Disk is checked first; everything is deleted at the end.

Measured, all in this one run:
1. the seek-index build (one pass over R1's gzip): indexed_gzip (what the pipeline uses) vs rapidgzip with every
   core and with one, MB/s of gzip, ratio printed; then the pipeline's whole pass over one mate (``scan_input``:
   index + grid record offsets + SHA-256; the pipeline runs one per mate, in parallel) on the same file, with zran
   in the same process and beside it in a second one (what ScanMate does with a large gzip mate);
2. per-chunk rates of one distributed chunk runner (chunk 1, both mates): inflate from an index point
   (``read_span``), validate (``validate_chunk``), Phase 1 engine, each in MB/s of decompressed FASTQ and the
   runner's total in MB/s of gzip; the single validator's rate on the whole pair for comparison;
3. the pipeline on the local stack (real state machine, 4 concurrent Lambda workers): the same sample with
   ``validation: single`` (Validate streams the pair, Split re-blocks gzip to BGZF) and with
   ``validation: distributed`` (no Validate, Split's one pass from S3, chunk runners validate + transform,
   ValidateChunks): wall time of each execution and of its stages, and whether the outputs (every manifest
   entry but the HTML reports and pipeline_info) and the validation reports are the same (not with
   ``--rates-only``).

``--defects``: instead of 2. and 3., the sample's R2 with a defect planted (its quality line one character short,
as the test suite plants it) in the first record of the second chunk, then in the last record; each broken pair
through both paths on the local stack. Printed: the error each run ended with (code, record, line, byte) and
whether it is the one the single-process validator gives on the same files (the run fails otherwise).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from helixflow.fastq.access import index_spacing, read_span, scan_input
from helixflow.fastq.chunked import (LOOKAHEAD_BYTES, CutFinder, MateChunk, grid_records, offsets_at, plan_cuts,
                                     validate_chunk)
from helixflow.fastq.scan import ChunkStart
from helixflow.fastq.validator import validate_fastq
from helixflow.phase1 import simulate
from helixflow_local.client import collect, submit, wait_for_run
from helixflow_local.stack import LocalStack

POOL = 400_000
BLOCK = 100_000
MB = 1e6
# NovaSeq's quality bins (RTA3): every Phred score is reported as the bin's value.
NOVASEQ_BINS = np.array([2] * 3 + [12] * 12 + [23] * 16 + [37] * 11, dtype=np.uint8)  # for Phred 0..41


def generate(work: Path, gzip_bytes: float, seed: int = 5, binned: bool = False) -> tuple[list[Path], int]:
    """The pair's two files and its number of pairs."""
    from isal import igzip

    genome = simulate.random_genome(5_000_000, seed)
    pool = [simulate.simulate_pairs(BLOCK, 150, seed=seed + s, genome=genome) for s in range(0, POOL, BLOCK)]
    if binned:
        pool = [(names, s1, NOVASEQ_BINS[np.minimum(q1, 41)], s2, NOVASEQ_BINS[np.minimum(q2, 41)])
                for names, s1, q1, s2, q2 in pool]
    paths = [work / "bench_R1.fastq.gz", work / "bench_R2.fastq.gz"]
    outs = [igzip.open(p, "wb", compresslevel=2) for p in paths]
    written, n = 0, 0
    try:
        while written < gzip_bytes:
            for _, s1, q1, s2, q2 in pool:
                names = [f"b{n + i}" for i in range(BLOCK)]
                outs[0].write(simulate.fastq_bytes(names, s1, q1, 1))
                outs[1].write(simulate.fastq_bytes(names, s2, q2, 2))
                n += BLOCK
            for out in outs:
                out.flush()
            written = sum(p.stat().st_size for p in paths)
    finally:
        for out in outs:
            out.close()
    print(f"generated {n:,} pairs, {sum(p.stat().st_size for p in paths) / MB:,.0f} MB of gzip", flush=True)
    return paths, n


def timed(call):
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def index_rates(path: Path, chunk_bytes: int) -> tuple[dict[str, float], tuple]:
    """MB/s of gzip of each index build, and the pipeline's scan of ``path`` (reused for the chunk rates)."""
    import indexed_gzip
    import rapidgzip

    size = path.stat().st_size

    def with_indexed_gzip():
        with indexed_gzip.IndexedGzipFile(str(path), spacing=index_spacing(chunk_bytes)) as gz:
            gz.build_full_index()
            out = io.BytesIO()
            gz.export_index(fileobj=out)

    def with_rapidgzip(threads: int):
        with rapidgzip.open(str(path), parallelization=threads) as gz:
            while gz.read(4 << 20):
                pass
            gz.export_index(str(path) + ".rgidx")
        os.unlink(str(path) + ".rgidx")

    _, t_ig = timed(with_indexed_gzip)
    _, t_rg = timed(lambda: with_rapidgzip(os.cpu_count()))
    _, t_rg1 = timed(lambda: with_rapidgzip(1))
    seconds = {}
    for label, reopen in (("scan_input", None), ("scan_input_beside", functools.partial(open, path, "rb"))):
        finder = CutFinder(grid=grid_records(chunk_bytes))
        with open(path, "rb") as source:
            scan, seconds[label] = timed(lambda: scan_input(source, name=path.name, finder=finder,
                                                            spacing=index_spacing(chunk_bytes), reopen=reopen))
    rates = {"indexed_gzip": size / t_ig / MB, "rapidgzip": size / t_rg / MB, "rapidgzip_1": size / t_rg1 / MB,
             "cores": os.cpu_count(),
             **{label: size / t / MB for label, t in seconds.items()}}
    cuts = plan_cuts(finder.grid_offsets, finder.grid, chunk_bytes, finder.total)
    return rates, (scan, (*cuts, finder.crlf))


def chunk_rates(paths: list[Path], chunk_bytes: int, work: Path, first: tuple) -> dict[str, float]:
    """One distributed runner's stages on chunk 1 of the pair, from local files (S3 time excluded)."""
    from helixflow.phase1.engine import Params, process_chunk, resolve_params
    from helixflow.phase1.reader import Chunk

    scans, plans = [first[0]], [first[1]]
    finder = CutFinder(grid=grid_records(chunk_bytes))  # mate 2's pass needs nothing of mate 1's
    with open(paths[1], "rb") as source:
        scans.append(scan_input(source, name=paths[1].name, finder=finder, spacing=index_spacing(chunk_bytes)))
    plans.append((offsets_at(finder.grid_offsets, finder.grid, plans[0][1], finder.total), plans[0][1], finder.crlf))
    k = 1
    spans, read_s = [], 0.0
    for path, scan, (offsets, _, _) in zip(paths, scans, plans):
        size = offsets[k + 1] - offsets[k] + LOOKAHEAD_BYTES
        with open(path, "rb") as source:
            data, seconds = timed(lambda: read_span(source, "gzip", offsets[k], size, index=scan.index))
        spans.append(data)
        read_s += seconds
    records = plans[0][1]
    mates = [MateChunk(p.name, d, ChunkStart(records[k], offs[k], crlf)) for p, d, (offs, _, crlf)
             in zip(paths, spans, plans)]
    verdict, validate_s = timed(lambda: validate_chunk(mates, stop_after=records[k + 1]))
    assert verdict.defect is None, verdict.defect
    chunks = []
    decompressed = 0
    for m, (data, (offsets, _, _)) in enumerate(zip(spans, plans)):
        length = offsets[k + 1] - offsets[k]
        decompressed += length
        (work / f"chunk{m}.fastq").write_bytes(memoryview(data)[:length])
        chunks.append(Chunk(path=str(work / f"chunk{m}.fastq"), first_record=records[k], first_byte=offsets[k]))
    params = resolve_params(Params(), str(paths[0]), str(paths[1]))
    # Warm up first: a Lambda worker compiles the Numba kernels once (cold start), not once per chunk.
    warm = []
    for m, data in enumerate(spans):
        end = 0
        for _ in range(4 * 1000):  # the chunk's first 1,000 records
            end = data.index(b"\n", end) + 1
        (work / f"warm{m}.fastq").write_bytes(data[:end])
        warm.append(Chunk(path=str(work / f"warm{m}.fastq")))
    process_chunk(tuple(warm), params, str(work / "parts"), "warm")
    _, engine_s = timed(lambda: process_chunk(tuple(chunks), params, str(work / "parts"), "part-00001"))
    shutil.rmtree(work / "parts", ignore_errors=True)
    ratio = sum(s.decompressed_bytes for s in scans) / sum(s.compressed_bytes for s in scans)
    total = read_s + validate_s + engine_s
    return {"chunk_mb": decompressed / MB, "inflate_mb_s": decompressed / read_s / MB,
            "validate_mb_s": decompressed / validate_s / MB, "engine_mb_s": decompressed / engine_s / MB,
            "runner_mb_s": decompressed / total / MB, "runner_gzip_mb_s": decompressed / ratio / total / MB,
            "runner_s": total, "ratio": ratio}


def _seconds(a, b) -> float:
    return (b - a).total_seconds()


def stage_times(stack, arn: str) -> dict[str, float]:
    sfn = stack.client("stepfunctions")
    events = [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
              for e in page["events"]]
    entered: dict[str, datetime] = {}
    spent: dict[str, float] = {}
    for event in events:
        if "stateEnteredEventDetails" in event:
            entered[event["stateEnteredEventDetails"]["name"]] = event["timestamp"]
        elif "stateExitedEventDetails" in event:
            name = event["stateExitedEventDetails"]["name"]
            if name in entered:
                spent[name] = spent.get(name, 0.0) + _seconds(entered.pop(name), event["timestamp"])
    return spent


def _column_bytes(column) -> tuple[bytes, bytes]:
    """(value bytes, value lengths) of one batch's column, so the digests below do not depend on where the batches
    were cut: the same rows give the same two byte streams in any batching."""
    import pyarrow as pa

    data = column.buffers()[-1]
    if pa.types.is_string(column.type) or pa.types.is_binary(column.type):
        offsets = np.frombuffer(column.buffers()[1], np.int32)[column.offset:column.offset + len(column) + 1]
        return data[int(offsets[0]):int(offsets[-1])].to_pybytes(), np.diff(offsets).tobytes()
    width = column.type.byte_width
    return data[column.offset * width:(column.offset + len(column)) * width].to_pybytes(), b""


def content_digest(path: Path) -> str:
    """SHA-256 of what a file holds, not of how the run cut it: the two paths cut chunks at other records, so
    their gzip members and Parquet row groups differ while the reads and the table are the same. Streamed (a 2 GB
    pair's table is ~8 GB in memory)."""
    import pyarrow.parquet as pq
    from isal import igzip

    digest = hashlib.sha256()
    if path.suffix == ".gz":
        with igzip.open(path, "rb") as handle:
            for piece in iter(lambda: handle.read(1 << 22), b""):
                digest.update(piece)
    elif path.suffix == ".parquet":
        table = pq.ParquetFile(path)
        digest.update(str(table.schema_arrow).encode())
        columns = {name: (hashlib.sha256(), hashlib.sha256()) for name in table.schema_arrow.names}
        for batch in table.iter_batches(batch_size=1 << 16):
            for name, column in zip(batch.schema.names, batch.columns):
                for part, value in zip(columns[name], _column_bytes(column)):
                    part.update(value)
        for values, lengths in columns.values():
            digest.update(values.digest() + lengths.digest())
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run(stack, work: Path, paths: list[Path], mode: str) -> dict:
    """One run of the sample; both modes upload the same files under the same names (outputs name the sample),
    and ``validation`` is a run-control parameter, so the second run needs ``force``."""
    started = time.perf_counter()
    described = wait_for_run(stack.info, submit(stack.info, paths, {"validation": mode, "phase1": "lambda"},
                                                force=True), timeout=3 * 3600)
    wall = time.perf_counter() - started
    outcome = collect(stack.info, described, work / mode / "out")
    if not outcome.succeeded:
        raise SystemExit(f"{mode} run failed: {outcome.error_document}")
    info = json.loads((outcome.local_dir / "pipeline_info/params.json").read_text())
    # The reports record when and where they were made (the HTML, MultiQC's data zip, pipeline_info/).
    files = {f["path"]: content_digest(outcome.local_dir / f["path"]) for f in outcome.manifest["files"]
             if not f["path"].endswith((".html", "multiqc_data.zip")) and not f["path"].startswith("pipeline_info/")}
    result = {"wall": wall, "execution": _seconds(described["startDate"], described["stopDate"]),
              "stages": stage_times(stack, described["executionArn"]), "files": files,
              "reports": info["stages"]["validation"]["reports"], "chunks": info["stages"]["phase1"]["chunks"]}
    shutil.rmtree(work / mode)
    return result


def plant_defect(source: Path, target: Path, record: int) -> None:
    """``source`` (gzip FASTQ) copied to ``target`` with record ``record`` (0-based)'s quality line one character
    short, compressed as ``generate`` writes (isal level 2); streamed. Each block's last byte is held back to the
    next, so the byte before the line's newline is still unwritten wherever the blocks are cut."""
    from isal import igzip

    newline = 4 * record + 3  # the newline that ends the record's quality line, counted from 0
    written_newlines = 0
    held, planted = b"", False
    with igzip.open(source, "rb") as reader, igzip.open(target, "wb", compresslevel=2) as writer:
        for block in iter(lambda: reader.read(16 << 20), b""):
            data = held + block
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
            if not planted and written_newlines <= newline < written_newlines + ends.shape[0]:
                at = int(ends[newline - written_newlines])
                data, planted = data[:at - 1] + data[at:], True
            written_newlines += data.count(b"\n", 0, len(data) - 1)
            writer.write(data[:-1])
            held = data[-1:]
        writer.write(held)


def defect_runs(stack, work: Path, paths: list[Path], records: list[int], pairs: int) -> bool:
    """Both paths on the pair with R2 broken at the first record of chunk 2, then at the last record; True when
    every run ends with the single-process validator's error. Each run is its own sample (hard links under new
    names): runs of one sample name pair a re-uploaded R1 with the R2 of the run before (see the closing note of
    2026-12-04), which would test the pairing, not the validation."""
    from helixflow.errors import InvalidFastq

    same = True
    print(f"\n{'defect in R2':<28} {'path':<12} {'wall s':>7}  error (code, record, line, byte)  = validator's",
          flush=True)
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    for number, (where, record) in enumerate((("first record of chunk 2", records[1]), ("last record", pairs - 1))):
        broken = work / "broken_R2.fastq.gz"
        plant_defect(paths[1], broken, record)
        try:
            validate_fastq(paths[0], name="incoming/R1", mate_source=broken, mate_name="incoming/R2")
            raise SystemExit(f"the validator found no defect at record {record + 1}")
        except InvalidFastq as exc:
            expected = exc.to_dict()
        for mode in ("single", "distributed"):
            pair = [runs / f"defect{number}{mode[0]}_R{mate}.fastq.gz" for mate in (1, 2)]
            for link, source in zip(pair, (paths[0], broken)):
                os.link(source, link)
            wanted = {**expected, "file": f"incoming/{pair[1].name}",
                      "message": expected["message"].replace("incoming/R2", f"incoming/{pair[1].name}")}
            started = time.perf_counter()
            described = wait_for_run(stack.info, submit(stack.info, pair, {"validation": mode, "phase1": "lambda"}),
                                     timeout=3 * 3600)
            wall = time.perf_counter() - started
            outcome = collect(stack.info, described, work / mode / "out")
            got = outcome.error_document or {}
            agrees = outcome.status == "FAILED" and {k: got.get(k) for k in wanted} == wanted
            same &= agrees
            print(f"{where:<28} {mode:<12} {wall:>7.1f}  {got.get('code')}, record {got.get('record')}, line "
                  f"{got.get('line')}, byte {got.get('byte_offset')}  {'yes' if agrees else 'NO: ' + str(wanted)}",
                  flush=True)
            shutil.rmtree(work / mode)
            for link in pair:
                link.unlink()
        broken.unlink()
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gzip-gb", type=float, default=2.0)
    parser.add_argument("--chunk-mib", type=int, default=256)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--qualities", choices=["simulated", "binned"], default="simulated")
    parser.add_argument("--rates-only", action="store_true", help="the rates alone, not the pipeline runs")
    parser.add_argument("--defects", action="store_true",
                        help="the planted-defect runs through both paths instead of the chunk rates and valid runs")
    arguments = parser.parse_args()
    work = arguments.workdir or Path(tempfile.mkdtemp(prefix="hf-bench-dist-"))
    work.mkdir(parents=True, exist_ok=True)
    need = arguments.gzip_gb * 1e9 * 6  # inputs, the stack's copies (BGZF, parts, results), downloads
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(f"{free / 1e9:.0f} GB free under {work}, this needs ~{need / 1e9:.0f} GB")
    try:
        paths, pairs = generate(work, arguments.gzip_gb * 1e9, binned=arguments.qualities == "binned")
        rates, first = index_rates(paths[0], arguments.chunk_mib << 20)
        print(f"index build, MB/s of gzip: indexed_gzip {rates['indexed_gzip']:.1f}, rapidgzip "
              f"({rates['cores']} threads) {rates['rapidgzip']:.1f}, rapidgzip (1 thread) {rates['rapidgzip_1']:.1f}; "
              f"ratio indexed_gzip/rapidgzip {rates['indexed_gzip'] / rates['rapidgzip']:.2f}; ScanMate's pass (scan_input) with the index built "
              f"in the same process {rates['scan_input']:.1f}, beside it in a second process (the pipeline's "
              f"way) {rates['scan_input_beside']:.1f}",
              flush=True)
        if arguments.defects:
            with LocalStack(work / "stack", parameters={"Phase1ChunkMiB": str(arguments.chunk_mib)}) as stack:
                if not defect_runs(stack, work, paths, list(first[1][1]), pairs):
                    sys.exit(1)
            return
        per_chunk = chunk_rates(paths, arguments.chunk_mib << 20, work, first)
        single_report, single_s = timed(lambda: validate_fastq(paths[0], mate_source=paths[1]))
        gzip_mb = sum(p.stat().st_size for p in paths) / MB
        print("per-chunk runner (chunk 1, both mates, {chunk_mb:.0f} MB decompressed, ratio {ratio:.2f}): inflate "
              "{inflate_mb_s:.0f} MB/s, validate {validate_mb_s:.0f} MB/s, engine {engine_mb_s:.0f} MB/s, whole "
              "runner {runner_mb_s:.0f} MB/s decompressed = {runner_gzip_mb_s:.1f} MB/s of gzip "
              "({runner_s:.1f} s)".format(**per_chunk), flush=True)
        print(f"single validator on the pair: {gzip_mb / single_s:.1f} MB/s of gzip ({single_s:.1f} s, "
              f"{single_report.records:,} pairs)", flush=True)
        if arguments.rates_only:
            return
        print(f"\n{'path':<12} {'chunks':>6} {'wall s':>8}  stages (s)", flush=True)
        results = {}
        with LocalStack(work / "stack", parameters={"Phase1ChunkMiB": str(arguments.chunk_mib)}) as stack:
            for mode in ("single", "distributed"):  # each row as its run ends
                r = results[mode] = run(stack, work, paths, mode)
                stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()
                                   if k in ("Validate", "PlanPhase1", "ScanMates", "SplitIntoChunks", "ProcessChunks",
                                            "ValidateChunks", "MergeChunks", "Publish"))
                print(f"{mode:<12} {r['chunks']:>6} {r['wall']:>8.1f}  {stages}", flush=True)
        single, distributed = results["single"], results["distributed"]
        print(f"ratio single/distributed wall: {single['wall'] / distributed['wall']:.2f}")
        differ = sorted(k for k in single["files"].keys() | distributed["files"].keys()
                        if single["files"].get(k) != distributed["files"].get(k))
        print(f"same outputs (reads decompressed, tables, JSON): {not differ} ({len(single['files'])} files"
              f"{'; differ: ' + ', '.join(differ) if differ else ''}); "
              f"same validation reports: {single['reports'] == distributed['reports']}")
        if single["files"] != distributed["files"] or single["reports"] != distributed["reports"]:
            sys.exit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
