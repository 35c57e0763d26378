"""Shared fixtures: a fake Lambda context, saved events, handlers loaded from functions/<name>/app.py."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from helixflow_local.context import LocalLambdaContext

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


def require_tool(available: bool, what: str) -> None:
    """Peer tools are part of the test setup (`make test` installs them): a missing one fails the test rather
    than letting it pass unexamined."""
    if not available:
        pytest.fail(f"{what} is not installed; `make install` provides it")
