"""`helixflow local up|down|status`, `helixflow run` and `helixflow demo`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.status import Status

from helixflow.pipeline.params import parse_parameters
from helixflow.errors import ClusterNotConfigured
from helixflow.pipeline.run_report import REPORT_NAME
from helixflow_local.client import RunOutcome, collect, incoming_keys, needs_ray, resume, submit, wait_for_run
from helixflow_local.asl import read_machine
from helixflow_local.exit_codes import ExitCode, ToolError
from helixflow_local.progress import Printed, Snapshot, stage_lines, status_line
from helixflow_local.ray_head import LocalRay
from helixflow_local.samplesheets import (batch_line, collect_batch_report, raise_for, read_sheet, submit_samplesheet,
                                         summary_line, wait_for_samples)
from helixflow_local.slurm import LocalSlurm
from helixflow_local.stack import STACK_FILE, LocalStack, StackInfo, default_state_dir

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
PID_FILE = "stack.pid"
READY_TIMEOUT_S = 90

state_dir_option = click.option("--state-dir", type=click.Path(path_type=Path), default=default_state_dir,
                                show_default="$HELIXFLOW_STATE_DIR or ~/.helixflow/local",
                                help="Where the local stack keeps its pid, logs and endpoint.")


quiet_option = click.option("--quiet", "-q", is_flag=True,
                            help="No progress on stderr (the summary is still printed).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print the summary as one JSON object on stdout instead of text.")


class StackDidNotStart(ToolError):
    code = "STACK_DID_NOT_START"


class DemoUnexpected(ToolError):
    """The demo's broken sample did not fail with InvalidFastq: the pipeline missed a defect it must catch."""

    code = "DEMO_UNEXPECTED_OUTCOME"
    exit_code = ExitCode.RUN_FAILED


class StackNotRunning(ToolError):
    code = "STACK_NOT_RUNNING"
    exit_code = ExitCode.STACK_NOT_RUNNING


class RunFailed(ToolError):
    """The execution ended FAILED: the line carries the pipeline's error name and code, not this class's."""

    exit_code = ExitCode.RUN_FAILED

    def __init__(self, outcome: RunOutcome) -> None:
        document = outcome.error_document or {}
        self.error_name = outcome.error or outcome.status
        self.code = document.get("code") or outcome.status
        super().__init__(f"{document.get('message') or 'the execution ended ' + outcome.status} "
                         f"(run {outcome.run_id})")

    @property
    def name(self) -> str:
        return self.error_name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _our_stack_process(pid: int) -> bool:
    """Only signal a process `local up` started: the pid file could be stale and the pid reused."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"helixflow_local.stack" in cmdline


def running_stack(state_dir: Path) -> StackInfo | None:
    info = StackInfo.load(state_dir)
    if info is None or not _alive(info.pid) or not _our_stack_process(info.pid):
        return None
    try:
        info.client("stepfunctions").describe_state_machine(stateMachineArn=info.state_machine_arn)
    except Exception:
        return None
    return info


@contextmanager
def stack_for_command(state_dir: Path, *, ray: bool = False, slurm: bool = False,
                      quiet: bool = False) -> Iterator[StackInfo]:
    """The running local stack, or one started for this command alone. The Ray head (~0.7 GB, ~5-20 s to
    start) is started only for a run whose plan places Phase 1 on Ray, Slurm (~0.5 s) for a run with Phase 2
    (a reference, or "phase2" asked for)."""
    info = running_stack(state_dir)
    if info is not None:
        if ray and not info.ray_url:
            raise ClusterNotConfigured("this run's Phase 1 is placed on Ray and the running local stack has no Ray "
                                       "head: `helixflow local down`, then `helixflow local up --with-ray`",
                                       code="RAY_NOT_CONFIGURED")
        if slurm and not info.slurm_url:
            raise ClusterNotConfigured("this run has Phase 2 and the running local stack has no Slurm: "
                                       "`helixflow local down`, then `helixflow local up --with-slurm`",
                                       code="SLURM_NOT_CONFIGURED")
        if not quiet:
            console.print(f"[dim]using the local stack at {info.endpoint_url}[/dim]"
                          + (f"\n[dim]console: {info.console_url}[/dim]" if info.console_url else ""))
        yield info
        return
    if not quiet:
        console.print("[dim]starting a local stack for this command (`helixflow local up` keeps one running)"
                      + (" with a Ray head" if ray else "") + "[/dim]")
    with LocalStack(Path(tempfile.mkdtemp(prefix="run-", dir=_ensure(state_dir))), ray=ray, slurm=slurm) as stack:
        if not quiet:
            console.print(f"[dim]console (while this command runs): {stack.info.console_url}[/dim]")
        yield stack.info


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@click.group("local")
def local_group() -> None:
    """The local stack: moto (Step Functions, S3, Lambda, DynamoDB, SQS) running our real handlers."""


@local_group.command("up")
@click.option("--with-ray", is_flag=True, help="Also start a local Ray head (token auth) for Phase 1 on Ray.")
@click.option("--with-slurm", is_flag=True, help="Also start a local Slurm (slurmrestd, JWT) for Phase 2.")
@click.option("--with-scaling", "ray_workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Run the metrics schedule and evaluate the scaling alarms; with --with-ray, Ray's autoscaler "
                   "gets up to N worker nodes; with --with-slurm, partition cpu is N elastic nodes Slurm powers "
                   "up and down.")
@state_dir_option
def local_up(state_dir: Path, with_ray: bool, with_slurm: bool, ray_workers: int | None) -> None:
    """Start the local stack in the background."""
    info = running_stack(state_dir)
    if info is not None:
        out.print(f"local stack already running (pid {info.pid}) at {info.endpoint_url}")
        return
    _ensure(state_dir)
    (state_dir / STACK_FILE).unlink(missing_ok=True)
    with open(state_dir / "stack.log", "ab") as log:
        command = [sys.executable, "-m", "helixflow_local.stack", "--state-dir", str(state_dir)]
        process = subprocess.Popen(command + (["--with-ray"] if with_ray else [])
                                   + (["--with-slurm"] if with_slurm else [])
                                   + ([f"--with-scaling={ray_workers}"] if ray_workers else []),
                                   stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    (state_dir / PID_FILE).write_text(str(process.pid))
    deadline = time.monotonic() + READY_TIMEOUT_S
    with console.status("starting moto, Lambda workers and the event poller"):
        while (info := running_stack(state_dir)) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise StackDidNotStart(f"the local stack did not start; see {state_dir / 'stack.log'}")
            time.sleep(0.3)
    _print_info(info)


@local_group.command("down")
@state_dir_option
def local_down(state_dir: Path) -> None:
    """Stop the stack that `local up` started (and nothing else)."""
    pid_file = state_dir / PID_FILE
    if not pid_file.is_file():
        out.print("no local stack was started from this state directory")
        return
    pid = int(pid_file.read_text())
    if _alive(pid) and _our_stack_process(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        out.print(f"local stack (pid {pid}) stopped")
    else:
        out.print(f"local stack (pid {pid}) was not running")
    pid_file.unlink(missing_ok=True)
    (state_dir / STACK_FILE).unlink(missing_ok=True)


@local_group.command("status")
@state_dir_option
def local_status(state_dir: Path) -> None:
    """Show whether the local stack runs, where, and its recent executions."""
    info = running_stack(state_dir)
    if info is None:
        out.print("local stack: not running")
        sys.exit(ExitCode.STACK_NOT_RUNNING)
    _print_info(info)
    if info.ray_url:
        ray = LocalRay.attach(Path(info.state_dir) / "ray-head", info.ray_url)
        for node in ray.nodes():
            out.print(f"  ray node      {node['node_id'][:12]}  {node['state']}  "
                      f"{'head' if node['head'] else 'worker'}  {node['resources']}")
        for job in ray.request("GET", "/api/jobs/")[-10:]:
            out.print(f"  ray job       {job.get('submission_id')}  {job['status']}")
    if info.slurm_url:
        cluster = LocalSlurm.attach(info.slurm_state_dir, info.slurm_url).status()
        for node in cluster["nodes"]:
            flags = ",".join(node["flags"])  # an elastic node's power state: CLOUD, POWERED_DOWN, POWERING_UP...
            out.print(f"  slurm node    {node['name']}  {node['state']}{'+' + flags if flags else ''}  "
                      f"cpus={node['cpus']}  gres={node['gres'] or '-'}  partitions={','.join(node['partitions']) or '-'}")
        out.print(f"  slurm parts   {', '.join(cluster['partitions'])}  (REST {cluster['api']})")
        for job in cluster["queue"][-10:]:
            out.print(f"  slurm job     {job['job_id']}  {job['name']}  {job['partition']}  {job['state']}")
    executions = info.client("stepfunctions").list_executions(stateMachineArn=info.state_machine_arn)["executions"]
    for execution in executions[:10]:
        out.print(f"  {execution['name']}  {execution['status']}")


def _print_info(info: StackInfo) -> None:
    out.print(f"local stack running (pid {info.pid})\n  endpoint      {info.endpoint_url}\n"
              f"  bucket        s3://{info.bucket}/incoming/\n  state machine {info.state_machine_arn}\n"
              f"  console       {info.console_url or 'not served'}\n"
              f"  logs          {info.state_dir}/logs/\n"
              f"  ray head      {info.ray_url or 'not started (`local up --with-ray`, or on a run placed on Ray)'}\n"
              f"  slurm         {info.slurm_url or 'not started (`local up --with-slurm`): Phase 2 is off'}\n"
              f"  use it with   AWS_ENDPOINT_URL={info.endpoint_url} AWS_ACCESS_KEY_ID=local "
              f"AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={info.region}")


class Watch:
    """Renders the snapshots wait_for_run hands on: the spinner's line, and a line per finished stage above it."""

    def __init__(self, info: StackInfo, status: Status) -> None:
        definition = info.client("stepfunctions").describe_state_machine(
            stateMachineArn=info.state_machine_arn)["definition"]
        self.machine = read_machine(json.loads(definition))
        self.status = status
        self.printed: dict[str, Printed] = {}

    def __call__(self, snapshot: Snapshot) -> None:
        printed = self.printed.setdefault(snapshot.execution or "", Printed())
        for line in stage_lines(snapshot, self.machine, printed):
            console.print(f"  {line}")
        self.status.update(status_line(snapshot))


