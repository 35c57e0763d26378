"""template.yaml and the state machine: the linters users and AWS run, plus the security rules we promise."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helixflow.pipeline.keys import EVENT_SUFFIXES
from helixflow_local.template import LocalNames, Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Template(ROOT / "template.yaml")
ASL_PATH = ROOT / "statemachines" / "pipeline.asl.json"
SAM = shutil.which("sam") or str(ROOT / ".venv-sam" / "bin" / "sam")
VENV_BIN = Path(sys.executable).parent


def _substituted_definition(tmp_path: Path) -> Path:
    names = LocalNames("helixflow-lint", "us-east-1", "123456789012")
    for logical_id in TEMPLATE.resources:
        names.physical[logical_id] = f"helixflow-lint-{logical_id}"
        names.arns[logical_id] = f"arn:aws:lambda:us-east-1:123456789012:function:helixflow-lint-{logical_id}"
    _, definition = TEMPLATE.state_machine(names)
    path = tmp_path / "pipeline.json"
    path.write_text(definition)
    return path


def test_cfn_lint_is_clean():
    result = subprocess.run([str(VENV_BIN / "cfn-lint"), str(ROOT / "template.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_is_clean():
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run([SAM, "validate", "--lint", "--region", "us-east-1", "--template", "template.yaml"],
                            cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_statelint_is_clean_on_the_substituted_definition(tmp_path):
    path = _substituted_definition(tmp_path)
    # statelint 3.1 predates ItemReader.ReaderConfig.InputType (AWS documents "JSON"; moto needs it to read the
    # chunk manifest as an array), so only that field is taken out before linting.
    definition = json.loads(path.read_text())
    reader = definition["States"]["ProcessChunks"]["ItemReader"]
    assert reader.pop("ReaderConfig") == {"InputType": "JSON"}
    path.write_text(json.dumps(definition))
    result = subprocess.run([str(VENV_BIN / "statelint"), str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_definition_substitution_is_used_and_every_placeholder_defined():
    (_, machine), = TEMPLATE.of_type("AWS::Serverless::StateMachine").items()
    defined = set(machine["Properties"]["DefinitionSubstitutions"])
    used = set(re.findall(r"\$\{(\w+)\}", ASL_PATH.read_text()))
    assert defined == used


def test_every_task_retries_transient_lambda_errors_and_catches_into_the_failure_branch():
    states = json.loads(ASL_PATH.read_text())["States"]
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}
    assert tasks
    for name, state in tasks.items():
        retried = {error for rule in state["Retry"] for error in rule["ErrorEquals"]}
        assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException",
                "Lambda.SdkClientException"} <= retried, name
        for rule in state["Retry"]:
            assert rule["BackoffRate"] >= 1.0 and rule["MaxAttempts"] >= 1, name
        catch = state["Catch"]
        assert catch[-1]["ErrorEquals"] == ["States.ALL"], name
        # BatchReport runs after the run ended (published or failed): its error is kept and the run ends as it was.
        assert catch[-1]["Next"] == {"RecordFailure": "FailRun", "BatchReport": "RunOutcome"}.get(name, "RecordFailure"), \
            name
        assert catch[-1]["ResultPath"].startswith("$."), name  # keeps the input for the failure branch
    assert states["FailRun"]["Type"] == "Fail" and states["FailRun"]["ErrorPath"] == "$.failure.Error"


def _tasks(states: dict) -> dict[str, dict]:
    """Every Task of the machine, the Map iterators' included."""
    found = {}
    for name, state in states.items():
        if state["Type"] == "Task":
            found[name] = state
        for processor in (state.get("ItemProcessor"), state.get("Iterator")):
            if processor:
                found.update(_tasks(processor["States"]))
        for branch in state.get("Branches", []):
            found.update(_tasks(branch["States"]))
    return found


