"""Where Phase 2 kernels run: the one test for a usable GPU, the --device choice, and a rank's GPU under MPI.

numba-cuda may be missing, or present with no driver or no GPU; every one of those means "no GPU here", so
``cuda_available`` never raises. (With ``NUMBA_ENABLE_CUDASIM=1`` the simulator counts as a GPU.)
"""

from __future__ import annotations

import os
from pathlib import Path

from helixflow.errors import DeviceUnavailable

DEVICES = ("auto", "cpu", "cuda")


# Where the NVIDIA kernel driver shows itself on a host or in a GPU container: without either there is no GPU to
# find, and importing numba.cuda only to learn that costs ~0.2-0.9 s of every CPU run (measured here).
DRIVER_PATHS = (Path("/proc/driver/nvidia"), Path("/dev/nvidiactl"))


def cuda_available() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not any(path.exists() for path in DRIVER_PATHS):
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # numba-cuda missing or the driver failed to load: both mean "no GPU here"
        return False


def resolve_device(device: str) -> str:
    """"cpu" or "cuda" for a --device value; "cuda" without a GPU is ``DeviceUnavailable``."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise DeviceUnavailable("no CUDA GPU is available; use --device cpu or auto")
    return device


def gpu_for_rank(rank: int, gpus: int) -> int | None:
    """The GPU an MPI rank uses: ranks are dealt round-robin over the node's GPUs (``rank % gpus``), so one
    rank per GPU (Slurm's ``--ntasks-per-node`` = ``--gres=gpu:N``) gives every rank its own; None without a
    GPU."""
    return rank % gpus if gpus > 0 else None
