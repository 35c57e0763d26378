"""ProcessChunk: the Phase 1 engine on one record-aligned chunk (one Distributed Map item)."""

import os
import tempfile
from pathlib import Path

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.phase1_lambda import process_chunk_item
from helixflow.warmup import seed_cache
from helixflow.pipeline.state import ChunkItem, ChunkResult

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
runs_table = boto3.resource("dynamodb").Table(os.environ["RUNS_TABLE"])
seed_cache()  # the image's build-time Numba cache into /tmp, before the first kernel call (helixflow.warmup)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=ChunkItem)
def lambda_handler(item: ChunkItem, context: LambdaContext) -> dict:
    logger.append_keys(run_id=item.sample.run_id)
    with tempfile.TemporaryDirectory() as scratch:
        part = ChunkResult.model_validate(process_chunk_item(
            s3=s3, item=item.item, request=item.sample.model_dump(), params=item.params, scratch=Path(scratch),
            runs_table=runs_table))
    logger.info("chunk processed", extra=part.model_dump())
    metrics.add_metric(name="Phase1ChunksProcessed", unit=MetricUnit.Count, value=1)
    return part.model_dump()