def test_every_task_times_out_after_its_function_and_not_much_later():
    """A Task that times out first makes Step Functions retry (or fail) work that is still running, and its
    clock starts before the function's (cold start, queued invoke), so it gets up to a minute more than the
    function; much more only delays the failure of a function that already stopped."""
    (_, machine), = TEMPLATE.of_type("AWS::Serverless::StateMachine").items()
    substitutions = machine["Properties"]["DefinitionSubstitutions"]
    default = TEMPLATE.document["Globals"]["Function"]["Timeout"]
    tasks = _tasks(json.loads(ASL_PATH.read_text())["States"])
    assert "ProcessChunk" in tasks
    for name, task in tasks.items():
        placeholder = re.fullmatch(r"\$\{(\w+)\}", task["Parameters"]["FunctionName"])[1]
        function, attribute = substitutions[placeholder]["Fn::GetAtt"]
        assert attribute == "Arn", name
        timeout = TEMPLATE.resources[function]["Properties"].get("Timeout", default)
        assert timeout < task["TimeoutSeconds"] <= timeout + 60, (name, function, timeout, task["TimeoutSeconds"])


def _policy_statements():
    for logical_id, resource in TEMPLATE.resources.items():
        for policy in resource.get("Properties", {}).get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                yield logical_id, statement


def test_no_allow_statement_grants_wildcard_actions():
    statements = list(_policy_statements())
    assert statements
    for logical_id, statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert statement["Effect"] == "Allow"
        for action in actions:
            assert "*" not in action, (logical_id, action)


def test_bucket_is_encrypted_private_versioned_tls_only_and_emits_eventbridge_events():
    props = TEMPLATE.resources[TEMPLATE.data_bucket()]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    assert props["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    policy, = (p for p in TEMPLATE.of_type("AWS::S3::BucketPolicy").values()
               if p["Properties"]["Bucket"] == {"Ref": TEMPLATE.data_bucket()})
    deny = policy["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"]["Bool"]["aws:SecureTransport"] == "false"


def test_event_rule_starts_the_pipeline_only_for_fastq_and_samplesheets_under_incoming():
    (_, machine), = TEMPLATE.of_type("AWS::Serverless::StateMachine").items()
    pattern = machine["Properties"]["Events"]["FastqCreated"]["Properties"]["Pattern"]
    assert pattern["detail-type"] == ["Object Created"]
    wildcards = sorted(rule["wildcard"] for rule in pattern["detail"]["object"]["key"])
    assert wildcards == ["incoming/*.fastq", "incoming/*.fastq.gz", "incoming/*.fq", "incoming/*.fq.gz",
                         "incoming/*.samplesheet.csv"]
    assert wildcards == sorted(f"incoming/*{suffix}" for suffix in EVENT_SUFFIXES)  # the local stack's filters


def test_functions_write_only_their_own_prefixes():
    writes = {}
    for logical_id, statement in _policy_statements():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "s3:PutObject" in actions or "s3:DeleteObject" in actions:
            writes.setdefault(logical_id, []).append(json.dumps(statement["Resource"]))
    prefixes = {logical_id: {p for p in ("results", "results/_batches", "errors", "work", "incoming", "references/_cache")
                             if any(f"/{p}/*" in r for r in rs)}
                for logical_id, rs in writes.items()}
    # Only Publish writes results/ (it also removes the staged outputs it published); RecordFailure removes a
    # failed run's scratch under work/; MergeChunks stages Phase 1's outputs and BuildReport the report under
    # work/; the reference checks add their verdict next to the reference, never over it; BatchReport writes only
    # the samplesheets' batch reports, beside the samples' results.
    assert prefixes == {
        "PublishFunction": {"results", "work"}, "RecordFailureFunction": {"errors", "work"},
        "SplitIntoChunksFunction": {"work"}, "ProcessChunkFunction": {"work"}, "MergeChunksFunction": {"work"},
        "BuildReportFunction": {"work"}, "BatchReportFunction": {"results/_batches"},
        "ValidateFunction": {"references/_cache"}, "PlanPhase2Function": {"references/_cache"}}


