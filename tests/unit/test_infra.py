"""The stacks under infra/, pipeline.yaml and buildspec.yml: the linters AWS users run (cfn-lint, checkov, hadolint),
the wiring between stacks (every import names an export of the stack its parameter defaults to), and the properties
the pipeline relies on (PCS queues named as slurm_jobs submits, node groups resting at zero, no wildcard actions)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cfnlint.decode import decode

from helixflow.pipeline.slurm_jobs import PARTITIONS

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STACKS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "infra").glob("*.yaml"))
TEMPLATES = ["template.yaml", "pipeline.yaml", *STACKS]
DOCKERFILES = ["functions/phase1/Dockerfile", "batch_jobs/runtime/Dockerfile"]
CHECKOV = shutil.which("checkov") or str(ROOT / ".venv-checkov" / "bin" / "checkov")
# The stack each "<X>StackName" parameter names, by parameter.
STACK_OF_PARAMETER = {"NetworkStackName": "infra/network.yaml", "AppStackName": "template.yaml",
                      "FsxStackName": "infra/fsx.yaml"}


def load(path: str) -> dict:
    template, errors = decode(str(ROOT / path))
    assert not errors, errors
    return template


def test_every_infra_stack_is_found():
    assert STACKS == ["infra/catalog.yaml", "infra/datasync.yaml", "infra/fsx.yaml", "infra/network.yaml",
                      "infra/pcs.yaml", "infra/ray.yaml"]


def test_cfn_lint_is_clean_on_every_stack():
    # template.yaml's own run is in test_template.py (with sam validate); one cfn-lint process for the rest.
    result = subprocess.run([str(VENV_BIN / "cfn-lint"), "pipeline.yaml", *STACKS], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_finds_nothing_and_every_skip_says_why():
    """checkov's CloudFormation checks on every template: no failed check, and each skip carries its reason
    inline (Metadata.checkov.skip[].comment) - a skip without one is an unexplained failure."""
    args = [CHECKOV, "--framework", "cloudformation", "--skip-download", "-o", "json"]
    for path in TEMPLATES:
        args += ["-f", path]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed, skipped = [], []
    for report in reports:
        failed += report["results"]["failed_checks"]
        skipped += report["results"]["skipped_checks"]
    assert not failed, [(c["check_id"], c["resource"], c["file_path"]) for c in failed]
    assert skipped  # the skips below are real: checkov read the Metadata
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "").strip()) > 30, (check["check_id"],
                                                                                    check["resource"])


@pytest.mark.parametrize("path", DOCKERFILES)
def test_dockerfiles_pass_hadolint(path):
    result = subprocess.run([str(VENV_BIN / "hadolint"), path], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _imports(node, found: list[str]) -> list[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::ImportValue":
                found.append(value["Fn::Sub"])
            else:
                _imports(value, found)
    elif isinstance(node, list):
        for item in node:
            _imports(item, found)
    return found


def _export_suffixes(path: str) -> set[str]:
    exports = set()
    for output in load(path).get("Outputs", {}).values():
        if "Export" in output:
            name = output["Export"]["Name"]["Fn::Sub"]
            assert name.startswith("${AWS::StackName}-"), (path, name)
            exports.add(name.removeprefix("${AWS::StackName}-"))
    return exports


@pytest.mark.parametrize("path", STACKS)
def test_every_import_names_an_export_of_the_stack_its_parameter_names(path):
    template = load(path)
    imports = _imports(template["Resources"], []) + _imports(template.get("Outputs", {}), [])
    for name in imports:
        parameter, suffix = re.fullmatch(r"\$\{(\w+)\}-(\w+)", name).groups()
        assert parameter in template["Parameters"], (path, name)
        assert suffix in _export_suffixes(STACK_OF_PARAMETER[parameter]), (path, name)


def _statements(node):
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield node
        for value in node.values():
            yield from _statements(value)
    elif isinstance(node, list):
        for item in node:
            yield from _statements(item)


@pytest.mark.parametrize("path", TEMPLATES)
def test_no_statement_allows_wildcard_actions(path):
    statements = list(_statements(load(path)["Resources"]))
    for statement in statements:
        assert "NotAction" not in statement, (path, statement)
        if statement["Effect"] == "Deny":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), (path, actions)


def test_pcs_cluster_serves_slurmrest_and_its_queues_are_the_partitions_helixflow_submits_to():
    resources = load("infra/pcs.yaml")["Resources"]
    (cluster,) = (r["Properties"] for r in resources.values() if r["Type"] == "AWS::PCS::Cluster")
    assert cluster["SlurmConfiguration"]["SlurmRest"] == {"Mode": "STANDARD"}
    versions = load("infra/pcs.yaml")["Parameters"]["SlurmVersion"]["AllowedValues"]
    assert all(tuple(map(int, v.split("."))) >= (25, 5) for v in versions)  # PCS serves REST from 25.05
    groups = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::PCS::ComputeNodeGroup"}
    queues = {r["Properties"]["Name"]: r["Properties"] for r in resources.values() if r["Type"] == "AWS::PCS::Queue"}
    assert set(queues) == set(PARTITIONS.values()) == {"cpu", "gpu"}
    for name, queue in queues.items():
        (configuration,) = queue["ComputeNodeGroupConfigurations"]
        group_id = configuration["ComputeNodeGroupId"]["Fn::GetAtt"][0]
        assert groups[group_id]["Name"] == name
    for group in groups.values():
        assert group["ScalingConfiguration"]["MinInstanceCount"] == 0  # nothing runs, nothing is billed
        profile = group["IamInstanceProfileArn"]["Fn::GetAtt"][0]
        assert resources[profile]["Properties"]["InstanceProfileName"]["Fn::Sub"].startswith("AWSPCS")
        template = resources[group["CustomLaunchTemplate"]["TemplateId"]["Ref"]]["Properties"]
        assert template["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"
    role = resources["NodeRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    join = next(s for s in role if s["Action"] == "pcs:RegisterComputeNodeGroupInstance")
    assert join["Resource"] == {"Fn::GetAtt": ["Cluster", "Arn"]}


def test_gpu_nodes_get_efa_and_a_placement_group_when_asked_and_install_the_cuda_extra():
    resources = load("infra/pcs.yaml")["Resources"]
    data = resources["GpuLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    condition, (interface,), _ = data["NetworkInterfaces"]["Fn::If"]
    assert condition == "GpuWithEfa" and interface["InterfaceType"] == "efa"
    assert data["Placement"]["Fn::If"][1] == {"GroupName": {"Ref": "GpuPlacementGroup"}}
    gpu_script, gpu_vars = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    cpu_script, cpu_vars = resources["CpuLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"][
        "Fn::Base64"]["Fn::Sub"]
    assert (gpu_vars["Extras"], cpu_vars["Extras"]) == ("hpc,cuda", "hpc")
    assert gpu_script == cpu_script and "multipart/mixed" in cpu_script  # PCS takes MIME multi-part user data


def test_ray_stack_names_what_the_cluster_launcher_config_uses():
    """cluster.yaml (Ray's launcher) names the instance profiles and the token secret; ray.yaml creates them."""
    parameters = load("infra/ray.yaml")["Parameters"]
    cluster = yaml.safe_load((ROOT / "batch_jobs" / "ray_preprocess" / "cluster.yaml").read_text())
    nodes = cluster["available_node_types"]
    head_profile = nodes[cluster["head_node_type"]]["node_config"]["IamInstanceProfile"]["Arn"]
    assert head_profile.endswith(f"instance-profile/{parameters['HeadProfileName']['Default']}")
    for name, node in nodes.items():
        if name != cluster["head_node_type"]:
            assert node["node_config"]["IamInstanceProfile"]["Arn"].endswith(
                f"instance-profile/{parameters['WorkerProfileName']['Default']}")
    assert cluster["cluster_name"] == parameters["ClusterName"]["Default"]
    assert any(f"--secret-id {parameters['TokenSecretName']['Default']} " in c for c in cluster["setup_commands"])


def test_network_lets_the_functions_reach_only_the_ray_jobs_api_slurmrestd_and_https():
    resources = load("infra/network.yaml")["Resources"]
    out = [(r["Properties"]["FromPort"], r["Properties"]["DestinationSecurityGroupId"]["Ref"])
           for r in resources.values()
           if r["Type"] == "AWS::EC2::SecurityGroupEgress" and r["Properties"]["GroupId"] == {"Ref": "LambdaSecurityGroup"}]
    assert sorted(out) == [(6820, "PcsSecurityGroup"), (8265, "RaySecurityGroup")]
    (https,) = resources["LambdaSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert (https["FromPort"], https["ToPort"]) == (443, 443)
    from_lambda = sorted((r["Properties"]["GroupId"]["Ref"], r["Properties"]["FromPort"], r["Properties"]["ToPort"])
                         for r in resources.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"
                         and r["Properties"].get("SourceSecurityGroupId") == {"Ref": "LambdaSecurityGroup"})
    assert from_lambda == [("PcsSecurityGroup", 6820, 6820), ("RaySecurityGroup", 8265, 8265)]
    gateways = {r["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1] for r in resources.values()
                if r["Type"] == "AWS::EC2::VPCEndpoint" and r["Properties"]["VpcEndpointType"] == "Gateway"}
    interfaces = {r["Properties"]["ServiceName"]["Fn::Sub"].split("}.", 1)[1] for r in resources.values()
                  if r["Type"] == "AWS::EC2::VPCEndpoint" and r["Properties"]["VpcEndpointType"] == "Interface"}
    assert gateways == {"s3", "dynamodb"}
    # What the job functions call without a NAT: the JWT key / Ray token, logs, metrics, the state machine, PCS.
    assert {"secretsmanager", "logs", "monitoring", "states", "pcs"} <= interfaces


def _make_target_exists(target: str, env: dict[str, str]) -> bool:
    result = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", **env})
    return result.returncode == 0 and "No rule to make target" not in result.stderr


def test_buildspec_runs_one_make_target_per_pipeline_step():
    buildspec = yaml.safe_load((ROOT / "buildspec.yml").read_text())
    assert buildspec["version"] == 0.2
    commands = [c for phase in buildspec["phases"].values() for c in phase.get("commands", [])]
    assert commands == ["make ci-$HELIXFLOW_CI_STEP"]
    pipeline = load("pipeline.yaml")["Resources"]["Pipeline"]["Properties"]
    steps, config_envs = [], []
    for stage in pipeline["Stages"]:
        for action in stage["Actions"]:
            if action["ActionTypeId"]["Provider"] == "CodeBuild":
                env = {v["name"]: v["value"] for v in json.loads(action["Configuration"]["EnvironmentVariables"])}
                steps.append(env["HELIXFLOW_CI_STEP"])
                config_envs += [env["CONFIG_ENV"]] if "CONFIG_ENV" in env else []
                target = commands[0].removeprefix("make ").replace("$HELIXFLOW_CI_STEP", env["HELIXFLOW_CI_STEP"])
                assert _make_target_exists(target, env), target
    assert steps == ["test", "build", "deploy", "deploy"]
    import tomllib

    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config_envs == ["default", "prod"] and set(config_envs) <= set(samconfig)
    names = [stage["Name"] for stage in pipeline["Stages"]]
    assert names.index("ApproveProd") == names.index("DeployProd") - 1  # a person approves each prod deploy


def test_image_repositories_scan_on_push_and_never_overwrite_a_tag():
    resources = load("pipeline.yaml")["Resources"]
    repositories = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ECR::Repository"]
    assert len(repositories) == 2
    for repository in repositories:
        assert repository["ImageScanningConfiguration"] == {"ScanOnPush": True}
        assert repository["ImageTagMutability"] == "IMMUTABLE"


def test_the_job_functions_claim_the_identity_the_pcs_nodes_create_and_run_the_interpreter_they_install():
    """A token for a user the nodes do not have, or an interpreter they lack, fails every Phase 2 job on PCS."""
    app, pcs = load("template.yaml"), load("infra/pcs.yaml")
    defaults = {name: str(p["Default"]) for name, p in app["Parameters"].items() if "Default" in p}
    pcs_defaults = {name: str(p["Default"]) for name, p in pcs["Parameters"].items() if "Default" in p}
    for function in ("SubmitJobFunction", "PollJobFunction", "RecordFailureFunction", "PublishMetricsFunction"):
        env = app["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert defaults[env["SLURM_USER_NAME"]["Ref"]] == pcs_defaults["SlurmUserName"]
        assert defaults[env["PCS_SLURM_UID"]["Ref"]] == pcs_defaults["SlurmUid"]
        assert defaults[env["PCS_SLURM_GID"]["Ref"]] == pcs_defaults["SlurmGid"]
        if function != "PublishMetricsFunction":  # it only reads the queues; the others' jobs run the interpreter
            assert defaults[env["HELIXFLOW_SLURM_PYTHON"]["Ref"]] == pcs["Outputs"]["SlurmPython"]["Value"]
    script = pcs["Resources"]["CpuLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"][
        "Fn::Sub"][0]
    assert "useradd -m -u ${SlurmUid} -g ${SlurmGid} ${SlurmUserName}" in script
    assert "python3.11 -m venv /opt/helixflow" in script


# The deploy section's order of stacks; README's "Parameters of every stack" lists each one's parameters in this order.
DEPLOY_ORDER = ["infra/network.yaml", "template.yaml", "infra/fsx.yaml", "infra/pcs.yaml", "infra/ray.yaml",
                "infra/catalog.yaml", "pipeline.yaml", "infra/datasync.yaml"]


def parameter_table(path: str) -> str:
    """README's table of one template's parameters: name, default and description, as the template states them."""

    def cell(value: object) -> str:
        return " ".join(str(value).split()).replace("|", "\\|")

    rows = [f"#### `{path}`", "", "| parameter | default | what it sets |", "|---|---|---|"]
    for name, spec in load(path).get("Parameters", {}).items():
        if "Default" not in spec:
            default = "(required)"
        else:
            default = f"`{cell(spec['Default'])}`" if spec["Default"] != "" else "(empty)"
        rows.append(f"| `{name}` | {default} | {cell(spec['Description'])} |")
    return "\n".join(rows) + "\n"


def test_deploy_order_names_every_template():
    assert sorted(DEPLOY_ORDER) == sorted(TEMPLATES)


@pytest.mark.parametrize("path", DEPLOY_ORDER)
def test_readme_lists_every_parameter_of_every_stack_with_its_default(path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Deploy to AWS\n", 1)[1].split("\n## ", 1)[0]
    assert all("Description" in spec for spec in load(path).get("Parameters", {}).values()), path
    assert parameter_table(path) in section, f"README's deploy section should hold:\n{parameter_table(path)}"
