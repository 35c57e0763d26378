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
        assert catch[-1]["Next"] == ("FailRun" if name == "RecordFailure" else "RecordFailure"), name
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
    (_, bucket), = TEMPLATE.of_type("AWS::S3::Bucket").items()
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    assert props["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    (_, policy), = TEMPLATE.of_type("AWS::S3::BucketPolicy").items()
    deny = policy["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"]["Bool"]["aws:SecureTransport"] == "false"


def test_event_rule_starts_the_pipeline_only_for_fastq_under_incoming():
    (_, machine), = TEMPLATE.of_type("AWS::Serverless::StateMachine").items()
    pattern = machine["Properties"]["Events"]["FastqCreated"]["Properties"]["Pattern"]
    assert pattern["detail-type"] == ["Object Created"]
    wildcards = sorted(rule["wildcard"] for rule in pattern["detail"]["object"]["key"])
    assert wildcards == ["incoming/*.fastq", "incoming/*.fastq.gz", "incoming/*.fq", "incoming/*.fq.gz"]


def test_functions_write_only_their_own_prefixes():
    writes = {}
    for logical_id, statement in _policy_statements():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "s3:PutObject" in actions or "s3:DeleteObject" in actions:
            writes.setdefault(logical_id, []).append(json.dumps(statement["Resource"]))
    prefixes = {logical_id: {p for p in ("results", "errors", "work", "incoming", "references/_cache")
                             if any(f"/{p}/*" in r for r in rs)}
                for logical_id, rs in writes.items()}
    # Only Publish writes results/ (it also removes the staged outputs it published); RecordFailure removes a
    # failed run's scratch under work/; MergeChunks stages Phase 1's outputs under work/; the reference checks
    # add their verdict next to the reference, never over it.
    assert prefixes == {
        "PublishFunction": {"results", "work"}, "RecordFailureFunction": {"errors", "work"},
        "SplitIntoChunksFunction": {"work"}, "ProcessChunkFunction": {"work"}, "MergeChunksFunction": {"work"},
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
    (_, bucket), = TEMPLATE.of_type("AWS::S3::Bucket").items()
    rule, = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["BucketKeyEnabled"] is True  # one KMS data key per bucket, not a KMS call per object


def test_tables_are_encrypted_and_idempotency_records_expire_on_the_attribute_powertools_writes():
    tables = TEMPLATE.of_type("AWS::DynamoDB::Table")
    assert set(tables) == {"IdempotencyTable", "PairingTable", "RunsTable"}
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
    (_, alarm), = TEMPLATE.of_type("AWS::CloudWatch::Alarm").items()
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/States", "ExecutionsFailed", "Sum")
    (machine_id, _), = TEMPLATE.of_type("AWS::Serverless::StateMachine").items()
    assert props["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine_id}}]
    assert props["Threshold"] == 1 and props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert props["EvaluationPeriods"] == 1
    assert props["TreatMissingData"] == "notBreaching"  # no executions is not an alarm
