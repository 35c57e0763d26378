"""`helixflow simulate` and `helixflow profile`: the SimPy model's determinism, the properties the README claims
of its comparison, the 100 GB sample question, and the CLI's exit statuses on bad input."""

from __future__ import annotations

import json
import math
from functools import lru_cache

import pytest
from click.testing import CliRunner

from helixflow.pipeline.cost import load_prices, node_hour_usd
from helixflow.pipeline.profiles import PROFILE_PATH, load_profile
from helixflow_local import simulate as sim
from helixflow_local.cli import main
from tests.helpers import ROOT

PROFILE = load_profile(PROFILE_PATH)


@lru_cache(maxsize=None)
def outcomes(trace: str, distributed: bool = False) -> dict[str, sim.Outcome]:
    found = sim.compare(sim.read_trace(trace), sim.Config(distributed=distributed), profile=PROFILE)
    return {o.strategy: o for o in found}


def test_the_three_traces_ship():
    traces = {name: sim.read_trace(name) for name in sim.shipped_traces()}
    assert set(traces) == {"sequencing_run", "steady_trickle", "mixed_day"}
    burst = traces["sequencing_run"]
    assert burst.arrivals[0] == sim.Arrival(0.0, 96) and burst.window_s >= 6 * 3600
    assert traces["steady_trickle"].samples == 96 and max(a.samples for a in traces["steady_trickle"].arrivals) == 1


def test_a_seeded_simulation_is_deterministic():
    trace = sim.read_trace("sequencing_run")
    first = [o.row() for o in sim.compare(trace, sim.Config(seed=3), profile=PROFILE)]
    again = [o.row() for o in sim.compare(trace, sim.Config(seed=3), profile=PROFILE)]
    assert first == again
    assert sim.sample_sizes(trace, sim.Config(seed=3)) != sim.sample_sizes(trace, sim.Config(seed=4))


def test_all_lambda_runs_exactly_the_samples_lambda_can_take_and_mashup_runs_them_all():
    largest, _ = sim.largest_lambda_sample_gb(PROFILE, distributed=False)
    sizes = [size for _, size in sim.sample_sizes(sim.read_trace("sequencing_run"), sim.Config())]
    got = outcomes("sequencing_run")
    assert got["all-lambda"].infeasible == sum(size > largest for size in sizes) > 0
    assert got["all-lambda"].node_seconds == 0 and got["all-lambda"].cluster_usd == 0
    mashup = got["mashup"]
    assert len(mashup.latencies) == 96 and mashup.infeasible == 0
    assert mashup.placements == {"lambda": sum(size <= largest for size in sizes),
                                 "ray": sum(size > largest for size in sizes)}


def test_the_static_cluster_is_paid_for_the_whole_window():
    trace = sim.read_trace("sequencing_run")
    static = outcomes("sequencing_run")["cluster-static"]
    nodes = PROFILE["platforms"]["ray"]["max_workers"]
    assert static.node_seconds == pytest.approx(nodes * trace.window_s)
    assert static.cluster_usd == pytest.approx(nodes * trace.window_s / 3600 * node_hour_usd("ray", load_prices()))


@pytest.mark.parametrize("trace", ["sequencing_run", "steady_trickle", "mixed_day"])
def test_comparison_properties_on_every_shipped_trace(trace):
    got = outcomes(trace)
    static, scaled, mashup = got["cluster-static"], got["cluster-autoscaled"], got["mashup"]
    # Autoscaling trades idle nodes for start-up waits; Mashup's Lambda samples skip the waits.
    assert scaled.idle_node_minutes < static.idle_node_minutes and scaled.total_usd < static.total_usd
    assert static.mean_latency_s < scaled.mean_latency_s
    assert mashup.mean_latency_s < scaled.mean_latency_s
    assert mashup.total_usd < static.total_usd
    # The autoscaled cluster stays within its bounds and goes back to zero.
    counts = [count for _, count in scaled.timeline]
    assert max(counts) <= PROFILE["platforms"]["ray"]["max_workers"] and counts[-1] == 0


