"""Smoke check of a cluster's job environment (``JobSpec(module="helixflow.cluster.probe", ...)``).

Submitted like Phase 2, it proves the parts a real job depends on: the interpreter with helixflow, ``srun`` and
PMI-2 (every rank prints its ``PMI_RANK``/``PMI_SIZE``), the job environment and the argument vector (printed
back exactly as received). Run it after creating or changing a cluster (a PCS node group's AMI, the shared
environment) before sending samples to it; the local Slurm tests use it the same way.

    python -m helixflow.cluster.probe [--sleep S] [--fail MESSAGE --exit-code N] [ARGS...]

One JSON line per rank on stdout; with ``--fail`` the message goes to stderr and the rank exits with N.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="helixflow.cluster.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to stay running (cancellation checks)")
    parser.add_argument("--fail", help="write this to stderr and exit with --exit-code")
    parser.add_argument("--exit-code", type=int, default=1)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="echoed back verbatim")
    options = parser.parse_args(argv)
    print(json.dumps({"host": socket.gethostname(), "job_id": os.environ.get("SLURM_JOB_ID"),
                      "rank": os.environ.get("PMI_RANK"), "size": os.environ.get("PMI_SIZE"),
                      "python": sys.executable, "args": options.args}), flush=True)
    time.sleep(options.sleep)
    if options.fail is not None:
        print(options.fail, file=sys.stderr, flush=True)
        return options.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
