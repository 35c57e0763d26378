"""Smith-Waterman score-only throughput: helixflow's Numba kernel vs parasail's striped 16-bit kernel.

Workload: 150 bp reads against the 300 bp reference windows they came from (about 2% substitutions plus a
small indel in a third of the reads), default scoring (match 1, mismatch -4, N -1, gap open 7, extend 1).
GCUPS = cells (read length x window length, summed) / seconds. Every engine scores the same pairs, in one
run of this script; each timing is the best of ``--repeats`` runs. parasail is called once per pair, as a
Python caller would; for 2 workers it runs in 2 processes (and, to show whether it releases the GIL, in a
2-thread pool). Scores are checked to be identical before anything is printed.

    .venv/bin/python benchmarks/sw_vs_parasail.py [--pairs 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import parasail

from helixflow.embedding import pack
from helixflow.phase2.sw import Scoring, score_batch

READ_LENGTH = 150
WINDOW_LENGTH = 300
SCORING = Scoring()


def make_pairs(n: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    rng = np.random.default_rng(seed)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    reads, windows = [], []
    for k in range(n):
        window = rng.choice(bases, WINDOW_LENGTH)
        start = int(rng.integers(0, WINDOW_LENGTH - READ_LENGTH - 8))
        read = window[start:start + READ_LENGTH + 8].copy()
        substitutions = rng.random(read.size) < 0.02
        read[substitutions] = rng.choice(bases, int(substitutions.sum()))
        if k % 3 == 0:  # a short indel
            pos = int(rng.integers(10, READ_LENGTH - 10))
            if k % 2:
                read = np.delete(read, np.s_[pos:pos + int(rng.integers(1, 4))])
            else:
                read = np.insert(read, pos, rng.choice(bases, int(rng.integers(1, 4))))
        reads.append(read[:READ_LENGTH].tobytes())
        windows.append(window.tobytes())
    return reads, windows


def _parasail_matrix():
    matrix = parasail.matrix_create("ACGTN", SCORING.match, SCORING.mismatch)
    for k in range(6):
        for special in (4, 5):
            matrix.set_value(special, k, SCORING.n_score)
            matrix.set_value(k, special, SCORING.n_score)
    return matrix


def parasail_scores(pairs: tuple[list[bytes], list[bytes]]) -> np.ndarray:
    matrix = _parasail_matrix()
    return np.array([parasail.sw_striped_16(q, t, SCORING.gap_open, SCORING.gap_extend, matrix).score
                     for q, t in zip(*pairs)], dtype=np.int32)


def split(reads, windows, parts):
    bounds = np.linspace(0, len(reads), parts + 1).astype(int)
    return [(reads[a:b], windows[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def best_time(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    reads, windows = make_pairs(args.pairs, args.seed)
    cells = sum(len(q) * len(t) for q, t in zip(reads, windows))
    qbuf, qoff = pack(reads)
    tbuf, toff = pack(windows)
    score_batch(qbuf[:0], np.zeros(1, np.int64), tbuf[:0], np.zeros(1, np.int64))  # load / compile
    score_batch(qbuf, qoff[:65], tbuf, toff[:65])

    rows = []
    reference = None
    for threads in (1, 2):
        seconds, (ours, _, _) = best_time(lambda: score_batch(qbuf, qoff, tbuf, toff, SCORING,
                                                              threads=threads), args.repeats)
        rows.append(("helixflow sw (numba int16 SIMD)", threads, seconds))
        if threads == 1:
            p_seconds, reference = best_time(lambda: parasail_scores((reads, windows)), args.repeats)
            rows.append(("parasail sw_striped_16", 1, p_seconds))
        else:
            with ProcessPoolExecutor(2) as pool:
                list(pool.map(parasail_scores, split(reads[:64], windows[:64], 2)))  # start workers
                p_seconds, parts = best_time(
                    lambda: list(pool.map(parasail_scores, split(reads, windows, 2))), args.repeats)
            rows.append(("parasail sw_striped_16, 2 processes", 2, p_seconds))
            assert np.array_equal(np.concatenate(parts), reference)
            with ThreadPoolExecutor(2) as pool:
                t_seconds, _ = best_time(
                    lambda: list(pool.map(parasail_scores, split(reads, windows, 2))), args.repeats)
            rows.append(("parasail sw_striped_16, 2 threads", 2, t_seconds))
        if not np.array_equal(ours, reference):
            raise SystemExit(f"score mismatch on {int((ours != reference).sum())} pairs")

    # ratios are against the fastest parasail setup with the same number of workers
    parasail_seconds = {1: rows[1][2], 2: min(rows[3][2], rows[4][2])}
    print(f"{args.pairs} pairs, {READ_LENGTH} bp reads x {WINDOW_LENGTH} bp windows, {cells / 1e9:.2f} Gcells, "
          f"{os.cpu_count()} CPUs; scores identical; best of {args.repeats}")
    print(f"{'engine':40s} {'threads':>7s} {'seconds':>9s} {'GCUPS':>7s} {'vs parasail':>12s}")
    for name, threads, seconds in rows:
        ratio = parasail_seconds[threads] / seconds
        print(f"{name:40s} {threads:7d} {seconds:9.3f} {cells / seconds / 1e9:7.2f} {ratio:11.2f}x")
    print("(parasail's 2-thread row vs its 1-thread row shows whether its Python binding releases the GIL; "
          "2-worker rows need 2 idle cores: check the load)")


if __name__ == "__main__":
    main()