def test_every_function_has_a_log_group_with_retention():
    functions = set(TEMPLATE.of_type("AWS::Serverless::Function"))
    groups = TEMPLATE.of_type("AWS::Logs::LogGroup").values()
    covered = {g["Properties"]["LogGroupName"]["Fn::Sub"].split("${")[1].rstrip("}") for g in groups
               if "/aws/lambda/" in json.dumps(g["Properties"]["LogGroupName"])}
    assert covered == functions
    assert all("RetentionInDays" in g["Properties"] for g in groups)


def test_image_functions_take_their_handlers_from_files_next_to_their_dockerfile():
    dockerfile_dirs = set()
    for logical_id, resource in TEMPLATE.of_type("AWS::Serverless::Function").items():
        props = resource["Properties"]
        if props.get("PackageType") != "Image":
            assert (ROOT / props["CodeUri"] / (props["Handler"].split(".")[0] + ".py")).is_file(), logical_id
            continue
        dockerfile = ROOT / resource["Metadata"]["Dockerfile"]
        module = props["ImageConfig"]["Command"][0].split(".")[0]
        assert (dockerfile.parent / f"{module}.py").is_file(), logical_id
        dockerfile_dirs.add(dockerfile.parent)
    for directory in dockerfile_dirs:
        text = (directory / "Dockerfile").read_text()
        assert "COPY layers/helixflow/helixflow" in text and "requirements.txt" in text


