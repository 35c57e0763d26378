"""MergeChunks: exact merge of the chunks' statistics and outputs into results/<sample>/<run_id>/."""

import tempfile
from pathlib import Path

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.phase1_lambda import merge_chunks
from helixflow.warmup import seed_cache
from helixflow.pipeline.state import PipelineState, Phase1Summary

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
seed_cache()  # the image's build-time Numba cache into /tmp, before the first kernel call (helixflow.warmup)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.run_id)
    with tempfile.TemporaryDirectory() as scratch:
        summary = Phase1Summary.model_validate(merge_chunks(
            s3=s3, request=state.require_sample().model_dump(), chunk_count=state.chunks.chunk_count,
            scratch=Path(scratch)))
    logger.info("phase 1 merged", extra=summary.model_dump(exclude={"outputs"}))
    metrics.add_metric(name="ReadsKept", unit=MetricUnit.Count, value=summary.reads_after)
    return summary.model_dump()
