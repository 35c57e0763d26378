"""Publish: staged outputs, pipeline_info/ and manifest.json (last) under results/<sample>/<run_id>/."""

import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.cost import parse_function_settings
from helixflow.pipeline.publish import (MANIFEST_NAME, complete_run, execution_history, publish_run, recorded_stages,
                                        trace_inputs)
from helixflow.pipeline.state import PipelineState, Publication

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
sfn = boto3.client("stepfunctions")
runs_table = boto3.resource("dynamodb").Table(os.environ["RUNS_TABLE"])
# Memory (and disk, Map concurrency) of each state's function, which pipeline_info/cost.json prices.
FUNCTIONS = parse_function_settings(os.environ.get("STATE_FUNCTIONS", "{}"))


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict:
    logger.append_keys(run_id=state.run_id)
    request = state.require_sample()
    history = execution_history(sfn, state.execution_arn)
    staged = {s.staged_prefix: s.outputs for s in (state.phase1, state.phase2, state.report) if s}
    manifest = publish_run(s3=s3, request=request, stages=recorded_stages(state), history_events=history,
                           staged=staged, functions=FUNCTIONS, **trace_inputs(state))
    removed = complete_run(s3=s3, runs_table=runs_table, request=request)
    logger.info("run published", extra={"prefix": manifest["prefix"], "files": len(manifest["files"]),
                                        "scratch_objects_removed": removed})
    metrics.add_metric(name="RunsPublished", unit=MetricUnit.Count, value=1)
    return Publication(manifest_key=request.results_prefix + MANIFEST_NAME, file_count=len(manifest["files"])).model_dump()