def test_bucket_encrypts_with_kms_and_a_bucket_key():
    encryption = TEMPLATE.resources[TEMPLATE.data_bucket()]["Properties"]["BucketEncryption"]
    rule, = encryption["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["BucketKeyEnabled"] is True  # one KMS data key per bucket, not a KMS call per object


def test_tables_are_encrypted_and_idempotency_records_expire_on_the_attribute_powertools_writes():
    tables = TEMPLATE.of_type("AWS::DynamoDB::Table")
    assert set(tables) == {"IdempotencyTable", "PairingTable", "RunsTable", "ScalingTable"}
    for logical_id, table in tables.items():
        assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True, logical_id
        assert table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    ttl = tables["IdempotencyTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl["Enabled"] is True
    # A lone mate's pairing item expires on the attribute resolve.py writes (a stale R1 must not pair later).
    pairing_ttl = tables["PairingTable"]["Properties"]["TimeToLiveSpecification"]
    assert pairing_ttl == {"AttributeName": "expiration", "Enabled": True}
    assert "expiration = :expires" in (ROOT / "layers/helixflow/helixflow/pipeline/resolve.py").read_text()
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    # The attribute name must be the one the ResolveSample handler's persistence layer stores its expiry in,
    # else DynamoDB never deletes a record.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    assert ttl["AttributeName"] == DynamoDBPersistenceLayer(table_name="t").expiry_attr
    handler = (ROOT / "functions" / "resolve_sample" / "app.py").read_text()
    assert "DynamoDBPersistenceLayer(table_name=os.environ[\"IDEMPOTENCY_TABLE\"])" in handler  # default attrs


def test_failed_runs_alarm_fires_on_the_first_failed_execution_of_this_state_machine():
    props = TEMPLATE.resources["FailedRunsAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/States", "ExecutionsFailed", "Sum")
    (machine_id, _), = TEMPLATE.of_type("AWS::Serverless::StateMachine").items()
    assert props["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine_id}}]
    assert props["Threshold"] == 1 and props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert props["EvaluationPeriods"] == 1
    assert props["TreatMissingData"] == "notBreaching"  # no executions is not an alarm


def test_data_bucket_access_is_logged_to_a_bucket_only_s3_logging_may_write_and_only_for_the_data_bucket():
    data = TEMPLATE.data_bucket()
    logging = TEMPLATE.resources[data]["Properties"]["LoggingConfiguration"]
    log_bucket = logging["DestinationBucketName"]["Ref"]
    props = TEMPLATE.resources[log_bucket]["Properties"]
    # S3 delivers server access logs only to SSE-S3 buckets.
    default, = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert default["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(props["PublicAccessBlockConfiguration"].values())
    policy, = (p for p in TEMPLATE.of_type("AWS::S3::BucketPolicy").values()
               if p["Properties"]["Bucket"] == {"Ref": log_bucket})
    allow, deny = policy["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"} and allow["Action"] == "s3:PutObject"
    assert allow["Resource"] == {"Fn::Sub": "${%s.Arn}/%s*" % (log_bucket, logging["LogFilePrefix"])}
    assert allow["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::GetAtt": [data, "Arn"]}
    assert deny["Effect"] == "Deny" and deny["Condition"]["Bool"]["aws:SecureTransport"] == "false"


def test_every_log_group_is_encrypted_with_the_rotated_logs_key_that_only_this_accounts_logs_may_use():
    groups = TEMPLATE.of_type("AWS::Logs::LogGroup")
    keys = {json.dumps(g["Properties"]["KmsKeyId"]) for g in groups.values()}
    assert keys == {json.dumps({"Fn::GetAtt": ["LogsKey", "Arn"]})}
    key = TEMPLATE.resources["LogsKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    admin, logs = key["KeyPolicy"]["Statement"]
    assert all("*" not in action for action in admin["Action"])
    assert logs["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    assert "log-group:" in logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Sub"]


def test_process_chunk_reserves_exactly_the_distributed_maps_concurrency_by_default():
    """Reserved concurrency both guarantees the fan-out its capacity and keeps it from starving the account; less
    than the Map's MaxConcurrency would throttle every run, more would be taken from other functions for nothing."""
    states = json.loads(ASL_PATH.read_text())["States"]
    reserved = TEMPLATE.resources["ProcessChunkFunction"]["Properties"]["ReservedConcurrentExecutions"]["Fn::If"]
    assert reserved[1] == {"Ref": "ProcessChunkReservedConcurrency"}
    default = TEMPLATE.document["Parameters"]["ProcessChunkReservedConcurrency"]["Default"]
    assert default == states["ProcessChunks"]["MaxConcurrency"]


def test_only_the_functions_that_call_the_clusters_join_the_vpc_and_read_the_pcs_key():
    in_vpc, jwt_readers, cluster_readers = set(), {}, set()
    for logical_id, resource in TEMPLATE.of_type("AWS::Serverless::Function").items():
        props = resource["Properties"]
        if "VpcConfig" in props:
            in_vpc.add(logical_id)
        for policy in props.get("Policies", []):
            if isinstance(policy, dict) and "Fn::If" in policy:
                condition, statements, _ = policy["Fn::If"]
                grants = {s["Sid"]: s for s in statements["Statement"]}
                if condition == "HasPcsJwtKey":
                    jwt_readers[logical_id] = grants
                if any(s["Action"] == "pcs:GetCluster" for s in grants.values()):
                    cluster_readers.add(logical_id)
    # Ray's Jobs API and slurmrestd are reachable only inside the VPC: these call them.
    jobs = {"SubmitJobFunction", "PollJobFunction", "RecordFailureFunction"}
    assert in_vpc == jobs | {"PublishMetricsFunction", "ScaleClusterFunction"}
    # Signing slurmrestd tokens needs the JWT key and the endpoint (get-cluster).
    assert set(jwt_readers) == jobs | {"PublishMetricsFunction"} and set(jwt_readers) <= cluster_readers
    for grants in jwt_readers.values():
        assert grants["ReadPcsJwtKey"]["Resource"] == {"Ref": "PcsJwtKeySecretArn"}  # that one secret only

SCALING_ALARMS = {"RayScaleOutAlarm": ("RayPendingTasks", "scale_out"), "RayScaleInAlarm": ("RayTasksInFlight", "scale_in"),
                  "SlurmCpuScaleOutAlarm": ("SlurmPendingJobs", "scale_out"),
                  "SlurmCpuScaleInAlarm": ("SlurmJobsInFlight", "scale_in"),
                  "SlurmGpuScaleOutAlarm": ("SlurmPendingJobs", "scale_out"),
                  "SlurmGpuScaleInAlarm": ("SlurmJobsInFlight", "scale_in")}


def test_scaling_alarms_invoke_the_scaling_lambda_directly_with_their_own_permission():
    from helixflow.scaling.metrics import NAMESPACE, SIGNAL_OF_METRIC

    alarms = {k: v["Properties"] for k, v in TEMPLATE.of_type("AWS::CloudWatch::Alarm").items()
              if v["Properties"]["Namespace"] == NAMESPACE}
    assert set(alarms) == set(SCALING_ALARMS)
    permissions = [p["Properties"] for p in TEMPLATE.of_type("AWS::Lambda::Permission").values()]
    for logical_id, (metric, signal) in SCALING_ALARMS.items():
        props = alarms[logical_id]
        assert props["MetricName"] == metric and SIGNAL_OF_METRIC[metric] == signal, logical_id
        assert props["AlarmActions"] == [{"Fn::GetAtt": ["ScaleClusterFunction", "Arn"]}], logical_id
        assert props["TreatMissingData"] == "notBreaching", logical_id  # no data (publisher down) never scales
        assert props["Period"] == {"Ref": "ScalingPeriodSeconds"}, logical_id
        if signal == "scale_out":  # one period of queued work is enough to pre-warm
            assert (props["EvaluationPeriods"], props["DatapointsToAlarm"], props["Threshold"],
                    props["ComparisonOperator"]) == (1, 1, 1, "GreaterThanOrEqualToThreshold"), logical_id
        else:  # no work for the whole idle window, the same number of periods the policy reads
            idle = {"Ref": "ScaleInIdlePeriods"}
            assert (props["EvaluationPeriods"], props["DatapointsToAlarm"], props["Threshold"],
                    props["ComparisonOperator"]) == (idle, idle, 0, "LessThanOrEqualToThreshold"), logical_id
        granted = [p for p in permissions if p.get("SourceArn") == {"Fn::GetAtt": [logical_id, "Arn"]}]
        assert granted == [{"Action": "lambda:InvokeFunction", "FunctionName": {"Fn::GetAtt": ["ScaleClusterFunction", "Arn"]},
                            "Principal": "lambda.alarms.cloudwatch.amazonaws.com",
                            "SourceAccount": {"Ref": "AWS::AccountId"}, "SourceArn": {"Fn::GetAtt": [logical_id, "Arn"]}}]
    variables = TEMPLATE.resources["ScaleClusterFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["SCALING_IDLE_PERIODS"] == {"Ref": "ScaleInIdlePeriods"}


def test_the_metrics_publisher_runs_every_minute_on_eventbridge_scheduler():
    props = TEMPLATE.resources["PublishMetricsFunction"]["Properties"]
    (event,) = props["Events"].values()
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"] == {"Ref": "MetricsScheduleRate"}
    assert TEMPLATE.document["Parameters"]["MetricsScheduleRate"]["Default"] == "rate(1 minute)"


def test_scaling_permissions_are_scoped_to_the_namespace_the_table_and_the_clusters_node_groups():
    statements = {s["Sid"]: s for logical_id, s in _policy_statements()
                  if logical_id in ("PublishMetricsFunction", "ScaleClusterFunction")}
    for sid in ("PublishHelixflowMetrics", "PublishDecisions"):
        assert statements[sid]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Helixflow"}}
    assert statements["RecordDecisionsOnce"]["Resource"] == {"Fn::GetAtt": ["ScalingTable", "Arn"]}
    # The conditional (PcsClusterId set) statements sit inside Fn::If.
    pcs = [p["Fn::If"][1]["Statement"][0] for p in TEMPLATE.resources["ScaleClusterFunction"]["Properties"]["Policies"]
           if isinstance(p, dict) and "Fn::If" in p and p["Fn::If"][0] == "HasPcsCluster"]
    assert pcs[0]["Action"] == ["pcs:GetComputeNodeGroup", "pcs:UpdateComputeNodeGroup"]
    assert pcs[0]["Resource"]["Fn::Sub"].endswith(":cluster/${PcsClusterId}/computenodegroup/*")
