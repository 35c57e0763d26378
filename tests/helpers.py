"""Helpers the tests share (fixtures stay in conftest.py): saved events, handlers loaded from their folders,
execution states, the rule that a missing peer tool fails a test, and polling to a deadline."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "tests" / "events"
T = TypeVar("T")


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def load_handler(function_dir: str, module: str = "app"):
    """Import functions/<function_dir>/<module>.py as a fresh module (module-level clients bind to the current
    environment, e.g. moto's mock)."""
    path = ROOT / "functions" / function_dir / f"{module}.py"
    name = f"handler_{function_dir}_{module}"
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def pipeline_state(run_id: str = "run-1", **slots: Any) -> dict[str, Any]:
    """An execution state as the state machine hands it to a Task: Initialize's fields plus the given slots."""
    return {"run_id": run_id, "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:p:{run_id}",
            "event": load_event("eventbridge_object_created.json"), **slots}


def require_tool(available: bool, what: str) -> None:
    """Peer tools are part of the test setup (`make test` installs them): a missing one fails the test rather
    than letting it pass unexamined."""
    if not available:
        pytest.fail(f"{what} is not installed; `make install` provides it")


def poll_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call ``predicate`` until it returns something truthy and return that; past ``timeout`` seconds (a deadline,
    however slow each call is) raise TimeoutError naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
