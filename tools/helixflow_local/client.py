"""Drive the pipeline on a (local) stack the way a user does: upload into incoming/, follow the execution the
upload started, download what it published."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helixflow.errors import InvalidKey
from helixflow_local.stack import StackInfo
from helixflow.pipeline.keys import INCOMING_PREFIX, parse_incoming_key
from helixflow.pipeline.params import parse_parameters

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@dataclass
class RunOutcome:
    status: str
    execution_arn: str
    run_id: str
    sample: str
    error: str | None = None
    error_document: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    local_dir: Path | None = None
    downloaded: list[Path] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


def incoming_keys(reads: list[Path]) -> list[str]:
    """The keys the files will have under incoming/, checked with the pipeline's own key rules first."""
    if len(reads) == 2 and _same_file(*reads):
        # Checked first: one file given twice would otherwise be reported as two files that are not mates.
        raise InvalidKey(f"{reads[0]} and {reads[1]} are the same file: give R1 and R2", code="SAME_FILE")
    keys = [INCOMING_PREFIX + path.name for path in reads]
    parsed = [parse_incoming_key(key) for key in keys]
    if len(parsed) == 2:
        first, second = parsed
        if first.sample != second.sample or {first.mate, second.mate} != {1, 2}:
            raise InvalidKey(f"{reads[0].name} and {reads[1].name} are not mates of one sample "
                             "(expected <sample>_R1 / <sample>_R2 or _1 / _2)", code="NOT_A_PAIR")
    return keys


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # one does not exist (yet): the paths are all there is to compare
        return first.resolve() == second.resolve()


def submit(info: StackInfo, reads: list[Path], params: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """Upload (sidecar first, then reads, R2 last); return [(key, etag)] of the uploaded reads."""
    keys = incoming_keys(reads)
    s3 = info.client("s3")
    if params is not None:
        parse_parameters(params, source="--params")
        sidecar = parse_incoming_key(keys[0]).sidecar_key
        s3.put_object(Bucket=info.bucket, Key=sidecar, Body=json.dumps(params).encode(),
                      ContentType="application/json")
    uploaded = []
    for path, key in zip(reads, keys):
        s3.upload_file(str(path), info.bucket, key)
        uploaded.append((key, s3.head_object(Bucket=info.bucket, Key=key)["ETag"].strip('"')))
    return uploaded


def _executions_for(sfn: Any, info: StackInfo, uploaded: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    found = {}
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=info.state_machine_arn):
        for execution in page["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            detail = json.loads(described["input"]).get("detail", {})
            marker = (detail.get("object", {}).get("key"), detail.get("object", {}).get("etag"))
            if marker in uploaded:
                found[marker] = described
    return found


def current_state(sfn: Any, execution_arn: str) -> str:
    events = sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=20)["events"]
    for event in events:
        if "stateEnteredEventDetails" in event:
            return event["stateEnteredEventDetails"]["name"]
    return "Starting"


def wait_for_run(info: StackInfo, uploaded: list[tuple[str, str]], *, timeout: float = 1800,
                 on_progress: Callable[[str], None] = lambda _: None) -> dict:
    """Wait for every execution the uploads started; return the one that ran the sample (the other mate's
    ends as waiting for its pair)."""
    sfn = info.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        found = _executions_for(sfn, info, uploaded)
        running = [d for d in found.values() if d["status"] not in TERMINAL]
        if len(found) == len(uploaded) and not running:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"no finished execution for {', '.join(k for k, _ in uploaded)} after {timeout:.0f} s")
        on_progress(current_state(sfn, running[0]["executionArn"]) if running else "waiting for the event")
        time.sleep(0.5)
    for described in found.values():
        if described["status"] != "SUCCEEDED":
            return described
        if json.loads(described.get("output") or "{}").get("sample", {}).get("status") == "ready":
            return described
    raise RuntimeError("every execution ended without running the sample (a mate is missing?)")


def download_prefix(info: StackInfo, prefix: str, destination: Path) -> list[Path]:
    s3 = info.client("s3")
    written = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=info.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            target = destination / obj["Key"][len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(info.bucket, obj["Key"], str(target))
            written.append(target)
    return written


def _run_prefix(info: StackInfo, kind: str, run_id: str) -> str | None:
    """results/<sample>/<run_id>/ or errors/<sample>/<run_id>/: the run id is unique, the sample may not be
    derivable client-side (e.g. a rejected key), so look it up."""
    s3 = info.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=info.bucket, Prefix=f"{kind}/"):
        for obj in page.get("Contents", []):
            parts = obj["Key"].split("/")
            if len(parts) > 3 and parts[2] == run_id:
                return "/".join(parts[:3]) + "/"
    return None


def collect(info: StackInfo, described: dict, out_dir: Path) -> RunOutcome:
    run_id = described["name"]
    succeeded = described["status"] == "SUCCEEDED"
    kind = "results" if succeeded else "errors"
    prefix = _run_prefix(info, kind, run_id)
    sample = prefix.split("/")[1] if prefix else "_unknown"
    outcome = RunOutcome(status=described["status"], execution_arn=described["executionArn"], run_id=run_id,
                         sample=sample, error=described.get("error"))
    if prefix is None:
        return outcome
    outcome.local_dir = out_dir / prefix
    outcome.downloaded = download_prefix(info, prefix, outcome.local_dir)
    if succeeded:
        outcome.manifest = json.loads((outcome.local_dir / "manifest.json").read_text())
    elif (outcome.local_dir / "error.json").is_file():
        outcome.error_document = json.loads((outcome.local_dir / "error.json").read_text())
    return outcome
