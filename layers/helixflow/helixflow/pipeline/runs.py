"""What a run is: its identity, the registry of runs per identity, and the checkpoints a re-run resumes from.

- **Delivery dedup** (EventBridge delivers at least once) stays with Powertools idempotency on the event's id
  in ResolveSample: the same event never starts a second run.
- **Run identity** = sha256 over (sample, each input's mate/etag/size, the effective parameters without the
  run-control fields, the reference's etag when there is one, the pipeline version). Object versions are not
  part of it on purpose: re-uploading the same bytes is the same work.
- **Registry** (the RunsTable, one item per identity): a new upload whose identity already SUCCEEDED ends as
  ``already_processed`` and points at that run's results, unless ``force`` is set; one whose identity is
  RUNNING in a live execution ends as ``already_running``; a FAILED (or stale RUNNING) identity never blocks a
  new run. The claim is one conditional write, so two racing executions cannot both run one identity.
- **Checkpoints**: a finished phase stages its outputs under ``work/<sample>/_checkpoints/<identity>/<phase>/``
  with ``summary.json`` written last. RecordFailure removes a failed run's own scratch but keeps checkpoints, so
  a re-run of that identity (a new upload, or ``helixflow resume RUN_ID``) skips the phase. Publish removes
  the checkpoint once the results are published; the bucket's lifecycle rule expires forgotten ones.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from helixflow import __version__
from helixflow.pipeline.keys import WORK_PREFIX, safe_component
from helixflow.pipeline.state import Phase1Summary, SampleInput

# Parameters that say how to run, not what to compute: they never change a run's identity.
RUN_CONTROL_FIELDS = frozenset({"force", "single_end", "phase1", "validation"})
CHECKPOINTS = "_checkpoints"
SUMMARY_NAME = "summary.json"
Claim = Literal["claimed", "already_processed", "already_running"]


def run_identity(*, sample: str, inputs: list[SampleInput], params: dict[str, Any],
                 reference_etag: str | None = None, pipeline_version: str = __version__) -> str:
    document = {
        "sample": sample,
        "inputs": sorted((item.mate, item.etag, item.size) for item in inputs),
        "params": {k: v for k, v in sorted(params.items()) if k not in RUN_CONTROL_FIELDS},
        "reference": reference_etag,
        "pipeline": pipeline_version,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]


def execution_name(now: datetime | None = None) -> str:
    """A new run id: unique, sortable and a safe path segment (it becomes results/<sample>/<run_id>/)."""
    now = now or datetime.now(timezone.utc)
    return f"run-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def state_machine_of(execution_arn: str) -> str:
    """``arn:...:execution:<machine>:<name>`` -> ``arn:...:stateMachine:<machine>``: a samplesheet's execution
    starts its samples' runs on the state machine it runs in, so no function needs that ARN configured (the
    template could not give it: the state machine already depends on the function)."""
    head, machine, _name = execution_arn.rsplit(":", 2)
    return f"{head.removesuffix(':execution')}:stateMachine:{machine}"


def checkpoint_root(sample: str, identity: str) -> str:
    return f"{WORK_PREFIX}{safe_component(sample)}/{CHECKPOINTS}/{safe_component(identity)}/"


def checkpoint_prefix(sample: str, identity: str, phase: str) -> str:
    return f"{checkpoint_root(sample, identity)}{safe_component(phase)}/"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def claim(table: Any, *, identity: str, run_id: str, execution_arn: str, results_prefix: str, force: bool,
          execution_running: Any) -> tuple[Claim, dict[str, Any] | None]:
    """Register this execution as the run of ``identity``, or say which run already is.

    ``execution_running(arn) -> bool`` tells a live RUNNING claim from one whose execution died without
    recording its end (stopped, timed out)."""
    previous = table.get_item(Key={"pk": f"run#{identity}"}, ConsistentRead=True).get("Item")
    if previous and previous["run_id"] != run_id:
        if previous["status"] == "SUCCEEDED" and not force:
            return "already_processed", previous
        if previous["status"] == "RUNNING" and execution_running(previous["execution_arn"]):
            return "already_running", previous
    item = {"pk": f"run#{identity}", "identity": identity, "run_id": run_id, "execution_arn": execution_arn,
            "status": "RUNNING", "results_prefix": results_prefix, "updated": _now()}
    try:
        if previous:  # replace exactly what was read: a racing claim in between wins, this one yields
            table.put_item(Item=item, ConditionExpression="run_id = :seen",
                           ExpressionAttributeValues={":seen": previous["run_id"]})
        else:
            table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        winner = table.get_item(Key={"pk": f"run#{identity}"}, ConsistentRead=True)["Item"]
        return "already_running", winner
    return "claimed", None


def finish(table: Any, *, identity: str, run_id: str, status: Literal["SUCCEEDED", "FAILED"]) -> bool:
    """Record how the run of ``identity`` ended; a newer claim (``--force``) is left alone. Returns whether
    this run still held the identity."""
    try:
        table.update_item(Key={"pk": f"run#{identity}"}, UpdateExpression="SET #s = :status, updated = :now",
                          ConditionExpression="run_id = :run", ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":status": status, ":now": _now(), ":run": run_id})
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def has_failed(table: Any, *, identity: str, run_id: str) -> bool:
    """Whether RecordFailure has marked this run failed (a consistent read). A Map item's invocation can outlive
    its failed Map (Step Functions stops the child executions, not a Lambda invocation already running): such
    a writer asks this after its writes and withdraws them. RecordFailure marks the run before it cleans the
    scratch, so each late write is either listed by that cleanup or sees the mark."""
    item = table.get_item(Key={"pk": f"run#{identity}"}, ConsistentRead=True).get("Item") or {}
    return item.get("run_id") == run_id and item.get("status") == "FAILED"


def load_checkpoint(s3: Any, bucket: str, sample: str, identity: str, phase: str) -> Phase1Summary | None:
    key = checkpoint_prefix(sample, identity, phase) + SUMMARY_NAME
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return Phase1Summary.model_validate_json(body)
