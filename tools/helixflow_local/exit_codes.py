"""Exit statuses of the `helixflow` command, and the one-line form of every failure.

Scripts branch on these numbers, so they are a contract: the table is printed by `helixflow --help`, copied
into README.md (a test compares the two) and nothing else in the CLI chooses an exit status.

A failure is one line on stderr, ``<ErrorName> (<CODE>): <message>``, never a traceback. An error nobody
anticipated is exit 70 with the line naming the exception and the file its full trace was written to.
"""

from __future__ import annotations

import errno
import re
import sys
import tempfile
import traceback
from enum import IntEnum

import click

from helixflow.errors import (BamConversionFailed, ClusterNotConfigured, ClusterUnavailable, DeviceUnavailable,
                              HelixflowError, InvalidFastq, InvalidKey, InvalidParameters, InvalidReads,
                              InvalidReference, InvalidSamplesheet)


class ExitCode(IntEnum):
    SUCCESS = 0
    RUN_FAILED = 1
    REFUSED = 2
    STACK_NOT_RUNNING = 3
    ENVIRONMENT = 4
    TIMED_OUT = 5
    INTERNAL = 70
    INTERRUPTED = 130


MEANING = {
    ExitCode.SUCCESS: "success",
    ExitCode.RUN_FAILED: "the run/pipeline FAILED (the named error printed)",
    ExitCode.REFUSED: "usage or input refused before anything ran (bad options, bad names, bad params, "
                      "invalid FASTQ for `validate`)",
    ExitCode.STACK_NOT_RUNNING: "local stack not running (`local status`)",
    ExitCode.ENVIRONMENT: "environment problem (checkout not found, a required tool missing, the stack could "
                          "not start)",
    ExitCode.TIMED_OUT: "timed out waiting",
    ExitCode.INTERNAL: "internal error (a bug: the line names the file holding the full trace)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C; the shell's 128 + SIGINT)",
}

# Named errors that mean the input or the request was refused; the machine or its tools being unfit is an
# environment problem; any other named error reaching the CLI is a run that failed.
_REFUSED_ERRORS = (InvalidFastq, InvalidKey, InvalidParameters, InvalidReads, InvalidReference, InvalidSamplesheet)
_ENVIRONMENT_ERRORS = (DeviceUnavailable, BamConversionFailed, ClusterNotConfigured, ClusterUnavailable)
# errnos that say "this path the user named is not usable", as opposed to the machine failing (EIO, ENOSPC).
_USER_PATH_ERRNOS = {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG,
                     errno.ELOOP}


class ToolError(Exception):
    """A failure of the local tools (not the shipped pipeline) with its code and exit status."""

    code = "TOOL_ERROR"
    exit_code = ExitCode.ENVIRONMENT

    @property
    def name(self) -> str:
        return type(self).__name__


def epilog() -> str:
    rows = "\n".join(f"  {int(code):<4}{MEANING[code]}" for code in ExitCode)
    return f"\b\nExit status:\n{rows}\n\nA failure is one line on stderr: <ErrorName> (<CODE>): <message>"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def classify(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit status and the one stderr line for ``exc``."""
    if isinstance(exc, HelixflowError):
        status = (ExitCode.REFUSED if isinstance(exc, _REFUSED_ERRORS)
                  else ExitCode.ENVIRONMENT if isinstance(exc, _ENVIRONMENT_ERRORS) else ExitCode.RUN_FAILED)
        return status, f"{exc.name} ({exc.code}): {_one_line(exc.message)}{exc.where()}"
    if isinstance(exc, ToolError):
        return exc.exit_code, f"{exc.name} ({exc.code}): {_one_line(exc)}"
    if isinstance(exc, click.UsageError):
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        return ExitCode.REFUSED, f"{type(exc).__name__} ({_snake(type(exc).__name__)}): " \
                                 f"{_one_line(exc.format_message())}{hint}"
    if isinstance(exc, click.ClickException):
        return ExitCode.REFUSED, f"{type(exc).__name__} ({_snake(type(exc).__name__)}): " \
                                 f"{_one_line(exc.format_message())}"
    # The stack module pulls in boto3 and moto's wiring: only a command that imported it can raise its error.
    stack = sys.modules.get("helixflow_local.stack")
    if stack is not None and isinstance(exc, stack.CheckoutNotFound):
        return ExitCode.ENVIRONMENT, f"CheckoutNotFound (CHECKOUT_NOT_FOUND): {_one_line(exc)}"
    if isinstance(exc, TimeoutError):
        return ExitCode.TIMED_OUT, f"TimedOut (TIMED_OUT): {_one_line(exc)}"
    if isinstance(exc, (KeyboardInterrupt, click.Abort)):
        return ExitCode.INTERRUPTED, "Interrupted (INTERRUPTED): stopped before finishing"
    if isinstance(exc, OSError) and exc.filename is not None:
        status = ExitCode.REFUSED if exc.errno in _USER_PATH_ERRNOS else ExitCode.ENVIRONMENT
        code = errno.errorcode.get(exc.errno, "OS_ERROR") if exc.errno else "OS_ERROR"
        return status, f"{type(exc).__name__} ({code}): {exc.strerror or exc}: {exc.filename}"
    if isinstance(exc, OSError):
        code = errno.errorcode.get(exc.errno, "OS_ERROR") if exc.errno else "OS_ERROR"
        return ExitCode.ENVIRONMENT, f"{type(exc).__name__} ({code}): {_one_line(exc.strerror or exc)}"
    return ExitCode.INTERNAL, f"InternalError ({type(exc).__name__}): internal error: {_one_line(exc)}; " \
                              f"full trace in {_write_trace(exc)}"


def _write_trace(exc: BaseException) -> str:
    """Keep the trace for a bug report without putting it on the user's terminal."""
    with tempfile.NamedTemporaryFile("w", prefix="helixflow-internal-error-", suffix=".log", delete=False) as log:
        log.write(f"helixflow {' '.join(sys.argv[1:])}\n")
        traceback.print_exception(exc, file=log)
    return log.name
