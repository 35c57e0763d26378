"""Local Lambda runtime: runs our real handlers in warm worker processes, one pool per function.

moto cannot run Python handlers without Docker, so the local stack routes moto's invoke path here. Each
function gets its own environment (the template's variables, the layer first on the path, the moto endpoint),
each concurrent invocation its own process (as Lambda gives each concurrent request its own execution
environment), and a worker is reused while warm. ``inject_fault`` makes the next invocations of a function
fail the way the Lambda service itself fails (e.g. ServiceException), so retries can be exercised end to end;
``inject_delay`` holds back chosen invocations, so races between concurrent ones can be reproduced.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from helixflow_local.template import FunctionSpec


KILL_WORKER = "KillWorker"


class ServiceFault(Exception):
    """An injected failure of the Lambda service (not of the handler)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _Worker:
    process: subprocess.Popen

    def alive(self) -> bool:
        return self.process.poll() is None


class _Pool:
    def __init__(self, spec: FunctionSpec, env: dict[str, str], log_path: Path, max_workers: int) -> None:
        self.spec = spec
        self.env = env
        self.log_path = log_path
        self.idle: list[_Worker] = []
        self.all: list[_Worker] = []
        self.lock = threading.Lock()
        self.slots = threading.Semaphore(max_workers)

    def _spawn(self) -> _Worker:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            process = subprocess.Popen([sys.executable, "-m", "helixflow_local.worker"], cwd=self.spec.code_dir,
                                       env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                       text=True, bufsize=1)
        finally:
            log.close()
        worker = _Worker(process)
        with self.lock:
            self.all.append(worker)
        return worker

    def invoke(self, event: Any, *, kill: bool = False) -> tuple[dict[str, Any], bool]:
        with self.slots:
            with self.lock:
                while self.idle and not self.idle[-1].alive():
                    self.idle.pop()
                worker = self.idle.pop() if self.idle else None
            worker = worker or self._spawn()
            reply = self._call(worker, event, kill=kill)
            if worker.alive():
                with self.lock:
                    self.idle.append(worker)
            return reply

    def _call(self, worker: _Worker, event: Any, *, kill: bool = False) -> tuple[dict[str, Any], bool]:
        request_id = str(uuid.uuid4())
        process = worker.process
        # An injected crash is the worker killing itself on receipt (as an OOM kill would end it mid-request);
        # killing it from here instead would race a fast handler that has already answered.
        request = {"event": event, "request_id": request_id, **({"crash": True} if kill else {})}
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except BrokenPipeError:
            return _runtime_error("Runtime.ExitError", f"worker of {self.spec.name} exited"), True
        ready, _, _ = select.select([process.stdout], [], [], self.spec.timeout + 5)
        line = process.stdout.readline() if ready else ""
        if not ready:
            process.kill()
            process.wait()  # reaped, so alive() is False and invoke() does not hand the dead worker out again
            return _runtime_error("Sandbox.Timedout", f"Task timed out after {self.spec.timeout} seconds"), True
        if not line:
            return _runtime_error("Runtime.ExitError", f"worker of {self.spec.name} exited "
                                                       f"with {process.wait()}"), True
        reply = json.loads(line)
        return reply["payload"], not reply["ok"]

    def close(self) -> None:
        with self.lock:
            workers, self.all, self.idle = self.all, [], []
        for worker in workers:
            if worker.alive():
                worker.process.stdin.close()
                try:
                    worker.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    worker.process.kill()


def _runtime_error(error_type: str, message: str) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message, "stackTrace": []}


