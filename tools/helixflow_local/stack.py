"""The local stack: moto (with its Step Functions interpreter) + our real Lambdas + the S3 event poller.

Everything is created from template.yaml. One process holds it all: `helixflow local up` starts this module
as a detached process that writes ``stack.json`` into the state directory once ready; tests and
`helixflow run` without a running stack start it in-process.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import socket
import threading
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3

from helixflow_local.events import eventbridge_object_created
from helixflow_local.cloudwatch import ALARM_PRINCIPAL, Alarm, LocalCloudWatch, rate_seconds
from helixflow_local.ray_head import WORKER_RESOURCE, LocalRay
from helixflow_local.runtime import LambdaRuntime, ServiceFault
from helixflow_local.slurm import LocalSlurm
from helixflow_local.template import LocalNames, Template
from helixflow.pipeline.keys import EVENT_SUFFIXES, INCOMING_PREFIX
from helixflow.pipeline.runs import execution_name

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK_NAME = "helixflow-local"
STACK_FILE = "stack.json"
RESET_TIMEOUT_S = 600
log = logging.getLogger("helixflow_local")
# Waits really sleep on moto's interpreter, so the local stack deploys the template with short ones.
LOCAL_PARAMETERS = {"MateWaitSeconds": "120", "JobPollFirstSeconds": "1", "JobPollMaxSeconds": "5"}

# With elasticity on: 10 s alarm periods (high-resolution, as CloudWatch allows), the metrics published every
# 5 s, 2 idle periods before scaling in and a 10 s cooldown, so a burst test sees the whole loop in about a minute.
ELASTIC_PARAMETERS = {"MetricsScheduleRate": "rate(5 seconds)", "ScalingPeriodSeconds": "10",
                      "ScaleInIdlePeriods": "2", "ScalingCooldownSeconds": "10", "ScalingJobsPerNode": "1"}
# Ray's autoscaler removes a local worker node idle this long (cluster.yaml's idle_timeout_minutes in AWS).
RAY_IDLE_TIMEOUT_MINUTES = 0.1
# Elastic Slurm nodes of partition cpu with elasticity on and no Ray worker count to match (ScalingMaxNodes).
ELASTIC_SLURM_NODES = 2

_active_runtime: LambdaRuntime | None = None


def _ray_worker_parameters(workers: int) -> dict[str, str]:
    # A local worker node is one CPU plus the resource only workers have (helixflow_local.ray_head).
    return {"ScalingMaxNodes": str(workers), "RayWorkerBundle": json.dumps({"CPU": 1, WORKER_RESOURCE: 1})}


class CheckoutNotFound(Exception):
    """The local stack needs a helixflow checkout (template.yaml, statemachines/, functions/)."""


def repository_root(configured: Path | str | None = None) -> Path:
    """The checkout whose template.yaml the stack runs: ``configured`` (``--root``), else $HELIXFLOW_HOME, else
    the current directory. Nothing is guessed from where the package happens to be installed."""
    source = "--root" if configured else "HELIXFLOW_HOME" if os.environ.get("HELIXFLOW_HOME") else "the current directory"
    candidate = Path(configured or os.environ.get("HELIXFLOW_HOME") or Path.cwd()).resolve()
    if (candidate / "template.yaml").is_file() and (candidate / "statemachines").is_dir():
        return candidate
    raise CheckoutNotFound(f"no template.yaml and statemachines/ in {candidate} ({source}): run from the "
                           "helixflow checkout or set HELIXFLOW_HOME to it")


def default_state_dir() -> Path:
    return Path(os.environ.get("HELIXFLOW_STATE_DIR", Path.home() / ".helixflow" / "local"))


@dataclass
class StackInfo:
    endpoint_url: str
    region: str
    bucket: str
    state_machine_arn: str
    queue_url: str
    pid: int
    state_dir: str
    ray_url: str | None = None
    slurm_url: str | None = None
    slurm_state_dir: str | None = None
    console_url: str | None = None

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id="local", aws_secret_access_key="local")

    @classmethod
    def load(cls, state_dir: Path) -> StackInfo | None:
        path = state_dir / STACK_FILE
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))


def _bound_moto_server(port: int) -> Any:
    """moto's ThreadedMotoServer, bound here before its thread starts. ``port`` 0 lets the OS pick a free port
    and the server holds it from that moment (a port probed free, closed and bound later can be taken in
    between); a port in use raises OSError(EADDRINUSE) here, where ThreadedMotoServer.start() would wait forever
    for a thread that died binding it."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    # Bound here rather than by werkzeug, which turns a bind error into sys.exit(1).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server._server = make_server("127.0.0.1", port, DomainDispatcherApplication(create_backend_app), True,
                                     request_handler=MotoRequestHandler, fd=sock.fileno())  # a dup of sock
    server._port = server._server.server_address[1]
    server._thread = threading.Thread(target=server._server.serve_forever, name="moto-server", daemon=True)
    server._thread.start()
    server._server_ready_event.set()
    return server


