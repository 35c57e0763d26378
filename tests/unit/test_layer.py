"""The Lambda layer ships only what runs there: built by `sam build` (layers/helixflow/Makefile), it imports in a
clean environment holding nothing but its own requirements and what the Lambda runtime provides, and it carries
no module of the local tools or the engines."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helixflow_local.template import Template
from tests.helpers import ROOT

SAM = str(ROOT / ".venv-sam" / "bin" / "sam")
PACKAGE = ROOT / "layers" / "helixflow"
# What the Lambda runtime and the public Powertools layer provide; never part of our layer.
RUNTIME_PROVIDED = ("aws-lambda-powertools[tracer]", "boto3")
FORBIDDEN = ("moto", "yaml", "click", "rich", "numba", "pyarrow", "ray", "mpi4py", "helixflow_local")
ZIP_FUNCTIONS = ("resolve_sample", "check_mate", "validate", "plan", "plan_phase2", "submit_job", "poll_job",
                 "collect_phase2", "publish", "record_failure", "publish_metrics", "scale_cluster")


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    """`sam build` of every zip function and, through their Layers, HelixflowLayer, in one build. The image
    functions (Phase 1) need a Docker engine, which this machine lacks, so the template built is template.yaml
    without them and without what names them (the state machine, their log groups), with absolute code paths."""
    directory = tmp_path_factory.mktemp("sam")
    document = Template(ROOT / "template.yaml").document
    resources = document["Resources"]
    images = {k for k, v in resources.items()
              if v["Type"] == "AWS::Serverless::Function" and v["Properties"].get("PackageType") == "Image"}
    dropped = images | {k for k, v in resources.items() if v["Type"] == "AWS::Serverless::StateMachine"} | {
        k for k, v in resources.items() if v["Type"] == "AWS::Logs::LogGroup" and any(i in json.dumps(v) for i in images)}
    for logical_id in dropped:
        del resources[logical_id]
    document.pop("Outputs", None)
    for resource in resources.values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = str(ROOT / resource["Properties"][key])
    template = directory / "template.json"
    template.write_text(json.dumps(document))
    build_dir = directory / "build"
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run([SAM, "build", "--no-cached", "--build-dir", str(build_dir), "--template", str(template)],
                            cwd=directory, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return build_dir


@pytest.fixture(scope="module")
def runtime_site(tmp_path_factory) -> Path:
    """A clean target with only what the Lambda runtime and the Powertools layer give a function."""
    target = tmp_path_factory.mktemp("runtime")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target),
                    "-c", str(ROOT / "constraints.txt"), *RUNTIME_PROVIDED], check=True, timeout=600)
    return target


def _layer_modules(layer: Path) -> list[str]:
    return sorted(".".join(path.relative_to(layer).with_suffix("").parts).removesuffix(".__init__")
                  for path in (layer / "helixflow").rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _closure(roots: list[Path]) -> set[str]:
    """helixflow modules reachable by static imports from ``roots``, plus the job adapters that
    helixflow.pipeline.jobs loads by name."""
    seen: set[str] = set()
    pending = [name for root in roots for name in _imports(root)]
    pending += [f"helixflow.pipeline.{p.stem}" for p in (PACKAGE / "helixflow" / "pipeline").glob("*_jobs.py")]
    while pending:
        name = pending.pop()
        if not name.startswith("helixflow") or name.startswith("helixflow_local") or name in seen:
            continue
        module = PACKAGE / Path(*name.split("."))
        path = module / "__init__.py" if module.is_dir() else module.with_suffix(".py")
        if not path.is_file():  # `from helixflow.pipeline import jobs` names a module inside a package
            continue
        seen.add(name)
        parts = name.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts))]
        pending += list(_imports(path))
        pending += _from_imports(path)
    return seen


def _from_imports(path: Path) -> list[str]:
    """``from a.b import c`` may name the module a.b.c (or only an attribute of a.b: then no file matches)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def test_the_layer_holds_exactly_the_import_closure_of_the_zip_functions(build):
    layer = build / "HelixflowLayer" / "python"
    needed = _closure([ROOT / "functions" / name / "app.py" for name in ZIP_FUNCTIONS])
    shipped = set(_layer_modules(layer))
    assert needed - shipped == set(), "modules the functions import but the layer lacks"
    assert shipped - needed == set(), "modules the layer ships that no zip function imports"


def test_nothing_in_the_layer_imports_the_local_tools_or_the_engines(build):
    layer = build / "HelixflowLayer" / "python" / "helixflow"
    offenders = {str(path.relative_to(layer)): sorted(n for n in _imports(path) if n.split(".")[0] in FORBIDDEN)
                 for path in layer.rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_layer_module_and_handler_imports_with_only_the_layer_and_the_runtime(build, runtime_site):
    layer = build / "HelixflowLayer" / "python"
    modules = _layer_modules(layer)
    handlers = [str(ROOT / "functions" / name) for name in ZIP_FUNCTIONS]
    probe = f"""
import importlib, importlib.util, sys
sys.path[:0] = [{str(layer)!r}, {str(runtime_site)!r}]
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {FORBIDDEN!r}:
            raise ImportError("the layer must not import " + name)
sys.meta_path.insert(0, Refuse())
for name in {modules!r}:
    importlib.import_module(name)
for directory in {handlers!r}:
    spec = importlib.util.spec_from_file_location("app_" + directory.rsplit("/", 1)[-1], directory + "/app.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
print("imported", len({modules!r}), "modules and", len({handlers!r}), "handlers")
"""
    env = {"PATH": os.environ["PATH"], "AWS_DEFAULT_REGION": "us-east-1", "PAIRING_TABLE": "p",
           "IDEMPOTENCY_TABLE": "i", "RUNS_TABLE": "r", "POWERTOOLS_TRACE_DISABLED": "true"}
    # -I -S: no site-packages, no PYTHONPATH, no current directory: only the two folders above and the stdlib.
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, env=env,
                            timeout=300, cwd=layer)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"imported {len(modules)} modules and {len(handlers)} handlers", result.stdout)


def test_sam_build_packages_every_zip_function_with_the_layer_for_the_lambda_runtime(build):
    layer = build / "HelixflowLayer" / "python"
    assert (layer / "helixflow" / "fastq" / "validator.py").is_file()
    # Wheels resolved for the Lambda platform (manylinux2014), not this machine.
    assert list(layer.glob("numpy-2.2.*.dist-info")) and list(layer.glob("isal-*.dist-info"))
    for name in ZIP_FUNCTIONS:
        logical_id = "".join(part.title() for part in name.split("_")) + "Function"
        assert (build / logical_id / "app.py").is_file(), logical_id
