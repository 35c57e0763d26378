"""``helixflow simulate`` (Phase 1 placement strategies under an arrivals trace, or one large sample) and
``helixflow profile`` (fit the planner's stage profile from published runs).

Exit status: 0 done; 2 for a trace, size or run folder that cannot be used (one line, ``InvalidTrace
(INVALID_TRACE): <file>, line N: ...``, or the OS error naming the path); 4 when no checkout is found for
``profile``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from helixflow_local import simulate as sim


@click.command("simulate")
@click.option("--trace", "trace_source", help="Arrivals CSV (time_s,samples[,size_gb]) or a shipped trace: "
              + ", ".join(sim.shipped_traces()))
@click.option("--sample-size", help="Instead of a trace: one paired gzip sample of this size (e.g. 100GB).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("helixflow-simulation"),
              show_default=True, help="Where results.json, table.txt and the plots go.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the size distribution.")
@click.option("--size-median-gb", type=click.FloatRange(min=0.001), default=1.0, show_default=True,
              help="Median paired gzip size of the log-normal size distribution (rows with size_gb keep theirs).")
@click.option("--size-sigma", type=click.FloatRange(min=0.0, max=3.0), default=0.8, show_default=True)
@click.option("--distributed", is_flag=True, help="Simulate every sample on the distributed validation path instead "
              "of the single Validate + Split (its rates, measured and assumed, are in the profile's `distributed` "
              "entry).")
@click.option("--workers", type=click.IntRange(min=1, max=10_000), help="Ray workers at most (default: the profile's).")
@click.option("--lambda-concurrency", type=click.IntRange(min=1, max=10_000),
              help="Chunk functions in flight per sample (default: the state machine's MaxConcurrency).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of the table.")
def simulate_command(trace_source: str | None, sample_size: str | None, out_dir: Path, seed: int,
                     size_median_gb: float, size_sigma: float, distributed: bool, workers: int | None,
                     lambda_concurrency: int | None, as_json: bool) -> None:
    """Compare all-Lambda, all-cluster (static, autoscaled) and Mashup placement of Validate + Phase 1 over an
    arrivals trace (a SimPy discrete-event simulation from the measured profile and the price table), or, with
    --sample-size, time and cost of one large sample on Ray workers and on concurrent Lambdas."""
    if (trace_source is None) == (sample_size is None):
        raise click.UsageError("give --trace or --sample-size (one of them)")
    out_dir.mkdir(parents=True, exist_ok=True)
    if sample_size is not None:
        _one_sample(sim.parse_size(sample_size), workers or 16, lambda_concurrency or 200, out_dir, as_json)
        return
    trace = sim.read_trace(trace_source)
    config = sim.Config(seed=seed, size_median_gb=size_median_gb, size_sigma=size_sigma, distributed=distributed,
                        max_workers=workers, lambda_concurrency=lambda_concurrency)
    outcomes = sim.compare(trace, config)
    verdict = sim.verdict(outcomes)
    path = sim.PATH_LABELS[distributed]
    title = f"{trace.name}: {trace.samples} samples, {path}"
    table = sim.render_table(outcomes)
    plots = sim.write_plots(outcomes, out_dir, title)
    document = {"trace": trace.name, "samples": trace.samples, "window_s": trace.window_s, "path": path,
                "seed": seed, "size_median_gb": size_median_gb, "size_sigma": size_sigma,
                "strategies": [o.row() for o in outcomes], "mashup_vs_best_single_platform": verdict}
    (out_dir / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    (out_dir / "table.txt").write_text(f"{title}\n\n{table}\n")
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"{title}\n\n{table}\n")
    if verdict.get("baselines"):
        click.echo(f"Mashup vs the best single platform that ran every sample ({', '.join(verdict['baselines'])}): "
                   f"makespan {_change(verdict['time_lower_pct'])} than {verdict['best_time']}'s, cost "
                   f"{_change(verdict['cost_lower_pct'])} than {verdict['best_cost']}'s, mean latency "
                   f"{_change(verdict['latency_lower_pct'])} than the best baseline's; the paper's goal (>= 34% "
                   f"lower time, >= 43% lower cost) {'is met' if verdict['meets_paper_goal'] else 'is not met'}.")
    else:
        click.echo(f"Mashup: {verdict['note']}.")
    click.echo(f"wrote {out_dir / 'results.json'}, {out_dir / 'table.txt'}, " + ", ".join(str(p) for p in plots))


def _change(lower_pct: float) -> str:
    return f"{abs(lower_pct):.1f}% {'lower' if lower_pct >= 0 else 'higher'}"


def _one_sample(size_gb: float, workers: int, concurrency: int, out_dir: Path, as_json: bool) -> None:
    profile = sim.load_profile()
    rows = sim.one_sample(size_gb, workers=workers, lambda_concurrency=concurrency, profile=profile)
    largest = {name: dict(zip(("gzip_gb", "next_size_breaks"), sim.largest_lambda_sample_gb(
        profile, distributed=distributed))) for distributed, name in sim.PATH_LABELS.items()}
    document = {"sample_gzip_gb": size_gb, "runs": rows, "largest_lambda_only_sample": largest}
    (out_dir / "sample.json").write_text(json.dumps(document, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"one paired gzip sample of {size_gb:,.1f} GB, validated and through Phase 1\n")
    click.echo("| path | placement | time | within 15 min | cost USD | node-hours |\n|---|---|---|---|---|---|")
    for row in rows:
        time = f"{row['seconds'] / 60:,.1f} min" if row["feasible"] else "infeasible"
        usd = f"{row['usd']:.2f}" if row["feasible"] else "-"
        click.echo(f"| {row['path']} | {row['placement']} | {time} | {'yes' if row['within_15_min'] else 'no'} | "
                   f"{usd} | {row['node_hours']} |")
    for name, found in largest.items():
        click.echo(f"\nlargest sample the Lambda-only path takes, {name}: {found['gzip_gb']:,.1f} GB of paired gzip "
                   f"(past it: {found['next_size_breaks']})")


@click.command("profile")
@click.argument("results", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), default=Path("helixflow-profiles"),
              show_default=True, help="The profile store: one JSON Lines file of observations per run.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The profile to write (default: the package's profile.json, which the planner reads).")
def profile_command(results: tuple[Path, ...], store: Path, out_file: Path | None) -> None:
    """Add the runs under RESULTS (folders holding pipeline_info/params.json and trace.tsv, e.g. what
    `helixflow run --out` collected) to the store, and fit every stage's throughput from all stored runs."""
    from helixflow.pipeline import profiles
    from helixflow.pipeline.cost import parse_function_settings
    from helixflow_local.stack import repository_root
    from helixflow_local.template import Template

    template = Template(repository_root() / "template.yaml")
    functions = parse_function_settings(template.state_function_settings())
    initial = profiles.load_profile(profiles.PROFILE_PATH)
    added = 0
    for folder in results:
        for info in sorted(folder.rglob("pipeline_info/params.json")):
            params, rows = _read_run(info)
            observed = profiles.observations_from_run(params, rows, functions=functions, profile=initial)
            profiles.write_store(store, str(params.get("run_id") or info.parent.parent.name), observed)
            added += 1
    try:
        stored = profiles.read_store(store) if store.is_dir() else []
    except ValueError as exc:  # pydantic's ValidationError and JSON errors are ValueErrors
        raise sim.InvalidTrace(f"{store}: a stored observation cannot be read ({str(exc).splitlines()[0]})") from None
    fitted = profiles.fit(stored, initial)
    target = out_file or profiles.PROFILE_PATH
    target.write_text(json.dumps(fitted, indent=2) + "\n")
    click.echo(f"{added} run(s) added, {len(stored)} observation(s) in {store}; wrote {target} "
               f"(version {fitted['version']})")
    for stage, model in fitted["stages"].items():
        click.echo(f"  {stage:8s} {model['rate_mb_s']:>10,.1f} per s  + {model['overhead_s']:.1f} s   {model['source']}")


def _read_run(params_path: Path) -> tuple[dict, list[dict]]:
    trace_path = params_path.with_name("trace.tsv")
    try:
        params = json.loads(params_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise sim.InvalidTrace(f"{params_path}: not JSON ({exc})") from None
    with open(trace_path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if rows and not {"name", "type", "status", "duration_ms", "items"} <= set(rows[0]):
        raise sim.InvalidTrace(f"{trace_path}, line 1: not a helixflow trace.tsv header")
    return params, rows
