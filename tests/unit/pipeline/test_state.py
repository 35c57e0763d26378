"""The state contract: statemachines/pipeline.asl.json and the models in helixflow.pipeline.state agree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from helixflow.pipeline.state import TASK_RESULTS, PipelineState

ASL = json.loads((Path(__file__).resolve().parents[3] / "statemachines" / "pipeline.asl.json").read_text())


def _all_states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for name, state in states.items():
        found[name] = state
        if "ItemProcessor" in state:
            found.update(_all_states(state["ItemProcessor"]["States"]))
    return found


STATES = _all_states(ASL["States"])
TASKS = {name: state for name, state in STATES.items() if state["Type"] == "Task"}


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside Optional[...]/Union/list[...] annotations, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, getattr(__import__("types"), "UnionType"), list):
        return [model for arg in get_args(annotation) for model in _models_of(arg)]
    return []


def _resolves(model: type[BaseModel], segments: list[str]) -> bool:
    """Whether $.a.b[0].c names a field path of ``model`` (a dict-typed field accepts any deeper path; an item
    of a list of several models resolves when one of them has the rest of the path)."""
    if not segments:
        return True
    field = model.model_fields.get(re.sub(r"\[\d+\]$", "", segments[0]))
    if field is None:
        return False
    inner = _models_of(field.annotation)
    return any(_resolves(m, segments[1:]) for m in inner) if inner else True


def _paths(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [p for value in node.values() for p in _paths(value)]
    if isinstance(node, list):
        return [p for value in node for p in _paths(value)]
    return [node] if isinstance(node, str) and node.startswith("$.") else []


def test_every_task_has_a_declared_result_model():
    assert set(TASKS) == set(TASK_RESULTS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_result_selector_picks_exactly_the_model_fields(name):
    model, slot = TASK_RESULTS[name]
    selected = {key.removesuffix(".$") for key in TASKS[name]["ResultSelector"]}
    assert selected == set(model.model_fields), name
    for key, path in TASKS[name]["ResultSelector"].items():
        assert path == "$.Payload." + key.removesuffix(".$"), (name, key)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_result_path_is_the_slot_of_the_model(name):
    model, slot = TASK_RESULTS[name]
    if slot is None:  # a Map item's result stays in the item
        return
    assert TASKS[name]["ResultPath"] == f"$.{slot}"
    assert _models_of(PipelineState.model_fields[slot].annotation) == [model]


def test_every_path_the_asl_reads_exists_in_the_state_model():
    checked = 0
    for name, state in STATES.items():
        reads = {k: v for k, v in state.items() if k not in ("ResultSelector", "ResultPath", "ItemProcessor")}
        if state.get("Catch"):
            reads.pop("Catch")
        for path in _paths(reads):
            if path.startswith("$.Payload"):
                continue
            segments = [s for s in re.split(r"\.", path[2:]) if s]
            assert _resolves(PipelineState, segments), f"{name} reads {path}, which PipelineState lacks"
            checked += 1
    assert checked >= 10


def test_catch_and_fail_paths_match_the_failure_slot():
    for name, state in STATES.items():
        for catch in state.get("Catch", []):
            assert catch["ResultPath"].removeprefix("$.") in PipelineState.model_fields, name
    fail = ASL["States"]["FailRun"]
    assert fail["ErrorPath"] == "$.failure.Error" and fail["CausePath"] == "$.failure.Cause"
