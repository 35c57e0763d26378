"""A real Slurm for the local stack: munged, slurmctld, slurmd and slurmrestd (JWT), all under one state directory
and on free ports of 127.0.0.1.

The node is this machine (its CPUs and memory); partition ``cpu`` always, partition ``gpu`` with ``Gres=gpu:N``
only where ``/dev/nvidia<N>`` devices exist. With ``elastic_nodes=N`` partition ``cpu`` is instead N elastic
one-CPU nodes (``elastic1``..``elasticN``, ``State=CLOUD``) under Slurm's power saving, as PCS runs a node group:
Slurm powers a node up for queued work (ResumeProgram starts its own slurmd, helixflow_local.slurm_power) and
down after ``SuspendTime`` idle; the scaling Lambda's floor (``power_floor.conf``: SuspendExcNodes with a count)
keeps that many nodes up, as a node group's minInstanceCount does (helixflow.scaling.decide.LocalSlurmFloor).

Jobs run as the invoking user and reach ``srun --mpi=pmi2`` with pip's mpich; slurmrestd runs as ``nobody`` (it
refuses root) with ``SLURM_JWT=daemon`` and checks every request's HS256 token against the generated
``jwt_hs256.key``. ``stop()`` ends exactly the daemons ``start()`` started, and each elastic node's slurmd
(started by Slurm through ResumeProgram) by the pid its pid file names.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helixflow.pipeline.slurm_jobs import SlurmRest, local_client
from helixflow_local.ports import free_port

NODE = "helixflow"
ELASTIC_PREFIX = "elastic"
ELASTIC_PARTITION = "cpu"
# An elastic node's size: one CPU (the jobs' ranks), a little memory (CR_CPU does not schedule memory; slurmd only
# checks the machine has it). Several share this machine's cores: capacity here is Slurm's, not the hardware's.
ELASTIC_NODE_MEMORY_MIB = 1024
# Idle seconds before Slurm powers an elastic node down (PCS: the cluster's ScaledownIdletime).
SUSPEND_TIME_S = 5
RESUME_TIMEOUT_S = 60
FLOOR_CONF = "power_floor.conf"
START_TIMEOUT_S = 20
# Without slurmdbd a finished job is forgotten MinJobAge seconds after it ends; a day keeps it visible to the
# poll loop for any realistic Wait interval (the adapter still reports a forgotten job as UNKNOWN_JOB).
MIN_JOB_AGE_S = 86400


class SlurmStartFailed(RuntimeError):
    """A Slurm daemon did not come up; the message carries the end of its log."""


def _memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            # slurmd drains a node whose configured memory exceeds what it finds; leave the kernel its share.
            return int(line.split()[1]) // 1024 * 9 // 10
    raise SlurmStartFailed("no MemTotal in /proc/meminfo")


def _gpu_devices() -> list[str]:
    return sorted((str(p) for p in Path("/dev").glob("nvidia[0-9]*")), key=lambda p: int(re.sub(r"\D", "", p)))


class LocalSlurm:
    def __init__(self, state_dir: Path | str, cpus: int | None = None, gpus: int | None = None,
                 elastic_nodes: int = 0, suspend_time_s: int = SUSPEND_TIME_S) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.elastic = [f"{ELASTIC_PREFIX}{i}" for i in range(1, elastic_nodes + 1)]
        self.suspend_time_s = suspend_time_s
        self.elastic_ports = {node: free_port() for node in self.elastic}
        self.cpus = cpus or os.cpu_count() or 1
        devices = _gpu_devices()
        self.gpu_devices = devices[:gpus] if gpus is not None else devices
        self.user = getpass.getuser()
        self.ctld_port, self.slurmd_port, self.rest_port = free_port(), free_port(), free_port()
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self.conf = self.state_dir / "slurm.conf"
        self.jwt_key = self.state_dir / "jwt_hs256.key"
        self.munge_socket = self.state_dir / "munge" / "munge.socket"
        self._processes: list[subprocess.Popen] = []
        self._logs: dict[str, Path] = {}
        self.start_seconds = 0.0

    @classmethod
    def attach(cls, state_dir: Path | str, rest_url: str) -> LocalSlurm:
        """The Slurm another process started (`helixflow local status`): its state directory and REST URL."""
        attached = cls.__new__(cls)
        attached.state_dir = Path(state_dir)
        attached.rest_url = rest_url
        attached.rest_port = int(rest_url.rsplit(":", 1)[1])
        attached.jwt_key = attached.state_dir / "jwt_hs256.key"
        attached.conf = attached.state_dir / "slurm.conf"
        attached.user = getpass.getuser()
        attached.elastic = []
        attached._processes, attached._logs = [], {}
        return attached

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalSlurm:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> dict[str, str]:
        began = time.monotonic()
        try:
            self._write_files()
            self._spawn("munged", ["munged", "-F", "--force", f"--socket={self.munge_socket}",
                                   f"--key-file={self.state_dir / 'munge' / 'munge.key'}",
                                   f"--pid-file={self.state_dir / 'munge' / 'munged.pid'}",
                                   f"--seed-file={self.state_dir / 'munge' / 'munged.seed'}",
                                   f"--log-file={self.state_dir / 'log' / 'munged.log'}"])
            self._wait_for(lambda: self.munge_socket.exists(), "munged")
            self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
            if self._static_node():
                self._spawn("slurmd", ["slurmd", "-D", "-N", NODE, "-f", str(self.conf)])
            rest_user = ["-u", "nobody", "-g", "nogroup"] if os.geteuid() == 0 else []
            self._spawn("slurmrestd", ["slurmrestd", *rest_user, "-a", "rest_auth/jwt", "-s", "openapi/v0.0.38",
                                       f"127.0.0.1:{self.rest_port}"], extra_env={"SLURM_JWT": "daemon"})
            self._wait_for(lambda: self._port_open(self.rest_port), "slurmrestd")
            client = self.client()
            self._wait_for(lambda: self._nodes_ready(client), "slurmd")
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self.environment()

    def stop(self) -> None:
        # The elastic nodes' slurmd were started by ResumeProgram, not here: stop each one its pid file names.
        from helixflow_local.slurm_power import suspend

        for node in self.elastic:
            suspend(self.conf, node)
        # Reverse order: the REST front first, munged (which the others authenticate through) last.
        for process in reversed(self._processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self._processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        # A job still running (or being cancelled) when slurmd stops leaves its slurmstepd behind, waiting for a
        # slurmd that is gone: end the steps of this instance, and what they run.
        for pid in self.job_step_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.job_step_processes() and time.monotonic() < deadline:  # a killed process takes a moment to go
            time.sleep(0.05)

    def job_step_processes(self) -> list[int]:
        """This instance's slurmstepd processes (their environment names this slurm.conf) and their descendants,
        deepest first."""
        parents: dict[int, int] = {}
        steps = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
                if (entry / "comm").read_text().strip() == "slurmstepd" and \
                        f"SLURM_CONF={self.conf}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    steps.append(int(entry.name))
            except (OSError, IndexError, ValueError):  # the process ended while it was read
                continue
        found, frontier = [], steps
        while frontier:
            found.extend(frontier)
            frontier = [pid for pid, parent in parents.items() if parent in frontier and pid not in found]
        return found[::-1]

    # ------------------------------------------------------------------ what clients read
    @property
    def cpus_per_node(self) -> int:
        """CPUs of a node of partition ``cpu``: what a Phase 2 rank asks for (elastic nodes have one each)."""
        return 1 if self.elastic else self.cpus

    def environment(self) -> dict[str, str]:
        """The variables ``helixflow.pipeline.slurm_jobs.factory`` reads (and what ``scontrol``/``squeue`` need);
        with elastic nodes also the node group the scaling Lambda's local actuator moves the floor of."""
        return {"SLURM_REST_URL": self.rest_url, "SLURM_JWT_KEY_FILE": str(self.jwt_key),
                "SLURM_USER_NAME": self.user, "SLURM_CONF": str(self.conf),
                "HELIXFLOW_SLURM_PYTHON": sys.executable, "HELIXFLOW_SLURM_WORKDIR": str(self.state_dir / "jobs"),
                "HELIXFLOW_SLURM_PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                **({"HELIXFLOW_LOCAL_SLURM_GROUPS": json.dumps({ELASTIC_PARTITION: self.elastic})}
                   if self.elastic else {})}

    def client(self) -> SlurmRest:
        return local_client(self.environment())

    def status(self) -> dict[str, Any]:
        """Nodes, partitions and queue through slurmrestd, for `helixflow local status`."""
        client = self.client()
        nodes = client.slurm("GET", "nodes").get("nodes", [])
        partitions = client.slurm("GET", "partitions").get("partitions", [])
        jobs = client.slurm("GET", "jobs").get("jobs", [])
        return {"rest_url": self.rest_url, "api": client.api.version,
                "nodes": [{"name": n.get("name"), "state": n.get("state"), "flags": n.get("state_flags") or [],
                           "cpus": n.get("cpus"), "gres": n.get("gres"), "partitions": n.get("partitions") or []}
                          for n in nodes],
                "partitions": [p.get("name") for p in partitions],
                "queue": [{"job_id": j.get("job_id"), "name": j.get("name"), "partition": j.get("partition"),
                           "state": j.get("job_state")} for j in jobs]}

    # ------------------------------------------------------------------ internals
    def _static_node(self) -> bool:
        """This machine as a node: always, except with elastic nodes and no GPU (then it has no partition)."""
        return not self.elastic or bool(self.gpu_devices)

    def slurm_conf(self) -> str:
        state = self.state_dir
        gpus = len(self.gpu_devices)
        gres = f" Gres=gpu:{gpus}" if gpus else ""
        static = [f"NodeName={NODE} NodeHostname=localhost NodeAddr=127.0.0.1 Port={self.slurmd_port} "
                  f"CPUs={self.cpus} RealMemory={_memory_mib()}{gres} State=UNKNOWN"] if self._static_node() else []
        cpu_nodes = ",".join(self.elastic) if self.elastic else "ALL"
        lines = [
            "# Generated by helixflow_local.slurm: everything under the state directory.",
            "ClusterName=helixflow",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmUser={self.user}",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "CredType=cred/munge",
            "AuthAltTypes=auth/jwt",
            f"AuthAltParameters=jwt_key={self.jwt_key}",
            f"StateSaveLocation={state}/ctld",
            f"SlurmdSpoolDir={state}/spool/%n",
            f"SlurmctldPidFile={state}/run/slurmctld.pid",
            f"SlurmdPidFile={state}/run/slurmd.%n.pid",
            f"SlurmctldLogFile={state}/log/slurmctld.log",
            f"SlurmdLogFile={state}/log/slurmd.%n.log",
            # No systemd and no cgroup setup here: track processes through /proc, bind nothing.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            f"MinJobAge={MIN_JOB_AGE_S}",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "JobAcctGatherType=jobacct_gather/none",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
            *(["GresTypes=gpu"] if gpus else []),
            *static,
            *self._elastic_conf(),
            f"PartitionName=cpu Nodes={cpu_nodes} Default=YES MaxTime=INFINITE State=UP",
            *([f"PartitionName=gpu Nodes={NODE} MaxTime=INFINITE State=UP"] if gpus else []),
        ]
        return "\n".join(lines) + "\n"

    def _elastic_conf(self) -> list[str]:
        """Slurm's power saving over the elastic nodes. The power-save thread looks every second (default 10 s),
        resumes and suspends without a rate limit; CLOUD nodes are listed to every user (PrivateData=cloud:
        slurmrestd's ``GET nodes`` shows them powered down); TreeWidth keeps slurmctld talking to each node
        directly. ``power_floor.conf`` (SuspendExcNodes, written by the scaling actuator) comes last."""
        if not self.elastic:
            return []
        power = self.state_dir / "power"
        return [
            f"ResumeProgram={power / 'resume'}",
            f"SuspendProgram={power / 'suspend'}",
            f"SuspendTime={self.suspend_time_s}",
            # A node is POWERING_DOWN for all of SuspendTimeout; stopping a slurmd takes well under a second.
            "SuspendTimeout=3",
            f"ResumeTimeout={RESUME_TIMEOUT_S}",
            "ResumeRate=0",
            "SuspendRate=0",
            "SlurmctldParameters=power_save_interval=1,power_save_min_interval=0,idle_on_node_suspend",
            "PrivateData=cloud",
            "TreeWidth=65533",
            *(f"NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={self.elastic_ports[node]} CPUs=1 "
              f"RealMemory={ELASTIC_NODE_MEMORY_MIB} State=CLOUD Feature=cloud" for node in self.elastic),
            f"Include {self.state_dir / FLOOR_CONF}",
        ]

    def _write_files(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("munge", "log", "run", "ctld", "spool", "jobs"):
            (self.state_dir / sub).mkdir(exist_ok=True)
            # Private to the invoking user (munged also insists its socket directory is not writable by others).
            (self.state_dir / sub).chmod(0o700)
        if os.geteuid() == 0:
            self._open_path_to_conf()
        self._secret(self.state_dir / "munge" / "munge.key", 1024)
        self._secret(self.jwt_key, 32)
        self.conf.write_text(self.slurm_conf())
        if self.elastic:
            from helixflow_local.slurm_power import program

            (self.state_dir / FLOOR_CONF).write_text("# No floor yet: Slurm powers every elastic node down when idle.\n")
            (self.state_dir / "power").mkdir(exist_ok=True)
            tools_dir = Path(__file__).resolve().parent.parent
            for action in ("resume", "suspend"):
                path = self.state_dir / "power" / action
                path.write_text(program(sys.executable, tools_dir, action, self.conf))
                path.chmod(0o700)
        if self.gpu_devices:
            (self.state_dir / "gres.conf").write_text("".join(
                f"NodeName={NODE} Name=gpu File={device}\n" for device in self.gpu_devices))

    def _open_path_to_conf(self) -> None:
        """slurmrestd drops root for ``nobody`` before it reads slurm.conf, so ``nobody`` must reach that file:
        the state directory becomes traversable (not listable) and slurm.conf, which holds no secret, readable.
        Its parents are not ours to change; a private one is reported instead."""
        self.state_dir.chmod(0o711)
        self.conf.touch(mode=0o644)
        self.conf.chmod(0o644)
        blocked = next((d for d in self.state_dir.parents if not d.stat().st_mode & 0o001), None)
        if blocked is not None:
            raise SlurmStartFailed(f"{blocked} is private (mode {blocked.stat().st_mode & 0o777:o}), so slurmrestd "
                                   f"(running as nobody) cannot read {self.conf}: choose a state directory under "
                                   "a traversable path such as /tmp")

    @staticmethod
    def _secret(path: Path, size: int) -> None:
        if not path.exists():
            path.write_bytes(secrets.token_bytes(size))
        path.chmod(0o600)

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        log = self.state_dir / "log" / f"{name}.out"
        self._logs[name] = log
        env = {**os.environ, "SLURM_CONF": str(self.conf), **(extra_env or {})}
        with open(log, "ab") as out:
            self._processes.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                                    stderr=subprocess.STDOUT, env=env, cwd=self.state_dir,
                                                    start_new_session=True))

    def _wait_for(self, ready: Any, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            dead = next((p for p in self._processes if p.poll() is not None), None)
            if dead is not None:
                raise SlurmStartFailed(f"{Path(dead.args[0]).name} exited with {dead.returncode}: "
                                       f"{self._log_tail()}")
            try:
                if ready():
                    return
            except Exception:  # the daemon is still coming up (connection refused, node not yet registered)
                pass
            time.sleep(0.05)
        raise SlurmStartFailed(f"{name} not ready after {START_TIMEOUT_S} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        parts = []
        for name, path in self._logs.items():
            text = path.read_text(errors="replace").strip().splitlines()[-5:] if path.exists() else []
            daemon_log = self.state_dir / "log" / f"{name}.log"
            if daemon_log.exists():
                text += daemon_log.read_text(errors="replace").strip().splitlines()[-5:]
            parts.append(f"[{name}] " + " | ".join(text))
        return "\n".join(parts)

    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    def _nodes_ready(self, client: SlurmRest) -> bool:
        """The static node registered (idle), and every elastic node known to slurmctld (powered down)."""
        nodes = {n.get("name"): n for n in client.slurm("GET", "nodes").get("nodes", [])}
        if self._static_node():
            state = (nodes.get(NODE) or {}).get("state") or ""
            states = state if isinstance(state, list) else [state]
            if not any(s.lower() in ("idle", "mixed", "allocated") for s in states):
                return False
        return all(node in nodes for node in self.elastic)

