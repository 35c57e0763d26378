"""A local Ray head for the local stack and the tests: the same Jobs REST API, with token auth, that the Lambdas
call in AWS.

The head is `ray start --head --block` in its own session, bound to 127.0.0.1, with its temp dir (sessions,
logs, sockets) and token file under the state directory. Every process it starts gets RAY_AUTH_MODE=token and
RAY_AUTH_TOKEN_PATH explicitly: since Ray 2.59 a process without them changes its auth mode by whatever
~/.ray/auth_token holds. ``stop`` ends exactly the processes this head started (its process tree, by pid):
`ray stop` would end every Ray process of this user on the machine, including other sessions' heads.

``autoscaling=True`` runs Ray's own autoscaler with its fake multi-node provider: worker "nodes" are extra
raylets on this machine that the autoscaler launches for pending demand and removes after the idle timeout,
exactly as it launches and removes EC2 instances with batch_jobs/ray_preprocess/cluster.yaml.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from helixflow_local.ports import free_port

TOKEN_FILE = "ray-token"
# Only workers of the fake cluster have this resource, so a task that asks for it can only run on a worker the
# autoscaler launched: the tests' way to create demand the head cannot serve.
WORKER_RESOURCE = "helixflow_worker"
WORKER_TYPE = "ray.worker.cpu"
HEAD_TYPE = "ray.head.default"
# Ray puts Unix sockets at <temp dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store, and a socket path has
# at most 107 bytes: the longest session name (a 7-digit pid) and that suffix leave this much for the temp dir.
MAX_TEMP_DIR = 107 - len("/session_2026-12-01_20-07-23_512639_1234567/sockets/plasma_store")


class RayHeadFailed(Exception):
    """The local Ray head did not come up (its log is named in the message)."""


class LocalRay:
    def __init__(self, state_dir: Path | str, *, autoscaling: bool = False, num_cpus: int = 2,
                 max_workers: int = 2, idle_timeout_minutes: float = 0.25, python: str | None = None,
                 start_timeout: float = 60.0, job_environment: dict[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.autoscaling = autoscaling
        self.num_cpus = num_cpus
        self.max_workers = max_workers
        self.idle_timeout_minutes = idle_timeout_minutes
        # Job drivers run with this interpreter (the one that has helixflow and Ray installed).
        self.python = python or sys.executable
        self.start_timeout = start_timeout
        # What the cluster's machines would have in AWS (an instance profile, the region): the job drivers and
        # workers inherit it from the head, never from the Lambda that submitted them.
        self.job_environment = dict(job_environment or {})
        self.temp_dir = self.state_dir / "ray"
        self._short_temp_dir = False
        self.token_path = self.state_dir / TOKEN_FILE
        self.gcs_port = self.dashboard_port = 0
        self.start_seconds: float | None = None
        self._process: subprocess.Popen | None = None
        self._log = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _ray_env(self) -> dict[str, str]:
        env = {**os.environ, **self.job_environment}
        env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path),
                    "RAY_USAGE_STATS_ENABLED": "0",
                    # `ray start` replaces --node-ip-address=127.0.0.1 by the machine's routable address (so that
                    # other machines can join) unless clusters are off, the mode Ray uses on macOS and Windows; the
                    # fake cluster's worker nodes start in-process (not through `ray start`) and still join.
                    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
        if self.autoscaling:
            env["RAY_FAKE_CLUSTER"] = "1"
        return env

    def start(self) -> LocalRay:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.temp_dir)) > MAX_TEMP_DIR:
            # Sockets cannot live under a deep state directory: Ray's session goes to a short private folder
            # under the system temp dir instead, named in the state directory and removed by stop().
            self.temp_dir = Path(tempfile.mkdtemp(prefix="hf-ray-", dir="/tmp"))
            self._short_temp_dir = True
            (self.state_dir / "ray-temp-dir").write_text(str(self.temp_dir))
        self.temp_dir.mkdir(exist_ok=True)
        # Any string works as a token; Ray's own generator writes to ~/.ray regardless of RAY_AUTH_TOKEN_PATH.
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        # Every port the head opens is chosen here: Ray's fixed defaults (10001, 52365, 8265 ...) would collide
        # with another head on the same machine.
        command = [self.python, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                   "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}",
                   "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                   f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
                   f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
                   f"--metrics-export-port={free_port()}", f"--num-cpus={self.num_cpus}",
                   # Ray would reserve 30 % of the machine's memory for objects; the chunk results it holds are tiny.
                   "--object-store-memory=268435456",
                   f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        if self.autoscaling:
            command.append(f"--autoscaling-config={self._write_fake_cluster_config()}")
        self._log = open(self.state_dir / "ray-head.log", "ab")
        began = time.monotonic()
        self._process = subprocess.Popen(command, env=self._ray_env(), stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_until_head_node_is_alive(began)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _wait_until_head_node_is_alive(self, began: float) -> None:
        while time.monotonic() - began < self.start_timeout:
            if self._process.poll() is not None:
                raise RayHeadFailed(f"ray start exited with {self._process.returncode}; see "
                                    f"{self.state_dir / 'ray-head.log'}")
            # The dashboard answers before the head's raylet has registered, and a job submitted then waits for it.
            try:
                if any(node["head"] and node["state"] == "ALIVE" for node in self.nodes()):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        raise RayHeadFailed(f"the head node was not up within {self.start_timeout:.0f} s; see "
                            f"{self.state_dir / 'ray-head.log'}")

    def _write_fake_cluster_config(self) -> Path:
        """Ray's fake multi-node provider (its example YAML is not in the wheel): one worker type with a resource
        only workers have, none at rest, and the idle timeout that removes them again."""
        config = {
            "cluster_name": "helixflow-local", "max_workers": self.max_workers, "upscaling_speed": 1.0,
            "idle_timeout_minutes": self.idle_timeout_minutes,
            "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                         "disable_launch_config_check": True, "gcs_address": f"127.0.0.1:{self.gcs_port}"},
            "auth": {"ssh_user": "helixflow"},
            "available_node_types": {
                HEAD_TYPE: {"resources": {"CPU": self.num_cpus}, "node_config": {}, "max_workers": 0},
                WORKER_TYPE: {"resources": {"CPU": 1, WORKER_RESOURCE: 1}, "node_config": {}, "min_workers": 0,
                              "max_workers": self.max_workers},
            },
            "head_node_type": HEAD_TYPE,
            "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
            "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
            "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
        }
        path = self.state_dir / "fake-cluster.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def stop(self) -> None:
        if self._process is None:
            return
        # The tree is collected before anything ends (job drivers start their own sessions, and orphans are
        # re-parented away from it). `ray start` drains its node and ends what it started on SIGTERM (~4 s idle);
        # signalling every process at once instead leaves it waiting on a half-dead node for its full 30 s drain.
        # After jobs ran, its drain can take 15 s and more; nothing of a local head outlives the stack (its state
        # is the stack's), so after 6 s, and 2 s for what outlived it, the rest gets SIGKILL.
        pids = [self._process.pid, *_descendants(self._process.pid)]
        _signal(self._process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and self._process.poll() is None:
            time.sleep(0.2)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        self._process.wait(timeout=10)
        self._process = None
        if self._short_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalRay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ what clients need
    @classmethod
    def attach(cls, state_dir: Path | str, url: str) -> LocalRay:
        """The head another process started (`helixflow local up --with-ray`), for its REST API."""
        head = cls(state_dir)
        head.dashboard_port = int(url.rsplit(":", 1)[1])
        return head

    def token(self) -> str:
        return self.token_path.read_text().strip()

    def environment(self) -> dict[str, str]:
        """What the "ray" job adapter reads (helixflow.pipeline.ray_jobs), for the Lambdas of the local stack."""
        return {"RAY_JOBS_URL": self.url, "RAY_JOBS_TOKEN_FILE": str(self.token_path),
                "RAY_JOB_PYTHON": self.python}

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 10) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"Bearer {self.token()}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def nodes(self) -> list[dict[str, Any]]:
        listed = self.request("GET", "/api/v0/nodes?limit=1000&detail=true")["data"]["result"]["result"]
        return [{"node_id": n["node_id"], "ip": n["node_ip"], "state": n["state"], "head": n["is_head_node"],
                 "resources": n.get("resources_total", {})} for n in listed]

    def alive_workers(self) -> int:
        return sum(1 for node in self.nodes() if node["state"] == "ALIVE" and not node["head"])

    def status(self) -> dict[str, Any]:
        """Nodes, jobs and memory for `helixflow local status`."""
        jobs = [{"submission_id": j.get("submission_id"), "status": j["status"], "entrypoint": j["entrypoint"],
                 "message": j.get("message", "")} for j in self.request("GET", "/api/jobs/")]
        return {"url": self.url, "nodes": self.nodes(), "jobs": jobs, "pss_bytes": self.pss_bytes()}

    def pss_bytes(self) -> int:
        """Proportional set size of the head's whole process tree (shared pages counted once in total)."""
        if self._process is None:
            return 0
        total = 0
        for pid in [self._process.pid, *_descendants(self._process.pid)]:
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
            except OSError:  # ended meanwhile
                continue
        return total

    def listening_addresses(self) -> list[str]:
        """host:port of every TCP socket the head's processes listen on (the tests check nothing is on 0.0.0.0)."""
        inodes = set()
        for pid in [self._process.pid, *_descendants(self._process.pid)]:
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
            except OSError:
                continue
        addresses = []
        for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                    host, port = fields[1].split(":")
                    addresses.append(f"{_decode_ip(host, width)}:{int(port, 16)}")
        return addresses


def _decode_ip(hex_host: str, width: int) -> str:
    if width == 8:
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_host)[::-1])
    raw = bytes.fromhex(hex_host)
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            # The command name is in parentheses and may contain spaces: the parent pid follows the last ")".
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass

