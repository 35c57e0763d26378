"""The local stack as a user drives it: `helixflow local up`, `run`, `status`, `down`, as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
HELIXFLOW = str(Path(sys.executable).parent / "helixflow")
ROOT = Path(__file__).resolve().parents[2]


def _helixflow(*args: str, state_dir: Path, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "HELIXFLOW_STATE_DIR": str(state_dir), "HELIXFLOW_HOME": str(ROOT)}
    return subprocess.run([HELIXFLOW, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_local_up_run_status_down(tmp_path):
    state_dir = tmp_path / "state"
    reads = tmp_path / "cli_R1.fastq"
    mate = tmp_path / "cli_R2.fastq"
    record = b"@r%d\nACGTACGTAC\n+\nIIIIIIIIII\n"
    reads.write_bytes(b"".join(record % i for i in range(5)))
    mate.write_bytes(b"".join(record % i for i in range(5)))
    up = _helixflow("local", "up", state_dir=state_dir, cwd=tmp_path)
    assert up.returncode == 0, up.stdout + up.stderr
    stack = json.loads((state_dir / "stack.json").read_text())
    pid = stack["pid"]
    try:
        assert stack["console_url"].startswith("http://127.0.0.1:")
        assert f"console       {stack['console_url']}" in up.stdout
        assert _helixflow("console", state_dir=state_dir, cwd=tmp_path).stdout.strip() == stack["console_url"]
        again = _helixflow("local", "up", state_dir=state_dir, cwd=tmp_path)
        assert "already running" in again.stdout
        run = _helixflow("run", str(reads), str(mate), "--out", str(tmp_path / "results"), state_dir=state_dir,
                         cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "SUCCEEDED cli run" in run.stdout
        # The progress on stderr: a line per stage as it finished, in order, the Map with its items.
        stages = [line.split()[1] for line in run.stderr.splitlines() if line.strip().startswith("✓")]
        assert stages == ["ResolveSample", "PlanPhase1", "Validate", "SplitIntoChunks", "ProcessChunks",
                          "MergeChunks", "PlanPhase2", "BuildReport", "Publish"], run.stderr
        assert "1/1 items" in next(line for line in run.stderr.splitlines() if "✓ ProcessChunks" in line)
        manifests = list((tmp_path / "results" / "results" / "cli").glob("*/manifest.json"))
        assert len(manifests) == 1
        status = _helixflow("local", "status", state_dir=state_dir, cwd=tmp_path)
        assert status.returncode == 0 and "SUCCEEDED" in status.stdout
        bad = tmp_path / "cli_bad.fastq"
        bad.write_bytes(b"@r1\nACGT\nIIII\n")
        failed = _helixflow("run", str(bad), "--out", str(tmp_path / "results"), "--json", "--quiet",
                            state_dir=state_dir, cwd=tmp_path)
        assert failed.returncode == 1
        summary = json.loads(failed.stdout)
        assert (summary["status"], summary["error"], summary["code"]) == ("FAILED", "InvalidFastq", "MISSING_PLUS_LINE")
        assert summary["sample"] == "cli_bad" and summary["position"]["line"] == 3
        # --quiet: no progress, only the one error line (name and code) the CLI ends a failed run with.
        assert failed.stderr.strip().count("\n") == 0 and "InvalidFastq" in failed.stderr
    finally:
        down = _helixflow("local", "down", state_dir=state_dir, cwd=tmp_path)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not Path(f"/proc/{pid}").exists() or b"helixflow_local.stack" not in Path(
        f"/proc/{pid}/cmdline").read_bytes()
    assert not (state_dir / "stack.json").exists()
    stopped = _helixflow("local", "status", state_dir=state_dir, cwd=tmp_path)
    assert stopped.returncode == 3 and "not running" in stopped.stdout


def test_run_rejects_files_that_are_not_mates_before_uploading(tmp_path):
    first, second = tmp_path / "a_R1.fastq", tmp_path / "b_R2.fastq"
    for path in (first, second):
        path.write_bytes(b"@r\nA\n+\nI\n")
    result = _helixflow("run", str(first), str(second), state_dir=tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 2
    assert "InvalidKey" in result.stderr and "not mates" in result.stderr
