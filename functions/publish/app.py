"""Publish: staged outputs, pipeline_info/ and manifest.json (last) under results/<sample>/<run_id>/."""

import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.cost import parse_function_settings
from helixflow.pipeline.publish import MANIFEST_NAME, complete_run, publish_run
from helixflow.pipeline.state import PipelineState, Publication

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
sfn = boto3.client("stepfunctions")
runs_table = boto3.resource("dynamodb").Table(os.environ["RUNS_TABLE"])
# What pipeline_info/params.json records of each stage: its result, the placement and any cluster job.
STAGES = ("validation", "plan", "phase1_job", "phase1", "plan2", "phase2_job", "phase2")
# Memory (and disk, Map concurrency) of each state's function, which pipeline_info/cost.json prices.
FUNCTIONS = parse_function_settings(os.environ.get("STATE_FUNCTIONS", "{}"))


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.run_id)
    request = state.require_sample()
    stages = state.model_dump(include=set(STAGES), exclude_none=True)
    history = [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=state.execution_arn)
               for e in page["events"]]
    staged = {summary.staged_prefix: summary.outputs for summary in (state.phase1, state.phase2) if summary}
    # The Distributed Map's item count is not in the history (its ItemReader makes MapStateStarted say 0):
    # the chunk plan has it, and the map only lets the run reach Publish when every chunk succeeded.
    item_counts = {"ProcessChunks": state.chunks.chunk_count} if state.chunks else None
    manifest = publish_run(s3=s3, request=request, stages=stages, history_events=history, staged=staged,
                           item_counts=item_counts, jobs=[j for j in (state.phase1_job, state.phase2_job) if j],
                           functions=FUNCTIONS)
    removed = complete_run(s3=s3, runs_table=runs_table, request=request)
    logger.info("run published", extra={"prefix": manifest["prefix"], "files": len(manifest["files"]),
                                        "scratch_objects_removed": removed})
    metrics.add_metric(name="RunsPublished", unit=MetricUnit.Count, value=1)
    return Publication(manifest_key=request.results_prefix + MANIFEST_NAME, file_count=len(manifest["files"])).model_dump()
