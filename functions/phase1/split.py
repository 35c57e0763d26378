"""SplitIntoChunks: record-aligned chunks of the sample and the manifest the Distributed Map reads."""

import tempfile
from pathlib import Path

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.phase1_lambda import split_into_chunks

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(state: dict, context: LambdaContext) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        chunks = split_into_chunks(s3=s3, request=state["sample"], scratch=Path(scratch),
                                   chunk_bytes=state["plan"]["phase1"]["chunk_bytes"])
    logger.info("chunks planned", extra={"chunks": chunks["chunk_count"], "adapter": chunks["params"]["adapter"]})
    metrics.add_metric(name="Phase1Chunks", unit=MetricUnit.Count, value=chunks["chunk_count"])
    return chunks