def _patch_moto() -> list[tuple[Any, str, Any]]:
    """Where moto 5.2 lacks what AWS does, in this process only; returns what ``_restore_moto`` puts back.

    - Lambda: moto runs a function through LambdaFunction._invoke_lambda (Docker); run our handlers instead.
    - S3 notifications: moto's records carry no ``versionId`` or ``sequencer`` (AWS's always do on a versioned
      bucket); without them an execution cannot be tied to the object version that started it.
    - DynamoDB: moto's UpdateItem reads, copies and writes the item with nothing held, so two mates recording
      themselves at once (each in its own server thread) can both see only themselves and both wait for the
      other (seen under load: MateMissing on a complete pair). DynamoDB applies each write atomically;
      one lock around moto's writes does here.
    - S3 ranged GETs: moto reads the whole object for each one and then slices it, so the chunk readers' 8 MB
      ranges of a 300 MB object cost ~40 whole reads (py-spy on a Ray run: the moto server's largest share of
      samples). A ranged GET in S3 costs its range; here the range is read from moto's buffer alone."""
    from moto.awslambda.models import LambdaFunction
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.models import DynamoDBBackend
    from moto.s3 import notifications
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    def invoke(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        if _active_runtime is None:
            raise JsonRESTError("ServiceException", "helixflow local runtime is not running")
        try:
            payload, errored = _active_runtime.invoke(function.function_name, event if event is not None else {})
        except ServiceFault as fault:
            raise JsonRESTError(fault.code, "fault injected by the helixflow local stack") from None
        return json.dumps(payload), errored, ""

    original_event = notifications._get_s3_event

    def s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        body = original_event(event_name, bucket, key, notification_id)
        for record in body["Records"]:
            obj = record["s3"]["object"]
            if getattr(key, "version_id", None) and key.version_id != "null":
                obj["versionId"] = key.version_id
            obj["sequencer"] = f"{int(key.last_modified.timestamp() * 1e6):016X}"
        return body

    writes = threading.Lock()

    def atomic(write: Any) -> Any:
        def locked(*args: Any, **kwargs: Any) -> Any:
            with writes:
                return write(*args, **kwargs)
        return locked

    ranged = threading.local()  # set while a GET with one byte range builds its response
    whole_value = FakeKey.value

    def get_object(self: S3Response) -> Any:
        spec = self.headers.get("range", "") if hasattr(self, "headers") else ""
        ranged.on = spec.startswith("bytes=") and "," not in spec
        try:
            return original_get_object(self)
        finally:
            ranged.on = False

    def value(self: FakeKey) -> Any:
        return _RangeView(self) if getattr(ranged, "on", False) else whole_value.fget(self)

    original_get_object = S3Response.get_object
    patches = [(LambdaFunction, "_invoke_lambda", invoke), (notifications, "_get_s3_event", s3_event),
               (S3Response, "get_object", get_object), (FakeKey, "value", property(value, whole_value.fset)),
               *((DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))
                 for name in ("put_item", "update_item", "delete_item", "transact_write_items"))]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    return saved


class _RangeView:
    """An object's bytes as moto's range handling reads them (its length, then one slice), read from the object's
    buffer for that slice only."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def __len__(self) -> int:
        return self.key.size

    def __getitem__(self, part: slice) -> bytes:
        start, stop, _ = part.indices(self.key.size)
        with self.key.lock:
            self.key._value_buffer.seek(start)
            return self.key._value_buffer.read(max(0, stop - start))

    def __iter__(self) -> Any:  # a range moto answers whole (unparsable, or several ranges): every byte
        yield self[:]


def _restore_moto(saved: list[tuple[Any, str, Any]]) -> None:
    for owner, name, original in saved:
        setattr(owner, name, original)


class LocalStack:
    def __init__(self, state_dir: Path, *, root: Path | None = None, port: int | None = None,
                 max_concurrency: int = 4, parameters: dict[str, str] | None = None,
                 environment: dict[str, str] | None = None, ray: bool = False, slurm: bool = False,
                 elasticity: bool = False, ray_workers: int = 0, console: bool = True) -> None:
        """``parameters`` override template.yaml's (as `sam deploy --parameter-overrides` does);
        ``environment`` is added to every function's (a test double, say). ``ray`` also starts a local Ray head
        (token auth on) and deploys the stack with it as the Ray cluster, as `RayJobsUrl` does in AWS; ``slurm``
        starts a local Slurm (helixflow_local.slurm) as the Phase 2 cluster, as `SlurmRestUrl` / `PcsClusterId`
        do. ``elasticity`` runs the template's schedules and evaluates its alarms (helixflow_local.cloudwatch),
        with the short periods of ``ELASTIC_PARAMETERS``; ``ray_workers`` > 0 gives the Ray head Ray's own
        autoscaler with up to that many worker nodes (its fake multi-node provider), as the cluster launcher's
        cluster.yaml gives it EC2 workers. With ``slurm`` too, Slurm's partition cpu becomes that many (default
        ``ELASTIC_SLURM_NODES``) elastic nodes under Slurm's power saving, whose bounds the scaling Lambda moves
        as it moves a PCS node group's (helixflow.scaling.decide.LocalSlurmFloor). ``console`` serves the read-only
        console (helixflow_local.console) on 127.0.0.1."""
        self.root = root or repository_root()
        self.state_dir = state_dir
        self.port = port or 0  # 0: the server binds a free port at start() and holds it
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.max_concurrency = max_concurrency
        self.template = Template(self.root / "template.yaml")
        # With elasticity, Slurm's partition cpu is a node group of elastic nodes (as many as Ray's workers: one
        # ScalingMaxNodes bounds both), powered up and down by Slurm with the floor the scaling Lambda sets.
        self.slurm_nodes = (ray_workers or ELASTIC_SLURM_NODES) if slurm and elasticity else 0
        parameters = {**LOCAL_PARAMETERS, **(ELASTIC_PARAMETERS if elasticity else {}),
                      **(_ray_worker_parameters(ray_workers) if ray and ray_workers else {}),
                      **({"ScalingMaxNodes": str(self.slurm_nodes)} if self.slurm_nodes else {}), **(parameters or {})}
        unknown = set(parameters) - set(self.template.parameter_defaults())
        if unknown:
            raise ValueError(f"template.yaml has no parameter(s) {', '.join(sorted(unknown))}")
        self.names = LocalNames(STACK_NAME, REGION, ACCOUNT, parameters=parameters)
        self.environment = dict(environment or {})
        self.ray = None
        if ray:
            # The autoscaling head's sockets live under its state directory: keep that path short.
            self.ray = (LocalRay(state_dir / "ray-head", autoscaling=True, num_cpus=1, max_workers=ray_workers,
                                 idle_timeout_minutes=RAY_IDLE_TIMEOUT_MINUTES) if ray_workers
                        else LocalRay(state_dir / "ray-head"))
        self.elasticity = elasticity
        self.cloudwatch: LocalCloudWatch | None = None
        self._slurm_temporary: Path | None = None
        self.slurm = LocalSlurm(self._slurm_state_dir(), elastic_nodes=self.slurm_nodes) if slurm else None
        self.runtime: LambdaRuntime | None = None
        self.console = console
        self._console_server = None
        self.info: StackInfo | None = None
        self._server = None
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None
        self.started_executions: list[dict[str, str]] = []
        self._delivered: set[str] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> StackInfo:
        global _active_runtime
        from moto.core.config import default_user_config

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._server = _bound_moto_server(self.port)
        self.port = self._server._port
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        if self.ray is not None:
            # The cluster reaches this stack's S3 as Ray workers in AWS reach S3 with their instance profile.
            self.ray.job_environment.update({"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_DEFAULT_REGION": REGION,
                                             "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"})
            try:
                self.ray.start()
            except Exception:
                self._server.stop()
                raise
            self.names.parameters["RayJobsUrl"] = self.ray.url
            self.environment.update(self.ray.environment())
        if self.slurm is not None:
            try:
                self.slurm.start()
            except Exception:
                if self.ray is not None:
                    self.ray.stop()
                self._server.stop()
                raise
            self.names.parameters["SlurmRestUrl"] = self.slurm.rest_url
            self.names.parameters["Phase2CpusPerRank"] = str(self.slurm.cpus_per_node)
            self.environment.update(self.slurm.environment())
            # The job reaches this stack's S3 as PCS nodes reach S3 with their instance profile, and imports
            # helixflow from the checkout the stack runs (the interpreter may be installed from another one).
            self.environment["HELIXFLOW_SLURM_JOB_ENVIRONMENT"] = json.dumps({
                "AWS_ENDPOINT_URL": self.endpoint_url, "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                "PYTHONPATH": str(self.root / "layers" / "helixflow")})
        # Request lines and moto's per-state failure traces would drown the pipeline's own output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        logging.getLogger("moto").setLevel(logging.ERROR)
        # It logs every caught task failure at ERROR; our Catch branch records those in errors/.
        logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(logging.CRITICAL)
        # moto's Step Functions engine calls Lambda through its own server at this port.
        self._restore = (os.environ.get("MOTO_PORT"), default_user_config["stepfunctions"]["execute_state_machine"])
        os.environ["MOTO_PORT"] = str(self.port)
        default_user_config["stepfunctions"]["execute_state_machine"] = True
        self._moto_patches = _patch_moto()
        self.info = self._provision()
        _active_runtime = self.runtime
        if self.console:
            from helixflow_local.console.reader import Reader
            from helixflow_local.console.server import ConsoleServer

            from helixflow_local.console.job_logs import JobLogs

            # moto's ListExecutions ignores mapRunArn: the console shows the map run's counts, not its children.
            reader = Reader(self.client, self.info.state_machine_arn, self.info.bucket, lists_map_children=False,
                            job_logs=JobLogs(self.environment))
            self._console_server = ConsoleServer(reader, local_logs=str(self.state_dir / "logs"))
            self.info.console_url = self._console_server.start()
        self._poller = threading.Thread(target=self._poll_events, name="s3-event-poller", daemon=True)
        self._poller.start()
        if self.elasticity:
            self.cloudwatch = self._local_cloudwatch()
            self.cloudwatch.start()
        return self.info

    def stop(self) -> None:
        global _active_runtime
        self._stopping.set()
        if self.cloudwatch is not None:
            self.cloudwatch.stop()
        if self._console_server is not None:
            self._console_server.stop()
        if self._poller:
            self._poller.join(timeout=5)
        if self.runtime:
            self.runtime.close()
        if _active_runtime is self.runtime:
            _active_runtime = None
        if self._server:
            # moto's backends are process-wide: forget this stack's resources so another can start here.
            # A reset drops every stored object; after a run of GBs that takes longer than a request usually may
            # (a 2 GB pair's benchmark timed out at 10 s and lost its results), hence the long timeout.
            reset = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
            urllib.request.urlopen(reset, timeout=RESET_TIMEOUT_S).close()
            self._server.stop()
            from moto.core.config import default_user_config

            port, executes = self._restore
            default_user_config["stepfunctions"]["execute_state_machine"] = executes
            _restore_moto(self._moto_patches)
        if self.slurm is not None:
            self.slurm.stop()
            if self._slurm_temporary is not None:
                import shutil

                shutil.rmtree(self._slurm_temporary, ignore_errors=True)
        if self.ray is not None:
            self.ray.stop()
            if port is None:
                os.environ.pop("MOTO_PORT", None)
            else:
                os.environ["MOTO_PORT"] = port

    def _slurm_state_dir(self) -> Path:
        """``<state dir>/slurm`` where ``nobody`` (slurmrestd, when started as root) can traverse to it; else a
        short private directory under /tmp (pytest's and ~/.helixflow's parents are often mode 700)."""
        wanted = (self.state_dir / "slurm").resolve()
        if os.geteuid() != 0 or all(d.stat().st_mode & 0o001 for d in wanted.parents if d.exists()):
            return wanted
        import tempfile

        self._slurm_temporary = Path(tempfile.mkdtemp(prefix="hf-slurm-", dir="/tmp"))
        return self._slurm_temporary

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id="local", aws_secret_access_key="local")

    # ------------------------------------------------------------------ resources from template.yaml
    def _provision(self) -> StackInfo:
        for logical_id in self.template.resources:
            self.names.physical[logical_id] = f"{STACK_NAME}-{logical_id}"
        bucket = self._create_bucket()
        self._create_tables()
        role_arn = self.client("iam").create_role(
            RoleName=f"{STACK_NAME}-execution", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17",
                                                                                   "Statement": []}))["Role"]["Arn"]
        lambda_client = self.client("lambda")
        for logical_id in self.template.of_type("AWS::Serverless::Function"):
            self.names.arns[logical_id] = (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
                                           f"{self.names.physical[logical_id]}")
        specs = self.template.functions(self.names)
        for spec in specs:
            spec.environment.update(self.environment)
        for spec in specs:
            lambda_client.create_function(
                FunctionName=spec.name, Runtime="python3.11", Role=role_arn, Handler=spec.handler,
                Code={"ZipFile": _zip_directory(spec.code_dir)}, Timeout=spec.timeout, MemorySize=spec.memory_mb,
                Environment={"Variables": spec.environment})
        self.runtime = LambdaRuntime(specs, endpoint_url=self.endpoint_url, region=REGION,
                                     log_dir=self.state_dir / "logs", max_concurrency=self.max_concurrency,
                                     logs=self.client("logs"))
        logical_id, definition = self.template.state_machine(self.names)
        state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=f"{STACK_NAME}-pipeline", definition=definition, roleArn=role_arn)["stateMachineArn"]
        queue_url = self._connect_bucket_to_queue(bucket)
        return StackInfo(ray_url=self.ray.url if self.ray else None,
                         slurm_url=self.slurm.rest_url if self.slurm else None,
                         slurm_state_dir=str(self.slurm.state_dir) if self.slurm else None, endpoint_url=self.endpoint_url, region=REGION,
                         bucket=bucket,
                         state_machine_arn=state_machine_arn, queue_url=queue_url, pid=os.getpid(),
                         state_dir=str(self.state_dir))

    def _local_cloudwatch(self) -> LocalCloudWatch:
        """The template's alarms, the Lambda permissions naming them, and its ScheduleV2 events."""
        alarms, allowed, schedules = [], set(), []
        for logical_id, resource in self.template.of_type("AWS::CloudWatch::Alarm").items():
            name = self.names.physical[logical_id]
            self.names.arns[logical_id] = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
            props = self.template.resolve(resource["Properties"], self.names)
            alarms.append(Alarm.from_template(name, self.names.arns[logical_id], props))
        for resource in self.template.of_type("AWS::Lambda::Permission").values():
            props = self.template.resolve(resource["Properties"], self.names)
            if props["Principal"] == ALARM_PRINCIPAL and props["Action"] == "lambda:InvokeFunction":
                allowed.add((props["FunctionName"], props["SourceArn"]))
        for logical_id, resource in self.template.of_type("AWS::Serverless::Function").items():
            for event in resource["Properties"].get("Events", {}).values():
                if event["Type"] == "ScheduleV2":
                    expression = self.template.resolve(event["Properties"]["ScheduleExpression"], self.names)
                    schedules.append((self.names.arns[logical_id], rate_seconds(expression)))
        lambda_client = self.client("lambda")

        def invoke(arn: str, event: dict[str, Any]) -> Any:
            answer = lambda_client.invoke(FunctionName=arn, Payload=json.dumps(event))
            return json.loads(answer["Payload"].read() or b"null")

        return LocalCloudWatch(self.client("cloudwatch"), invoke, account=ACCOUNT, region=REGION, alarms=alarms,
                               allowed=allowed, schedules=schedules)

    def _create_bucket(self) -> str:
        logical_id = self.template.data_bucket()
        bucket = self.names.physical[logical_id].lower()
        self.names.physical[logical_id] = bucket
        self.names.arns[logical_id] = f"arn:aws:s3:::{bucket}"
        s3 = self.client("s3")
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        return bucket

    def _create_tables(self) -> None:
        dynamodb = self.client("dynamodb")
        for logical_id, resource in self.template.of_type("AWS::DynamoDB::Table").items():
            props = resource["Properties"]
            name = self.names.physical[logical_id]
            dynamodb.create_table(TableName=name, AttributeDefinitions=props["AttributeDefinitions"],
                                  KeySchema=props["KeySchema"], BillingMode=props["BillingMode"])
            ttl = props.get("TimeToLiveSpecification")
            if ttl:
                dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
            self.names.arns[logical_id] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"

    def _connect_bucket_to_queue(self, bucket: str) -> str:
        sqs = self.client("sqs")
        queue_url = sqs.create_queue(QueueName=f"{STACK_NAME}-object-created")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        # One configuration per suffix mirrors the template's EventBridge rule (incoming/*.fastq, ...,
        # incoming/*.samplesheet.csv).
        self.client("s3").put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
                 "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": INCOMING_PREFIX},
                                                    {"Name": "suffix", "Value": suffix}]}}}
                for suffix in EVENT_SUFFIXES]})
        return queue_url

    # ------------------------------------------------------------------ events
    def _poll_events(self) -> None:
        sqs = self.client("sqs")
        sfn = self.client("stepfunctions")
        while not self._stopping.is_set():
            try:
                messages = sqs.receive_message(QueueUrl=self.info.queue_url, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1).get("Messages", [])
            except Exception:  # the server is going away during shutdown
                if self._stopping.is_set():
                    return
                raise
            for message in messages:
                for record in json.loads(message["Body"]).get("Records", []):
                    if not record.get("eventName", "").startswith("ObjectCreated"):
                        continue
                    event = eventbridge_object_created(record, account=ACCOUNT)
                    if event["id"] in self._delivered:  # moto's second notification of one version
                        continue
                    self._delivered.add(event["id"])
                    name = execution_name()
                    arn = sfn.start_execution(stateMachineArn=self.info.state_machine_arn, name=name,
                                              input=json.dumps(event))["executionArn"]
                    self.started_executions.append({"key": event["detail"]["object"]["key"], "arn": arn})
                    log.info("started %s for s3://%s/%s", name, event["detail"]["bucket"]["name"],
                             event["detail"]["object"]["key"])
                sqs.delete_message(QueueUrl=self.info.queue_url, ReceiptHandle=message["ReceiptHandle"])


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(directory.rglob("*.py")):
            archive.write(path, path.relative_to(directory))
    return buffer.getvalue()