class LogShipper:
    """Lambda sends each function's output to CloudWatch Logs (group ``/aws/lambda/<name>``); the local workers
    write theirs to files under the stack's logs/, so this thread sends those files' new lines to the stack's
    CloudWatch Logs (moto) about once a second. What reads logs (the console) then reads them as in AWS."""

    INTERVAL_S = 1.0
    STREAM = "local/[$LATEST]workers"

    def __init__(self, logs: Any, files: dict[str, Path]) -> None:
        self.logs = logs
        self.files = files  # function name -> its workers' log file
        # Lines an earlier stack wrote into the same state directory belong to executions this one never had.
        self.offsets = {name: path.stat().st_size if path.exists() else 0 for name, path in files.items()}
        self._stop = threading.Event()
        for name in files:
            group = f"/aws/lambda/{name}"
            self.logs.create_log_group(logGroupName=group)
            self.logs.create_log_stream(logGroupName=group, logStreamName=self.STREAM)
        self._thread = threading.Thread(target=self._run, name="lambda-log-shipper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL_S):
            self.ship()

    def ship(self) -> None:
        for name, path in self.files.items():
            try:
                with open(path, "rb") as handle:
                    handle.seek(self.offsets[name])
                    chunk = handle.read()
            except FileNotFoundError:
                continue
            complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written waits for the next turn
            if not complete:
                continue
            self.offsets[name] += len(complete)
            now_ms = int(time.time() * 1000)
            events = [{"timestamp": now_ms, "message": line.decode("utf-8", "replace")}
                      for line in complete.splitlines() if line.strip()]
            for start in range(0, len(events), 1000):  # well under PutLogEvents' 10,000 events / 1 MB
                self.logs.put_log_events(logGroupName=f"/aws/lambda/{name}", logStreamName=self.STREAM,
                                         logEvents=events[start:start + 1000])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.ship()
        except Exception:  # noqa: BLE001 - the endpoint may already be gone at shutdown; the files keep every line
            pass


class LambdaRuntime:
    def __init__(self, specs: list[FunctionSpec], *, endpoint_url: str, region: str, log_dir: Path,
                 max_concurrency: int = 4, logs: Any = None) -> None:
        """``logs``: a CloudWatch Logs client of the stack, to which the workers' log lines are sent."""
        self.specs = {spec.name: spec for spec in specs}
        self.by_logical_id = {spec.logical_id: spec.name for spec in specs}
        log_dir.mkdir(parents=True, exist_ok=True)
        self.pools = {spec.name: _Pool(spec, self._environment(spec, endpoint_url, region), log_dir /
                                       f"{spec.logical_id}.log", max_concurrency) for spec in specs}
        # function -> injected (fault, which events) and (delay, which events), taken in order
        self.faults: dict[str, list[tuple[str, Callable[[Any], bool] | None]]] = defaultdict(list)
        self.delays: dict[str, list[tuple[float, Callable[[Any], bool]]]] = defaultdict(list)
        self.fault_lock = threading.Lock()
        self.in_flight = 0  # invocations started and not yet answered, across functions
        self.idle = threading.Condition(self.fault_lock)
        self.shipper = (LogShipper(logs, {name: pool.log_path for name, pool in self.pools.items()})
                        if logs is not None else None)

    @staticmethod
    def _environment(spec: FunctionSpec, endpoint_url: str, region: str) -> dict[str, str]:
        path = [str(spec.code_dir.resolve()), *(str(d.resolve()) for d in spec.layer_dirs)]
        if spec.environment.get("PYTHONPATH"):  # the stack's extra environment may add to it, never replace it
            path.append(spec.environment["PYTHONPATH"])
        inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "NUMBA_CACHE_DIR")}
        return {
            **inherited,
            **{k: v for k, v in spec.environment.items() if k != "PYTHONPATH"},
            "PYTHONPATH": os.pathsep.join(path),
            "_HANDLER": spec.handler,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            # No X-Ray daemon locally; tracing stays on in AWS.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def inject_fault(self, function: str, error_code: str = "ServiceException", times: int = 1,
                     when: Callable[[Any], bool] | None = None) -> None:
        """The next ``times`` invocations of ``function`` (of those whose event ``when`` accepts) fail with the
        Lambda service error ``error_code``, or, for ``KILL_WORKER``, reach the handler's worker and kill it
        mid-request (Runtime.ExitError)."""
        name = self.by_logical_id.get(function, function)
        with self.fault_lock:
            self.faults[name].extend([(error_code, when)] * times)

    def inject_delay(self, function: str, seconds: float, when: Callable[[Any], bool]) -> None:
        """The next invocation of ``function`` whose event ``when`` accepts starts ``seconds`` late (once)."""
        name = self.by_logical_id.get(function, function)
        with self.fault_lock:
            self.delays[name].append((seconds, when))

    @staticmethod
    def _take(pending: list, event: Any) -> Any:
        """The first of ``pending`` (value, when) whose ``when`` accepts ``event``, removed; else None."""
        if not pending:
            return None
        decoded = json.loads(event) if isinstance(event, (str, bytes)) else event  # moto passes the JSON text
        found = next((entry for entry in pending if entry[1] is None or entry[1](decoded)), None)
        if found is not None:
            pending.remove(found)
        return found[0] if found is not None else None

    def invoke(self, function_name: str, event: Any) -> tuple[dict[str, Any], bool]:
        """(payload, errored) for one invocation; raises ServiceFault for an injected service failure."""
        with self.fault_lock:
            fault = self._take(self.faults[function_name], event)
            delay = self._take(self.delays[function_name], event)
            self.in_flight += 1
        try:
            if delay is not None:
                time.sleep(delay)
            if fault == KILL_WORKER:
                return self.pools[function_name].invoke(event, kill=True)
            if fault:
                raise ServiceFault(fault)
            return self.pools[function_name].invoke(event)
        finally:
            with self.fault_lock:
                self.in_flight -= 1
                self.idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Whether every invocation in flight ended within ``timeout`` seconds (a Map's iterations can outlive
        the execution that started them: in AWS too, a Lambda invocation runs on when its Map has failed)."""
        with self.fault_lock:
            return self.idle.wait_for(lambda: self.in_flight == 0, timeout=timeout)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        if self.shipper is not None:
            self.shipper.close()
