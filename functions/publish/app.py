"""Publish: pipeline_info/ and manifest.json (last) under results/<sample>/<run_id>/."""

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from helixflow.pipeline.publish import MANIFEST_NAME, publish_run

logger = Logger()
tracer = Tracer()
metrics = Metrics()

s3 = boto3.client("s3")
sfn = boto3.client("stepfunctions")
STAGES = ("validation", "phase1", "phase2")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(state: dict, context: LambdaContext) -> dict:
    request = state["sample"]
    stages = {name: state[name] for name in STAGES if name in state}
    history = [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=state["execution_arn"])
               for e in page["events"]]
    manifest = publish_run(s3=s3, request=request, stages=stages, history_events=history,
                           expected_outputs=[path for stage in stages.values() for path in stage.get("outputs", [])])
    logger.info("run published", extra={"prefix": manifest["prefix"], "files": len(manifest["files"])})
    metrics.add_metric(name="RunsPublished", unit=MetricUnit.Count, value=1)
    return {"manifest_key": request["results_prefix"] + MANIFEST_NAME, "file_count": len(manifest["files"])}