def test_on_the_trickle_mashup_is_cheaper_than_the_autoscaled_cluster():
    got = outcomes("steady_trickle")
    assert got["mashup"].total_usd < 0.8 * got["cluster-autoscaled"].total_usd


def test_with_the_distributed_design_mashup_places_everything_on_lambda_and_matches_all_lambda():
    got = outcomes("sequencing_run", distributed=True)
    assert got["all-lambda"].infeasible == 0 and got["mashup"].placements == {"lambda": 96}
    assert got["mashup"].row()["cost_usd"] == got["all-lambda"].row()["cost_usd"]
    verdict = sim.verdict(got.values())
    assert verdict["best_cost"] == "all-lambda" and not verdict["meets_paper_goal"]


def test_a_100_gb_sample_takes_hours_on_the_single_path_and_the_distributed_path_ends_at_one_mates_pass():
    """The single path takes hours on Ray and cannot run on Lambda. The distributed path reads each mate in one
    Lambda (ScanMates, at the measured pass rate): a sample just past the largest Lambda size breaks that
    function's limit on every placement, while one just under it runs within 15 minutes on Lambda."""
    rows = {(r["path"], r["placement"]): r for r in sim.one_sample(100, workers=16, lambda_concurrency=200,
                                                                   profile=PROFILE)}
    today = [r for (path, _), r in rows.items() if path == "single Validate + Split"]
    assert all(not r["within_15_min"] for r in today)
    assert not rows[("single Validate + Split", "Lambda, 200 concurrent")]["feasible"]
    design = "distributed validation"
    largest, reason = sim.largest_lambda_sample_gb(PROFILE, distributed=True)
    assert reason.startswith("ScanMate over")
    past = sim.one_sample(1.05 * largest, workers=16, lambda_concurrency=200, profile=PROFILE)
    assert all(not r["feasible"] for r in past if r["path"] == design)
    fits = {(r["path"], r["placement"]): r for r in sim.one_sample(0.95 * largest, workers=16, lambda_concurrency=200,
                                                                   profile=PROFILE)}
    assert fits[(design, "Lambda, 200 concurrent")]["within_15_min"]
    ray = "Ray, 16 warm workers"
    assert fits[(design, ray)]["seconds"] < fits[("single Validate + Split", ray)]["seconds"]


def test_largest_lambda_sample_is_the_edge_of_the_limits():
    for distributed in (False, True):
        size, reason = sim.largest_lambda_sample_gb(PROFILE, distributed=distributed)
        ratio = PROFILE["gzip_ratio"]["value"]

        def limit(gb: float) -> str:
            return sim.planning.phase1_work(gb * 1024 * ratio, gb * 1024, "lambda", mates=2, profile=PROFILE,
                                            distributed=distributed, validate=not distributed).limit
        assert not limit(size) and limit(size * 1.01) and reason


# ------------------------------------------------------------------------------------------------ CLI


def invoke(*argv: str):
    return CliRunner().invoke(main, list(argv))