def serve(state_dir: Path, ray: bool = False, slurm: bool = False, scaling: int = 0) -> None:
    """Run the stack until SIGTERM/SIGINT; stack.json exists exactly while it serves."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stack = LocalStack(state_dir, ray=ray, slurm=slurm, elasticity=scaling > 0, ray_workers=scaling)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    info = stack.start()
    stack_file = state_dir / STACK_FILE
    temporary = stack_file.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(info), indent=2))
    temporary.replace(stack_file)
    log.info("local stack ready at %s", info.endpoint_url)
    try:
        stop.wait()
    finally:
        stack_file.unlink(missing_ok=True)
        stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="helixflow local stack (started by `helixflow local up`)")
    parser.add_argument("--state-dir", type=Path, default=default_state_dir())
    parser.add_argument("--with-ray", action="store_true", help="also start a local Ray head (token auth)")
    parser.add_argument("--with-slurm", action="store_true", help="also start a local Slurm (slurmrestd, JWT)")
    parser.add_argument("--with-scaling", type=int, default=0, metavar="N",
                        help="run schedules and evaluate alarms; Ray's autoscaler gets up to N workers")
    arguments = parser.parse_args()
    serve(arguments.state_dir, ray=arguments.with_ray, slurm=arguments.with_slurm, scaling=arguments.with_scaling)
