"""Phase 1 on a Ray cluster: the driver of the Ray job that the "ray" adapter submits.

    python -m helixflow.phase1.ray_job --bucket B --manifest-key K --request-json R --params-json P \\
        [--max-retries 3] [--max-workers N]

The arguments come from the state machine (helixflow.pipeline.stage_jobs.phase1_spec): the sample request as
JSON, and SplitIntoChunks' result (bucket, manifest_key, the resolved engine params). A Ray Data pipeline runs the same chunk work as
the Lambda path's ProcessChunk: a Datasource over the chunk manifest with one ReadTask per chunk, then
``map_batches`` with a class UDF that calls ``process_chunk_item`` per chunk, so the parts under
work/<sample>/<run_id>/phase1/parts/ are byte-identical and MergeChunks merges them as for the Lambda path. The
driver writes nothing under results/.

Progress: ``<work prefix>progress.json`` ({"chunks_done", "chunk_count"}), which the adapter's status reads.
S3 goes through boto3, so AWS_ENDPOINT_URL (the moto server locally) applies. This is the only module that
imports ``ray``: the Phase 1 engine and the Lambda path stay importable without it.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import ray
from botocore.config import Config
from ray.data import DataContext, Datasource, ReadTask
from ray.data.block import BlockMetadata

from helixflow.errors import InvalidParameters
from helixflow.pipeline import storage
from helixflow.pipeline.phase1_lambda import MANIFEST_NAME, process_chunk_item, work_prefix
from helixflow.pipeline.ray_jobs import PROGRESS_NAME

# At most one progress object per this many seconds (plus the last): thousands of chunks, not thousands of PUTs.
PROGRESS_EVERY_S = 2.0


def _s3() -> Any:
    # Transient S3 errors (throttling, 5xx, resets) are retried inside the client; Ray's retries (below) are for
    # lost workers and nodes, e.g. a reclaimed spot instance.
    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 8}))


class ChunkManifest(Datasource):
    """The chunk manifest as a dataset: one row (index, the manifest item as JSON) per chunk.

    ``get_read_tasks`` has the Ray 2.60 signature (parallelism, per_task_row_limit, data_context); it drifted
    across 2.4x-2.5x, which is why the ray extra pins Ray exactly. It returns one task per chunk whatever
    ``parallelism`` asks for: a chunk is the unit of work and of retry."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self._items = items

    def estimate_inmemory_data_size(self) -> int:
        return sum(len(json.dumps(item)) for item in self._items)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: DataContext | None = None) -> list[ReadTask]:
        tasks = []
        for item in self._items:
            text = json.dumps(item, separators=(",", ":"))
            metadata = BlockMetadata(num_rows=1, size_bytes=len(text), input_files=None, exec_stats=None)
            tasks.append(ReadTask(functools.partial(_chunk_block, item["index"], text), metadata,
                                  per_task_row_limit=per_task_row_limit))
        return tasks


def _chunk_block(index: int, text: str) -> list[pa.Table]:
    return [pa.table({"index": [index], "item": [text]})]


class ChunkWorker:
    """Per-worker setup in ``__init__`` (the S3 client, the engine's Numba kernels compiled once on a tiny
    sample), then ``process_chunk_item`` per chunk, exactly as ProcessChunk runs it."""

    def __init__(self, request: dict[str, Any], params: dict[str, Any], paired: bool) -> None:
        self.s3 = _s3()
        self.request = request
        self.params = params
        _warm_up(params, paired)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        indexes, result_keys = [], []
        for text in batch["item"]:
            with tempfile.TemporaryDirectory(prefix="helixflow-chunk-") as scratch:
                part = process_chunk_item(s3=self.s3, item=json.loads(text), request=self.request,
                                          params=self.params, scratch=Path(scratch))
            indexes.append(part["index"])
            result_keys.append(part["result_key"])
        return {"index": np.array(indexes, dtype=np.int64), "result_key": np.array(result_keys, dtype=object)}


