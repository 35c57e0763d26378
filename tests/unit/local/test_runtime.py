"""The local Lambda runtime (helixflow_local.runtime), through its public API: what an invocation returns when the
handler works, raises, crashes, hangs past its timeout or cannot be imported - the shapes the Lambda service
reports and the local stack hands to Step Functions - and that a broken worker is replaced, not reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from helixflow_local.runtime import LambdaRuntime, ServiceFault
from helixflow_local.template import FunctionSpec

from tests.helpers import ROOT  # noqa: E402 - the checkout

HANDLERS = '''
import os, time

def ok(event, context):
    return {"pid": os.getpid(), "echo": event, "request_id": context.aws_request_id}

def raises(event, context):
    raise ValueError("bad input: " + str(event["n"]))

def crash(event, context):
    if event.get("crash"):
        os._exit(3)
    return {"pid": os.getpid()}

def hang(event, context):
    if event.get("hang"):
        time.sleep(60)
    return {"pid": os.getpid()}
'''


@pytest.fixture
def runtime(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLERS)
    (code / "broken.py").write_text("import a_module_that_does_not_exist\n")

    def spec(name, handler, timeout=30):
        return FunctionSpec(name, name, code, handler, timeout, 128, {"STAGE": "test"}, (ROOT / "layers" / "helixflow",))

    # timeout=0: the runtime waits timeout + 5 s for a reply, the shortest wait the runtime allows.
    specs = [spec("Ok", "app.ok"), spec("Raises", "app.raises"), spec("Crash", "app.crash"),
             spec("Hang", "app.hang", timeout=0), spec("Broken", "broken.handler")]
    rt = LambdaRuntime(specs, endpoint_url="http://127.0.0.1:1", region="us-east-1", log_dir=tmp_path / "logs")
    yield rt
    rt.close()


def test_a_handler_result_comes_back_and_the_worker_stays_warm(runtime):
    first, errored = runtime.invoke("Ok", {"a": 1})
    assert not errored and first["echo"] == {"a": 1} and first["request_id"]
    second, _ = runtime.invoke("Ok", {"a": 2})
    assert second["pid"] == first["pid"]  # reused, as a warm Lambda execution environment is
    assert second["request_id"] != first["request_id"]


def test_a_handler_exception_is_reported_by_its_class_name(runtime):
    payload, errored = runtime.invoke("Raises", {"n": 7})
    assert errored
    assert payload["errorType"] == "ValueError" and payload["errorMessage"] == "bad input: 7"
    assert any("raise ValueError" in line for line in payload["stackTrace"])


def test_a_crashed_worker_reports_its_exit_and_is_replaced(runtime):
    before, _ = runtime.invoke("Crash", {})
    payload, errored = runtime.invoke("Crash", {"crash": True})
    assert errored and payload["errorType"] == "Runtime.ExitError" and "exited with 3" in payload["errorMessage"]
    after, errored = runtime.invoke("Crash", {})
    assert not errored and after["pid"] != before["pid"]


def test_a_handler_past_its_timeout_is_killed_and_reported_as_timed_out(runtime):
    before, _ = runtime.invoke("Hang", {})
    payload, errored = runtime.invoke("Hang", {"hang": True})
    assert errored and payload["errorType"] == "Sandbox.Timedout"
    after, errored = runtime.invoke("Hang", {})
    assert not errored, after
    assert after["pid"] != before["pid"]  # the killed worker is not reused


def test_an_import_error_is_reported_on_every_invocation(runtime):
    for _ in range(2):
        payload, errored = runtime.invoke("Broken", {})
        assert errored and payload["errorType"] == "Runtime.ImportModuleError"
        assert "a_module_that_does_not_exist" in payload["errorMessage"]


def test_an_injected_service_fault_fails_only_the_next_invocations(runtime):
    runtime.inject_fault("Ok", "TooManyRequestsException", times=2)
    for _ in range(2):
        with pytest.raises(ServiceFault) as raised:
            runtime.invoke("Ok", {})
        assert raised.value.code == "TooManyRequestsException"
    assert not runtime.invoke("Ok", {})[1]


def test_the_local_moto_server_holds_the_port_it_binds_and_a_taken_port_fails_at_once():
    """The control plane binds port 0 and keeps the socket (no probe-then-bind race); a port in use raises
    EADDRINUSE to the caller instead of leaving start() waiting for a server thread that died."""
    import errno

    from helixflow_local.stack import _bound_moto_server

    server = _bound_moto_server(0)
    try:
        assert server._port > 0
        with pytest.raises(OSError) as raised:
            _bound_moto_server(server._port)
        assert raised.value.errno == errno.EADDRINUSE
    finally:
        server.stop()
