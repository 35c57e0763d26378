"""Drive the pipeline on a (local) stack the way a user does: upload into incoming/, follow the execution the
upload started, download what it published."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timezone
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helixflow.errors import ClusterNotConfigured, InputTooLarge, InvalidKey
from helixflow_local.exit_codes import ExitCode, ToolError
from helixflow.pipeline.runs import execution_name
from helixflow_local.history import read_history
from helixflow_local.progress import MapItems, Snapshot
from helixflow.pipeline.plan import plan_phase1
from helixflow.pipeline.state import SampleInput
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
    reused: bool = False  # the same inputs and parameters had succeeded as run_id; nothing ran again

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


@dataclass(frozen=True)
class Upload:
    key: str
    etag: str
    version_id: str


def sidecar_for(reads: list[Path], params: dict[str, Any] | None, *, force: bool = False) -> dict[str, Any]:
    """The sample's parameters exactly as this command states them: a lone file named like a mate (S1_R1)
    is declared single-end (the command knows there is no R2), and ``force`` reruns finished work."""
    document = dict(params or {})
    if len(reads) == 1 and parse_incoming_key(INCOMING_PREFIX + reads[0].name).mate:
        document["single_end"] = True
    if force:
        document["force"] = True
    parse_parameters(document, source="--params")
    return document


def needs_ray(reads: list[Path], params: dict[str, Any] | None) -> bool:
    """Whether the pipeline's own plan (on these files' sizes) places Phase 1 on Ray, so the local stack for this
    command must have a Ray head."""
    requested = parse_parameters(params or {}, source="--params").phase1
    if requested != "auto":
        return requested == "ray"
    inputs = [SampleInput(key=INCOMING_PREFIX + path.name, etag="", size=path.stat().st_size, mate=0)
              for path in reads]
    try:
        return plan_phase1(inputs).placement == "ray"
    except ClusterNotConfigured:  # placed on Ray, and this process has no Ray configured (yet)
        return True
    except InputTooLarge:
        return False


def submit(info: StackInfo, reads: list[Path], params: dict[str, Any] | None = None, *,
           force: bool = False, reference: Path | None = None) -> list[Upload]:
    """Upload the reference (to references/, named in the parameters), the sidecar (always: an older sidecar
    must not apply to this run), then the reads, R2 last."""
    keys = incoming_keys(reads)
    s3 = info.client("s3")
    if reference is not None:
        params = {**(params or {}), "reference": f"references/{reference.name}"}
        parse_parameters(params, source="--reference")  # refuse a name the pipeline would refuse, before upload
        s3.upload_file(str(reference), info.bucket, params["reference"])
    sidecar = parse_incoming_key(keys[0]).sidecar_key
    s3.put_object(Bucket=info.bucket, Key=sidecar, ContentType="application/json",
                  Body=json.dumps(sidecar_for(reads, params, force=force)).encode())
    return [upload_file(s3, info.bucket, path, key) for path, key in zip(reads, keys)]


def upload_file(s3: Any, bucket: str, path: Path, key: str) -> Upload:
    """Upload one file and say which object version it became (the executions to follow are that version's)."""
    s3.upload_file(str(path), bucket, key)
    head = s3.head_object(Bucket=bucket, Key=key)
    return Upload(key=key, etag=head["ETag"].strip('"'), version_id=head["VersionId"])


def executions_for(sfn: Any, info: StackInfo, uploaded: list[Upload], known: dict[str, dict]) -> dict[str, dict]:
    """Refresh ``known`` and add the executions whose event is one of these object versions (never an earlier
    upload's)."""
    for arn, described in list(known.items()):
        if described["status"] not in TERMINAL:
            known[arn] = sfn.describe_execution(executionArn=arn)
    markers = {(u.key, u.version_id) for u in uploaded}
    if not markers:
        return known
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=info.state_machine_arn):
        for execution in page["executions"]:
            arn = execution["executionArn"]
            if arn in known:
                continue
            described = sfn.describe_execution(executionArn=arn)
            obj = json.loads(described["input"]).get("detail", {}).get("object", {})
            if (obj.get("key"), obj.get("version-id")) in markers:
                known[arn] = described
    return known


def execution_arn(info: StackInfo, run_id: str) -> str:
    machine = info.state_machine_arn.split(":stateMachine:")
    return f"{machine[0]}:execution:{machine[1]}:{run_id}"


def resume(info: StackInfo, run_id: str) -> str:
    """Start the failed run ``run_id`` again from the event that started it; ResolveSample finds the same
    identity and the checkpoints it left (Phase 1 done -> straight to Publish). A new event id, since the old
    one was delivered already. Returns the new execution's ARN. (In AWS, RedriveExecution is the other way.)"""
    sfn = info.client("stepfunctions")
    try:
        described = sfn.describe_execution(executionArn=execution_arn(info, run_id))
    except sfn.exceptions.ExecutionDoesNotExist:
        raise RunNotFound(f"no run {run_id} on this stack") from None
    if described["status"] != "FAILED":
        raise RunNotFound(f"run {run_id} is {described['status']}; only a failed run resumes")
    event = json.loads(described["input"])
    event["id"] = f"resume-{run_id}-{uuid.uuid4()}"
    return sfn.start_execution(stateMachineArn=info.state_machine_arn, name=execution_name(),
                               input=json.dumps(event))["executionArn"]


