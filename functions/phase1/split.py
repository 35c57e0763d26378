"""SplitIntoChunks: record-aligned chunks of the sample and the manifest the Distributed Map reads. On the
distributed-validation path the same function first runs as ScanMate, once per mate and in parallel (one pass
over S3 with a gzip seek index, nothing re-compressed); SplitIntoChunks then joins the two scans."""

import tempfile
from pathlib import Path

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.phase1_lambda import scan_mate, split_into_chunks
from helixflow.pipeline.state import ChunkSet, MateScan, MateScanItem, PipelineState

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if "scan_mate" in event:  # a ScanMates item
        item = parse(event=event, model=MateScanItem)
        logger.append_keys(run_id=item.state.run_id)
        with tempfile.TemporaryDirectory() as scratch:
            scan = MateScan.model_validate(scan_mate(
                s3=s3, request=item.state.require_sample().model_dump(), mate_index=item.scan_mate,
                chunk_bytes=item.state.plan.phase1.chunk_bytes, scratch=Path(scratch)))
        logger.info("mate scanned", extra=scan.model_dump())
        return scan.model_dump()
    state = parse(event=event, model=PipelineState)
    logger.append_keys(run_id=state.run_id)
    with tempfile.TemporaryDirectory() as scratch:
        chunks = ChunkSet.model_validate(split_into_chunks(
            s3=s3, request=state.require_sample().model_dump(), scratch=Path(scratch),
            chunk_bytes=state.plan.phase1.chunk_bytes, distributed=state.plan.phase1.validation == "distributed"))
    logger.info("chunks planned", extra={"chunks": chunks.chunk_count, "adapter": chunks.params["adapter"]})
    metrics.add_metric(name="Phase1Chunks", unit=MetricUnit.Count, value=chunks.chunk_count)
    return chunks.model_dump()
