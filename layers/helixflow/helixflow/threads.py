"""One limit for every thread pool a command runs: Numba's workers and the BLAS library's (numpy's matmul in the
dense searcher). Numba's alone left `--threads 1` running the dense search's matmul on every core."""

from __future__ import annotations


def limit_threads(threads: int | None) -> None:
    """Run compiled kernels and BLAS on at most ``threads`` threads (None: leave the defaults, every core)."""
    if threads is None:
        return
    import numba
    from threadpoolctl import threadpool_limits  # the local and hpc extras install it

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    threadpool_limits(threads, user_api="blas")
