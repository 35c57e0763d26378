"""Slurm's ResumeProgram and SuspendProgram for the local elastic nodes (helixflow_local.slurm, ``elastic_nodes``).

In AWS, PCS launches an EC2 instance for a node Slurm powers up and terminates it when Slurm powers it down.
Locally a node's "instance" is its own slurmd (Slurm's multiple-slurmd build: ``slurmd -N <node>``, every node on
127.0.0.1 with its own port): resume starts it, suspend stops it. slurmctld calls these with a hostlist
expression (``elastic[1-2]``); the node names come from Slurm only (``scontrol show hostnames``) and must be
nodes of this cluster's slurm.conf, and nothing passes through a shell.

Found on this machine (Slurm 22.05): slurmctld runs the program with SIGTERM blocked and fd 0 closed, and a
slurmd started from it inherits both (it then ignores the SIGTERM that suspends it): the mask is cleared and
fds 0-2 opened before slurmd starts. ``-b`` makes slurmd report a fresh boot, without which slurmctld marks a
resumed node DOWN at ResumeTimeout ("Node unexpectedly rebooted" / not responding).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

# Node names the local cluster generates (helixflow_local.slurm.ELASTIC_PREFIX + index).
NODE_NAME = re.compile(r"[a-z][a-z0-9]{0,30}")
STOP_TIMEOUT_S = 10


def node_names(conf: Path, hostlist: str) -> list[str]:
    """The nodes of ``hostlist`` as Slurm expands it, each checked against this cluster's configured nodes."""
    env = {**os.environ, "SLURM_CONF": str(conf)}
    names = subprocess.run(["scontrol", "show", "hostnames", hostlist], env=env, capture_output=True, text=True,
                           check=True, timeout=30).stdout.split()
    configured = set(re.findall(r"^NodeName=(\S+)", conf.read_text(), flags=re.MULTILINE))
    unknown = [n for n in names if not NODE_NAME.fullmatch(n) or n not in configured]
    if unknown:
        raise SystemExit(f"not nodes of {conf}: {unknown}")
    return names


def pid_file(state_dir: Path, node: str) -> Path:
    return state_dir / "run" / f"slurmd.{node}.pid"  # SlurmdPidFile=<state>/run/slurmd.%n.pid


def resume(conf: Path, node: str) -> None:
    state_dir = conf.parent
    # SlurmdSpoolDir=<state>/spool/%n: a slurmd that finds no spool directory cannot open its socket there
    # and never registers (seen with two nodes resumed at once).
    (state_dir / "spool" / node).mkdir(mode=0o700, parents=True, exist_ok=True)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    with open(state_dir / "log" / f"slurmd.{node}.out", "ab") as out:
        # slurmd daemonizes (its own session); this waits only for the parent that forks it.
        subprocess.run(["slurmd", "-b", "-N", node, "-f", str(conf)], stdin=subprocess.DEVNULL, stdout=out,
                       stderr=subprocess.STDOUT, env={**os.environ, "SLURM_CONF": str(conf)}, cwd=state_dir,
                       start_new_session=True, check=True, timeout=30)


def running_pid(state_dir: Path, node: str) -> int | None:
    """The node's slurmd process id, when its pid file names a live slurmd."""
    try:
        pid = int(pid_file(state_dir, node).read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(command[0].decode(errors="replace")).name == "slurmd" and node.encode() in command else None


def suspend(conf: Path, node: str) -> None:
    state_dir = conf.parent
    pid = running_pid(state_dir, node)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while running_pid(state_dir, node) == pid and time.monotonic() < deadline:
        time.sleep(0.1)
    if running_pid(state_dir, node) == pid:
        os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    """``resume|suspend <slurm.conf> <hostlist>`` (the generated programs pass the first two). What it did, or
    why it failed, goes to ``log/power.log`` (slurmctld only logs the exit status)."""
    action, conf, hostlist = argv[0], Path(argv[1]), argv[2]
    with open(conf.parent / "log" / "power.log", "a") as log:
        try:
            for node in node_names(conf, hostlist):
                (resume if action == "resume" else suspend)(conf, node)
                print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {action} {node}", file=log, flush=True)
        except (OSError, subprocess.SubprocessError, SystemExit) as exc:
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {action} {hostlist} failed: {exc!r}", file=log)
            return 1
    return 0


def program(python: str, tools_dir: Path, action: str, conf: Path) -> str:
    """The text of the executable slurm.conf names as ResumeProgram or SuspendProgram (paths we chose only).
    slurmctld runs it with an empty environment: it gets the PATH where this machine's Slurm binaries are."""
    binaries = sorted({str(Path(found).parent) for found in map(shutil.which, ("scontrol", "slurmd")) if found})
    path = os.pathsep.join([*binaries, "/usr/bin", "/bin"])
    return (f"#!{python} -I\n# Generated by helixflow_local.slurm: Slurm's {action} program for the elastic nodes.\n"
            f"import os, sys\nos.environ['PATH'] = {path!r}\nsys.path.insert(0, {str(tools_dir)!r})\n"
            f"from helixflow_local.slurm_power import main\n"
            f"sys.exit(main([{action!r}, {str(conf)!r}, *sys.argv[1:]]))\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