@contextmanager
def watching(info: StackInfo, quiet: bool) -> Iterator[Callable[[Snapshot], None]]:
    """The progress callback for wait_for_run: the live display on stderr, or nothing with --quiet."""
    if quiet:
        yield lambda _: None
        return
    with console.status("waiting for the execution") as status:
        yield Watch(info, status)


def run_reads(info: StackInfo, reads: list[Path], out_dir: Path, params: dict | None,
              timeout: float, force: bool = False, reference: Path | None = None, quiet: bool = False) -> RunOutcome:
    uploaded = submit(info, reads, params, force=force, reference=reference)
    if not quiet:
        console.print(f"uploaded {', '.join(f's3://{info.bucket}/{u.key}' for u in uploaded)}")
    with watching(info, quiet) as on_progress:
        described = wait_for_run(info, uploaded, timeout=timeout, on_progress=on_progress)
    return collect(info, described, out_dir)


def outcome_document(outcome: RunOutcome) -> dict:
    """`--json`: the summary print_outcome writes, as one JSON object on stdout."""
    document = outcome.error_document or {}
    return {
        "status": outcome.status, "sample": outcome.sample, "run_id": outcome.run_id,
        "execution_arn": outcome.execution_arn, "reused": outcome.reused,
        "results": str(outcome.local_dir) if outcome.local_dir else None,
        "files": (outcome.manifest or {}).get("files", []),
        "error": outcome.error, "code": document.get("code"), "message": document.get("message"),
        "position": {k: document[k] for k in ("file", "record", "line", "byte_offset")
                     if document.get(k) is not None},
    }


def report(outcome: RunOutcome, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(outcome_document(outcome), indent=2))
    else:
        print_outcome(outcome)


