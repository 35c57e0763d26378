"""Validate: streams the sample's FASTQ object(s) and fails with InvalidFastq on the first defect. As
ValidateChunks (the distributed path) it combines the chunk runners' verdicts into the same answer."""

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.state import PipelineState
from helixflow.pipeline.validate import validate_chunks, validate_sample

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.run_id)
    request = state.require_sample()
    if state.chunks is not None:  # the chunks were validated where they were processed
        summary = validate_chunks(s3=s3, request=request, chunk_count=state.chunks.chunk_count)
    else:
        summary = validate_sample(s3=s3, request=request)
    logger.info("sample valid", extra={"sample": request.sample, "records": summary.records,
                                       "chunks": state.chunks.chunk_count if state.chunks else None})
    metrics.add_metric(name="ReadsValidated", unit=MetricUnit.Count, value=summary.records)
    metrics.add_metric(name="BasesValidated", unit=MetricUnit.Count, value=summary.bases)
    return summary.model_dump()
