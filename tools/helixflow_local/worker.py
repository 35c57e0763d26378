"""A warm Lambda worker: one process per concurrent execution environment of one function.

It imports the handler once (a cold start), then serves invocations read as JSON lines on stdin and answers
on the protocol pipe, one JSON line per invocation, in the shape the Lambda service reports: the handler's
return value, or {errorType, errorMessage, stackTrace} for an exception. The handler's own stdout (Powertools
logs and EMF metrics) goes to stderr, which the runtime sends to the function's log file.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import traceback

from helixflow_local.context import LocalLambdaContext


def _error(exc: BaseException) -> dict:
    return {"errorType": type(exc).__name__, "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__)}


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
        startup_error = None
    except Exception as exc:  # reported on every invoke, as the Lambda service does
        handler, startup_error = None, {**_error(exc), "errorType": "Runtime.ImportModuleError"}
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("crash"):  # the local runtime's fault injection (LambdaRuntime.inject_fault KILL_WORKER)
            os.kill(os.getpid(), signal.SIGKILL)
        if startup_error:
            protocol.write(json.dumps({"ok": False, "payload": startup_error}) + "\n")
            continue
        context = LocalLambdaContext(
            function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            memory_limit_in_mb=int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
            timeout_seconds=int(os.environ["AWS_LAMBDA_FUNCTION_TIMEOUT"]),
            region=os.environ["AWS_REGION"], aws_request_id=request["request_id"])
        try:
            result = {"ok": True, "payload": handler(request["event"], context)}
            text = json.dumps(result, default=str)
        except Exception as exc:
            text = json.dumps({"ok": False, "payload": _error(exc)})
        sys.stderr.flush()
        protocol.write(text + "\n")


if __name__ == "__main__":
    main()
