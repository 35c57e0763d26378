"""Shared fixtures: a fake Lambda context, saved events, handlers loaded from functions/<name>/app.py."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from helixflow.local.context import LocalLambdaContext

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "tests" / "events"


@pytest.fixture
def lambda_context():
    return LocalLambdaContext(function_name="helixflow-test", timeout_seconds=60)


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def load_handler(function_dir: str):
    """Import functions/<function_dir>/app.py as a fresh module (module-level clients bind to the current
    environment, e.g. moto's mock)."""
    path = ROOT / "functions" / function_dir / "app.py"
    name = f"handler_{function_dir}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


IN_CI = bool(os.environ.get("CI"))


def skip_unless_ci(reason: str) -> None:
    """A missing peer tool skips the test on a developer's machine, but fails it in CI, where `make install`
    must have provided it (a skipped test proves nothing)."""
    if IN_CI:
        pytest.fail(f"{reason}; CI installs it through `make install`")
    pytest.skip(reason)