def print_outcome(outcome: RunOutcome) -> None:
    if outcome.succeeded:
        if outcome.reused:
            out.print(f"[green]SUCCEEDED[/green] {outcome.sample}: reused run {outcome.run_id} (same inputs and "
                      "parameters; --force runs again)")
        else:
            out.print(f"[green]SUCCEEDED[/green] {outcome.sample} run {outcome.run_id}")
        for entry in outcome.manifest["files"]:
            out.print(f"  {entry['size']:>12,d}  {entry['path']}  sha256:{entry['sha256'][:12]}")
        out.print(f"results: {outcome.local_dir}  (manifest.json lists every file)")
        for entry in outcome.manifest["files"]:
            if entry["path"] == REPORT_NAME:
                out.print(f"report:  {outcome.local_dir / entry['path']}")
        return
    document = outcome.error_document or {}
    out.print(f"[red]FAILED[/red] {outcome.sample} run {outcome.run_id}: [bold]{outcome.error}[/bold]"
              + (f" ({document['code']})" if document.get("code") else ""))
    if document.get("message"):
        out.print(f"  {document['message']}")
    position = ", ".join(f"{k} {document[k]}" for k in ("file", "record", "line", "byte_offset")
                         if document.get(k) is not None)
    if position:
        out.print(f"  at {position}")
    if outcome.local_dir:
        out.print(f"error report: {outcome.local_dir / 'error.json'}")


@click.command("run")
@click.argument("reads", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--samplesheet", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV sample,fastq_1,fastq_2[,parameter columns]: upload it and its files (paths relative to its "
                   "folder) and wait for every sample's run (instead of READS).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("helixflow-results"), show_default=True)
@click.option("--params", "params_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON run parameters (uploaded as the sample's sidecar incoming/<sample>.json).")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds to wait for the run.")
@click.option("--force", is_flag=True, help="Run even if the same inputs and parameters already succeeded.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reference FASTA(.gz): uploaded to references/<name>; Phase 2 (Slurm) aligns to it.")
@quiet_option
@json_option
@state_dir_option
def run_command(reads: tuple[Path, ...], samplesheet: Path | None, out_dir: Path, params_file: Path | None,
                timeout: float, force: bool, reference: Path | None, quiet: bool, as_json: bool,
                state_dir: Path) -> None:
    """Run the pipeline on R1 [R2] (or a samplesheet's samples) through the local stack; exit 0 when every
    execution succeeded."""
    if samplesheet is not None:
        if reads or params_file or force or reference:
            raise click.UsageError("--samplesheet takes its files and parameters from the sheet: give no READS, "
                                   "--params, --force or --reference with it")
        return run_samplesheet(samplesheet, out_dir, timeout, state_dir, quiet=quiet, as_json=as_json)
    if not reads:
        raise click.UsageError("give one FASTQ (single-end), two (R1 R2), or --samplesheet SHEET")
    if len(reads) > 2:
        raise click.UsageError("give one FASTQ (single-end) or two (R1 R2)")
    # Refuse what the pipeline would reject (names, parameters) before starting or uploading anything.
    incoming_keys(list(reads))
    params = (parse_parameters(params_file.read_bytes(), source=str(params_file)).model_dump(exclude_unset=True)
              if params_file else None)
    phase2 = reference is not None or (params or {}).get("phase2") in ("slurm-cpu", "slurm-gpu")
    if reference is not None:  # the name becomes references/<name>: refused here, before anything starts
        parse_parameters({**(params or {}), "reference": f"references/{reference.name}"}, source="--reference")
    with stack_for_command(state_dir, ray=needs_ray(list(reads), params), slurm=phase2, quiet=quiet) as info:
        outcome = run_reads(info, list(reads), out_dir, params, timeout, force=force, reference=reference,
                            quiet=quiet)
    report(outcome, as_json)
    if not outcome.succeeded:
        raise RunFailed(outcome)


def run_samplesheet(path: Path, out_dir: Path, timeout: float, state_dir: Path, *, quiet: bool,
                    as_json: bool) -> None:
    sheet = read_sheet(path)  # refused before anything starts or is uploaded
    with stack_for_command(state_dir, ray=sheet.needs_ray, slurm=sheet.needs_slurm, quiet=quiet) as info:
        submission = submit_samplesheet(info, sheet)
        if quiet:
            results = wait_for_samples(info, submission, out_dir, timeout=timeout)
        else:
            console.print(f"uploaded s3://{info.bucket}/{sheet.key} and "
                          f"{sum(map(len, submission.uploads.values()))} files")
            with console.status("waiting for the runs") as status:
                results = wait_for_samples(info, submission, out_dir, timeout=timeout,
                                           on_progress=lambda sample, snapshot:
                                           status.update(f"{sample}: {status_line(snapshot)}"))
        batch_report = collect_batch_report(info, submission, out_dir)
    if as_json:
        click.echo(json.dumps([outcome_document(r.outcome) if r.outcome else
                               {"status": "TIMED_OUT" if r.timed_out else "NOT_RUN", "sample": r.sample,
                                "message": r.problem} for r in results], indent=2))
    else:
        for result in results:
            out.print(summary_line(result), markup=False, highlight=False)
        out.print(batch_line(submission, batch_report), markup=False, highlight=False)
    raise_for(results)


@click.command("resume")
@click.argument("run_id")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("helixflow-results"), show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=3600, show_default=True,
              help="Seconds to wait for the run.")
