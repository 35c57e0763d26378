"""The console's state graph, drawn from statemachines/pipeline.asl.json, and each state's status in a saved
execution history (tests/events/) of a real local run."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from helixflow_local.asl import read_machine
from helixflow_local.console.app import state_statuses
from helixflow_local.console.graph import state_graph
from helixflow_local.console.reader import lambda_functions
from helixflow_local.history import read_history
from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parents[3]
DEFINITION = (ROOT / "statemachines" / "pipeline.asl.json").read_text()
MACHINE = read_machine(json.loads(DEFINITION))


def _statuses(name: str) -> dict[str, str]:
    events = json.loads((ROOT / "tests" / "events" / f"history_{name}.json").read_text())
    return state_statuses(MACHINE, read_history(events))


def test_every_state_is_a_box_in_its_status_and_the_map_a_group():
    require_tool(shutil.which("dot") is not None, "Graphviz (dot)")
    svg = state_graph(DEFINITION, _statuses("demo_invalid_fastq"))
    boxes = dict(re.findall(r'<g id="state-(\w+)" class="node state st-([\w-]+)"', svg))
    assert set(boxes) == set(MACHINE.types)  # inner Map states too
    assert boxes["Validate"] == "failed" and boxes["FailRun"] == "failed"
    assert boxes["RecordFailure"] == "succeeded" and boxes["Publish"] == "not-run"
    group = svg[svg.index('<g id="group&#45;ProcessChunks"'):]
    assert "ProcessChunks (items)" in group.split("</g>")[0]  # the dashed box around the per-item states
    # Choice branches carry what they compare with; the Catch edges into the failure branch are dashed.
    assert ">waiting_for_mate<" in svg and ">ray<" in svg and ">default<" in svg
    assert svg.startswith("<svg") and "<?xml" not in svg  # inline in the page


def test_the_map_s_inner_state_takes_the_map_s_status_and_unreached_branches_are_not_run():
    statuses = _statuses("demo_succeeded")
    assert statuses["ProcessChunks"] == statuses["ProcessChunk"] == "succeeded"
    assert statuses["SubmitPhase1Job"] == "not run" and statuses["WaitForMate"] == "not run"
    assert statuses["Publish"] == "succeeded"
    slurm = _statuses("slurm_phase2")
    assert slurm["PollPhase2Job"] == slurm["CollectPhase2"] == "succeeded"


def test_the_log_groups_read_are_the_lambdas_the_definition_invokes():
    names = lambda_functions(json.loads(DEFINITION.replace("${", "{")))
    assert "{ValidateFunctionArn}" in names and "{ProcessChunkFunctionArn}" in names  # the Map's inner task too
    assert len(names) == len(set(names))