def test_simulate_prints_the_table_and_writes_plots(tmp_path):
    result = invoke("simulate", "--trace", "sequencing_run", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "| mashup |" in result.output and "paper's goal" in result.output
    assert {p.name for p in tmp_path.iterdir()} == {"results.json", "table.txt", "comparison.png", "comparison.svg",
                                                    "nodes.png", "nodes.svg"}
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document = json.loads((tmp_path / "results.json").read_text())
    assert [row["strategy"] for row in document["strategies"]] == list(sim.STRATEGIES)


def test_simulate_one_large_sample(tmp_path):
    result = invoke("simulate", "--sample-size", "100GB", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "largest sample the Lambda-only path takes" in result.output
    assert json.loads((tmp_path / "sample.json").read_text())["sample_gzip_gb"] == 100


@pytest.mark.parametrize("content, where", [
    (b"when,samples\n0,1\n", "header"),
    (b"time_s,samples\n0,many\n", "line 2"),
    (b"# comment\ntime_s,samples\n0,1\n10,-3\n", "line 4"),
    (b"time_s,samples,size_gb\n0,1,nan\n", "line 2"),
    (b"time_s,samples\n0,0\n", "no samples"),
    (b"\x1f\x8b\x08\x00\xff\xfe", "UTF-8"),
    (b"", "header"),
])
def test_a_bad_trace_is_refused_in_one_line_with_where(tmp_path, content, where):
    path = tmp_path / "arrivals.csv"
    path.write_bytes(content)
    result = invoke("simulate", "--trace", str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    line, = result.output.strip().splitlines()
    assert line.startswith("InvalidTrace (INVALID_TRACE): ") and where in line and "Traceback" not in line


@pytest.mark.parametrize("argv, start", [
    (("simulate", "--trace", "/no/such/trace.csv"), "FileNotFoundError (ENOENT)"),
    (("simulate",), "UsageError (USAGE_ERROR)"),
    (("simulate", "--trace", "sequencing_run", "--sample-size", "1GB"), "UsageError (USAGE_ERROR)"),
    (("simulate", "--sample-size", "lots"), "InvalidTrace (INVALID_TRACE)"),
])
def test_usage_and_missing_files_are_refused(tmp_path, argv, start):
    result = invoke(*argv, "--out", str(tmp_path))
    assert result.exit_code == 2 and result.output.strip().startswith(start) and "Traceback" not in result.output


def test_profile_fits_the_stored_runs_into_the_file_the_planner_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("HELIXFLOW_HOME", str(ROOT))
    run = tmp_path / "results" / "S1" / "run-1" / "pipeline_info"
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"run_id": "run-1", "inputs": [{"key": "incoming/S1.fastq.gz",
                                                                               "size": 100 * 2 ** 20}],
                                                 "stages": {"validation": {"records": 10,
                                                                           "reports": [{"decompressed_bytes": 320 * 2 ** 20}]}}}))
    (run / "trace.tsv").write_text("task_id\tname\ttype\tstatus\tattempts\titems\tnative_id\tqueue\tsubmit\tstart\t"
                                   "complete\tduration_ms\n"
                                   "1\tValidate\tTask\tCOMPLETED\t1\t\t\t\t\t\t\t2000\n"
                                   "2\tSplitIntoChunks\tTask\tCOMPLETED\t1\t\t\t\t\t\t\t5000\n")
    out = tmp_path / "profile.json"
    result = invoke("profile", str(tmp_path / "results"), "--store", str(tmp_path / "store"), "--out", str(out))
    assert result.exit_code == 0, result.output
    fitted = json.loads(out.read_text())
    assert fitted["stages"]["validate"]["source"].startswith("measured")
    assert fitted["stages"]["validate"]["rate_mb_s"] == pytest.approx(320 / (2.0 - PROFILE["stages"]["validate"]["overhead_s"]), abs=0.01)
    assert fitted["gzip_ratio"]["value"] == pytest.approx(3.2)
    assert fitted["stages"]["chunk"] == PROFILE["stages"]["chunk"]
    assert (tmp_path / "store" / "run-1.jsonl").is_file()
    monkeypatch.setenv("HELIXFLOW_PROFILE", str(out))
    assert load_profile()["version"] == "fitted-1-runs"


def test_profile_refuses_a_trace_that_is_not_ours(tmp_path, monkeypatch):
    monkeypatch.setenv("HELIXFLOW_HOME", str(ROOT))
    run = tmp_path / "r" / "pipeline_info"
    run.mkdir(parents=True)
    (run / "params.json").write_text("{}")
    (run / "trace.tsv").write_text("a\tb\n1\t2\n")
    result = invoke("profile", str(tmp_path / "r"), "--store", str(tmp_path / "s"), "--out", str(tmp_path / "p.json"))
    assert result.exit_code == 2 and result.output.startswith("InvalidTrace (INVALID_TRACE)")
    assert not math.isnan(PROFILE["stages"]["validate"]["rate_mb_s"])