@quiet_option
@json_option
@state_dir_option
def resume_command(run_id: str, out_dir: Path, timeout: float, quiet: bool, as_json: bool, state_dir: Path) -> None:
    """Run the failed run RUN_ID again on the running local stack, skipping the phases it checkpointed."""
    info = running_stack(state_dir)
    if info is None:
        raise StackNotRunning("`helixflow resume` needs the stack that ran RUN_ID: start it with `helixflow local up`")
    arn = resume(info, run_id)
    if not quiet:
        console.print(f"resuming {run_id} as {arn.rsplit(':', 1)[-1]}")
    with watching(info, quiet) as on_progress:
        described = wait_for_run(info, [], timeout=timeout, follow=(arn,), on_progress=on_progress)
    outcome = collect(info, described, out_dir)
    report(outcome, as_json)
    if not outcome.succeeded:
        raise RunFailed(outcome)


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("helixflow-demo"), show_default=True)
@click.option("--pairs", type=click.IntRange(min=1), default=2000, show_default=True, help="Read pairs in the demo sample.")
@state_dir_option
def demo_command(out_dir: Path, pairs: int, state_dir: Path) -> None:
    """Run a generated paired-end sample (succeeds) and a broken file (fails with its named error)."""
    from helixflow_local.demo_data import write_broken_sample, write_paired_sample

    inputs = out_dir / "inputs"
    r1, r2 = write_paired_sample(inputs, pairs=pairs)
    broken = write_broken_sample(inputs)
    started = time.monotonic()
    with stack_for_command(state_dir) as info:
        good = run_reads(info, [r1, r2], out_dir, None, timeout=1800)
        print_outcome(good)
        bad = run_reads(info, [broken], out_dir, None, timeout=600)
        print_outcome(bad)
    out.print(f"demo finished in {time.monotonic() - started:.1f} s; open {out_dir}/")
    if not good.succeeded:
        raise RunFailed(good)
    if bad.succeeded or bad.error != "InvalidFastq":
        raise DemoUnexpected(f"the broken sample ended {bad.status} ({bad.error or 'no error'}), not InvalidFastq "
                             f"(run {bad.run_id})")


@click.command("console")
@click.option("--open", "open_browser", is_flag=True, help="Also open it in this machine's web browser.")
@state_dir_option
def console_command(open_browser: bool, state_dir: Path) -> None:
    """Print the URL of the running local stack's console (read-only, on 127.0.0.1)."""
    info = running_stack(state_dir)
    if info is None or not info.console_url:
        raise StackNotRunning("no local stack with a console is running: start one with `helixflow local up`")
    out.print(info.console_url)
    if open_browser:
        import webbrowser

        webbrowser.open(info.console_url)