def outcome_kind(described: dict) -> str | None:
    """What a finished execution did with the sample: "ran", "failed", "reused", "running_elsewhere", or None
    for one that handed the sample to another execution (a first mate, a repeated event)."""
    if described["status"] not in TERMINAL:
        return None
    if described["status"] != "SUCCEEDED":
        return "failed"
    output = json.loads(described.get("output") or "{}")
    skipped = output.get("skipped")
    if skipped == "already_processed":
        return "reused"
    if skipped == "already_running":
        return "running_elsewhere"
    return "ran" if "publication" in output else None


def execution_history(sfn: Any, execution_arn: str) -> list[dict]:
    """Every event of the execution, oldest first, page by page (moto ignores reverseOrder)."""
    events: list[dict] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def snapshot(sfn: Any, execution_arn: str | None) -> Snapshot:
    """Where the execution is now, with its Distributed Map's item counts while the map runs."""
    now = datetime.now(timezone.utc)
    if execution_arn is None:
        return Snapshot(execution=None, history=None, now=now)
    history = read_history(execution_history(sfn, execution_arn))
    items = None
    if history.map_run_arn:
        items = MapItems.from_counts(sfn.describe_map_run(mapRunArn=history.map_run_arn)["itemCounts"])
    return Snapshot(execution=execution_arn.rsplit(":", 1)[-1], history=history, now=now, map_items=items)


def _followed(sfn: Any, running: list[dict]) -> Snapshot:
    """The snapshot of the execution that is running the sample: not a first mate's, which only waits for the
    second (both run at once for a pair), nor one still before ResolveSample decided."""
    snapshots = [snapshot(sfn, d["executionArn"]) for d in running]
    working = [s for s in snapshots if not s.history.waiting_for_mate]
    return (working or snapshots or [snapshot(sfn, None)])[-1]


def wait_for_run(info: StackInfo, uploaded: list[Upload], *, timeout: float = 1800,
                 on_progress: Callable[[Snapshot], None] = lambda _: None, follow: tuple[str, ...] = ()) -> dict:
    """The execution that ran (or reused, or failed) the sample these uploads make up. A first mate's
    execution waits for its pair and is not it; neither is a repeated event's. ``on_progress`` gets a snapshot
    of the execution running the sample about twice a second, and one last of the execution returned."""
    sfn = info.client("stepfunctions")
    started = time.monotonic()
    deadline = started + timeout
    known: dict[str, dict] = {arn: sfn.describe_execution(executionArn=arn) for arn in follow}
    while True:
        executions_for(sfn, info, uploaded, known)
        decided = [d for d in known.values() if outcome_kind(d)]
        if decided and outcome_kind(decided[0]) == "running_elsewhere":
            # The same work is already running as another execution: follow that one instead.
            arn = execution_arn(info, json.loads(decided[0]["output"])["running_run"])
            known = {arn: sfn.describe_execution(executionArn=arn)}
            uploaded = []
            continue
        if decided:
            on_progress(snapshot(sfn, decided[0]["executionArn"]))
            return decided[0]
        running = [d for d in known.values() if d["status"] not in TERMINAL]
        if known and len(known) >= len(uploaded) and not running:
            raise RunNotStarted("every execution of these uploads handed the sample on and none ran it "
                                "(a mate is missing?)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no finished run after {timeout:.0f} s (executions: {', '.join(d['name'] for d in known.values()) or 'none yet'})")
        on_progress(_followed(sfn, running))
        time.sleep(0.5)


class RunNotStarted(ToolError):
    """The uploads' executions all ended without running the sample."""

    code = "RUN_NOT_STARTED"
    exit_code = ExitCode.RUN_FAILED


class RunNotFound(ToolError):
    """`helixflow resume RUN_ID` names no failed run of this stack."""

    code = "RUN_NOT_FOUND"
    exit_code = ExitCode.REFUSED


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
    output = json.loads(described.get("output") or "{}")
    reused = outcome_kind(described) == "reused"
    run_id = output["reused_run"] if reused else described["name"]
    succeeded = described["status"] == "SUCCEEDED"
    if reused:
        prefix = output["results_prefix"]
    else:
        prefix = _run_prefix(info, "results" if succeeded else "errors", run_id)
    sample = prefix.split("/")[1] if prefix else "_unknown"
    outcome = RunOutcome(status=described["status"], execution_arn=described["executionArn"], run_id=run_id,
                         sample=sample, error=described.get("error"), reused=reused)
    if prefix is None:
        return outcome
    outcome.local_dir = out_dir / prefix
    outcome.downloaded = download_prefix(info, prefix, outcome.local_dir)
    if succeeded:
        outcome.manifest = json.loads((outcome.local_dir / "manifest.json").read_text())
    elif (outcome.local_dir / "error.json").is_file():
        outcome.error_document = json.loads((outcome.local_dir / "error.json").read_text())
    return outcome
