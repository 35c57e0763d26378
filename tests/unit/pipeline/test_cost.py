"""Cost per run (pipeline_info/cost.json): the pure pricing of trace rows, the settings it prices with, and Publish
writing it before the manifest."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from helixflow.pipeline import cost
from helixflow.pipeline.jobs import JobHandle
from helixflow.pipeline.publish import publish_run, trace_rows
from helixflow.pipeline.state import SampleRequest
from helixflow_local.template import Template
from tests.helpers import ROOT

PRICES = cost.load_prices()
FUNCTIONS = cost.parse_function_settings(Template(ROOT / "template.yaml").state_function_settings())


def _saved_rows() -> tuple[list[dict], list[dict]]:
    history = json.loads((ROOT / "tests" / "events" / "history_lambda_path_at_publish.json").read_text())
    finished = datetime.fromisoformat(history[-1]["timestamp"]) + timedelta(milliseconds=250)
    return history, trace_rows(history, item_counts={"ProcessChunks": 3}, running_until=finished)


def test_price_table_is_versioned_with_its_source_and_date():
    assert PRICES["version"] and PRICES["source"].startswith("AWS public list prices") and PRICES["recorded"]
    for placement in PRICES["placements"].values():
        assert PRICES["instances"][placement["instance_type"]]["usd_per_hour"] > 0


def test_state_functions_setting_matches_every_function_and_the_state_machine():
    """The Publish function prices each state with its function's memory: a MemorySize changed in the template
    without its STATE_FUNCTIONS entry would misprice every run."""
    template = Template(ROOT / "template.yaml")
    default_memory = template.document["Globals"]["Function"]["MemorySize"]
    asl = json.loads((ROOT / "statemachines" / "pipeline.asl.json").read_text())
    expected = {}

    def settings(resource: str) -> dict[str, int]:
        logical_id = re.fullmatch(r"\$\{(\w+)Arn\}", resource).group(1)
        props = template.resources[logical_id]["Properties"]
        found = {"memory_mb": props.get("MemorySize", default_memory)}
        if "EphemeralStorage" in props:
            found["ephemeral_mb"] = props["EphemeralStorage"]["Size"]
        return found

    for name, state in asl["States"].items():
        if state["Type"] == "Task":
            expected[name] = settings(state.get("Parameters", {}).get("FunctionName") or state["Resource"])
        elif state["Type"] == "Map":
            (inner,) = [s for s in state["ItemProcessor"]["States"].values() if s["Type"] == "Task"]
            expected[name] = {**settings(inner.get("Parameters", {}).get("FunctionName") or inner["Resource"]),
                              "max_concurrency": state["MaxConcurrency"]}
    assert FUNCTIONS == expected


def test_cost_of_saved_trace_rows_is_gb_seconds_requests_and_transitions():
    history, rows = _saved_rows()
    priced = cost.cost_from_trace(rows, functions=FUNCTIONS, transitions=cost.count_transitions(history))
    by_stage = {entry["stage"]: entry for entry in priced["stages"]}
    assert [e["stage"] for e in priced["stages"]] == [r["name"] for r in rows] and priced["complete"]
    validate = next(r for r in rows if r["name"] == "Validate")
    seconds = validate["duration_ms"] / 1000
    assert by_stage["Validate"]["gb_seconds"] == pytest.approx(seconds * 2048 / 1024, abs=1e-3)
    assert by_stage["Validate"]["usd"] == pytest.approx(
        seconds * 2 * PRICES["lambda"]["usd_per_gb_second"] + PRICES["lambda"]["usd_per_request"], abs=1e-6)
    # The map's three items each ran on a 3008 MB function at most for the whole map: an upper bound.
    chunks = by_stage["ProcessChunks"]
    map_seconds = next(r for r in rows if r["name"] == "ProcessChunks")["duration_ms"] / 1000
    assert (chunks["items"], chunks["requests"], chunks["estimate"]) == (3, 3, "upper bound")
    assert chunks["gb_seconds"] == pytest.approx(3 * map_seconds * 3008 / 1024, abs=1e-3)
    entered = sum(1 for e in history if e["type"].endswith("StateEntered"))
    assert priced["step_functions"]["state_transitions"] == entered + 3
    assert priced["total_usd"] == pytest.approx(sum(e["usd"] for e in priced["stages"])
                                                + priced["step_functions"]["usd"], abs=1e-5)
    assert priced["prices_version"] == PRICES["version"]
    # Pure: the same rows give the same figures.
    assert cost.cost_from_trace(rows, functions=FUNCTIONS, transitions=entered) == priced


def test_a_cluster_job_costs_its_run_time_on_its_nodes_not_its_queue_time():
    t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
    job = JobHandle(backend="slurm", job_id="42", stage="phase2", placement="slurm-gpu", work_prefix="w/",
                    submitted=t0.isoformat(), state="SUCCEEDED",
                    details={"partition": "gpu", "start_time": (t0 + timedelta(seconds=600)).isoformat(),
                             "end_time": (t0 + timedelta(seconds=600 + 1800)).isoformat()})
    rows = trace_rows([], jobs=[job])
    priced = cost.cost_from_trace(rows, functions=FUNCTIONS, transitions=0, job_nodes={"Phase2Job": 2},
                                  job_placements={"Phase2Job": "slurm-gpu"})
    (entry,) = priced["stages"]
    hourly = PRICES["instances"][PRICES["placements"]["slurm-gpu"]["instance_type"]]["usd_per_hour"]
    assert (entry["placement"], entry["nodes"], entry["node_seconds"]) == ("slurm-gpu", 2, 3600.0)
    assert entry["usd"] == pytest.approx(hourly, abs=1e-6) and priced["total_usd"] == pytest.approx(hourly, abs=1e-6)


def test_a_state_without_settings_is_listed_unpriced_not_guessed():
    _, rows = _saved_rows()
    priced = cost.cost_from_trace(rows, functions={}, transitions=0)
    assert not priced["complete"] and priced["total_usd"] == 0
    assert all(e["unpriced"] for e in priced["stages"])


def test_slurm_nodes_from_ranks():
    assert cost.nodes_for("slurm-cpu", 16, PRICES) == 1  # c7i.4xlarge: 16 vCPUs, one rank each
    assert cost.nodes_for("slurm-cpu", 17, PRICES) == 2
    assert cost.nodes_for("slurm-gpu", 3, PRICES) == 3  # one GPU per rank


def test_publish_writes_cost_json_before_the_manifest_which_lists_it(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    history, _ = _saved_rows()
    request = SampleRequest(status="ready", bucket="helixflow-cost-test", sample="S1", run_id="run-1", results_prefix="results/S1/run-1/",
                            inputs=[{"key": "incoming/S1.fastq", "etag": "e", "size": 1, "mate": 0}], params={})
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="helixflow-cost-test")
        manifest = publish_run(s3=s3, request=request, stages={}, history_events=history,
                               item_counts={"ProcessChunks": 3}, functions=FUNCTIONS)
        stored = json.loads(s3.get_object(Bucket="helixflow-cost-test", Key="results/S1/run-1/pipeline_info/cost.json")["Body"].read())
    assert "pipeline_info/cost.json" in {f["path"] for f in manifest["files"]}
    assert stored["complete"] and stored["total_usd"] > 0
    assert {e["stage"] for e in stored["stages"]} >= {"Validate", "ProcessChunks", "MergeChunks", "Publish"}