def _warm_up(params: dict[str, Any], paired: bool) -> None:
    """Compile (or load from Numba's cache) every kernel the chunks will call, with the same parameters and
    mates, so a chunk's time on a fresh worker is its work and not the JIT."""
    from helixflow.phase1.engine import Params
    from helixflow.warmup import warm_phase1

    with tempfile.TemporaryDirectory(prefix="helixflow-warm-up-") as scratch:
        warm_phase1(Path(scratch), paired=paired, params=Params(**params))


class Progress:
    def __init__(self, s3: Any, bucket: str, key: str, chunk_count: int) -> None:
        self.s3, self.bucket, self.key, self.chunk_count = s3, bucket, key, chunk_count
        self.done = 0
        self._written_at = 0.0

    def chunk_done(self) -> None:
        self.done += 1
        if self.done == self.chunk_count or time.monotonic() - self._written_at >= PROGRESS_EVERY_S:
            self.write()

    def write(self) -> None:
        storage.put_json(self.s3, self.bucket, self.key, {"chunks_done": self.done, "chunk_count": self.chunk_count})
        self._written_at = time.monotonic()


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m helixflow.phase1.ray_job", description=__doc__.split("\n")[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--manifest-key", required=True, help="SplitIntoChunks' manifest_key")
    parser.add_argument("--request-json", required=True, help="the sample request (sample, run_id, bucket, inputs)")
    parser.add_argument("--params-json", required=True, help="SplitIntoChunks' params (resolved engine params)")
    parser.add_argument("--max-retries", type=int, default=3,
                        help="retries of a chunk whose worker or node died (task retries and actor restarts)")
    parser.add_argument("--max-workers", type=int, default=0,
                        help="most chunk workers at once (0: as many as there are chunks; the autoscaler adds "
                             "nodes for them up to the cluster's max_workers)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    request = json.loads(args.request_json)
    prefix = work_prefix(request)
    if args.manifest_key != prefix + MANIFEST_NAME:
        raise InvalidParameters(f"the manifest {args.manifest_key} is not this run's ({prefix}{MANIFEST_NAME})",
                                code="MANIFEST_OUTSIDE_RUN", details={"manifest_key": args.manifest_key})
    params = json.loads(args.params_json)
    s3 = _s3()
    items = storage.get_json(s3, args.bucket, args.manifest_key)
    if not items:  # Validate refuses empty inputs, so SplitIntoChunks always plans a chunk
        raise InvalidParameters(f"the manifest {args.manifest_key} lists no chunks", code="EMPTY_MANIFEST",
                                details={"manifest_key": args.manifest_key})
    ray.init()  # the job's cluster: the job supervisor sets RAY_ADDRESS
    # Progress bars would fill the job log the adapter reads its failure tail from.
    DataContext.get_current().enable_progress_bars = False
    retries = {"max_retries": args.max_retries}
    dataset = ray.data.read_datasource(ChunkManifest(items), override_num_blocks=len(items), ray_remote_args=retries)
    workers = min(args.max_workers or len(items), len(items))
    dataset = dataset.map_batches(
        ChunkWorker, fn_constructor_kwargs={"request": request, "params": params,
                                            "paired": len(items[0]["mates"]) == 2},
        batch_size=1, batch_format="numpy", concurrency=(1, workers), num_cpus=1,
        # Bounded, not Ray Data's default of forever: a chunk that kills its worker every time fails the job.
        max_restarts=args.max_retries, max_task_retries=args.max_retries)
    progress = Progress(s3, args.bucket, prefix + PROGRESS_NAME, len(items))
    progress.write()
    started = time.monotonic()
    for row in dataset.iter_rows():
        progress.chunk_done()
        print(f"helixflow: chunk {row['index']} done ({progress.done}/{len(items)})", flush=True)
    summary = {"chunks_done": progress.done, "chunk_count": len(items), "seconds": round(time.monotonic() - started, 2)}
    print(f"helixflow: phase 1 done {json.dumps(summary)}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    run(parse_arguments(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
