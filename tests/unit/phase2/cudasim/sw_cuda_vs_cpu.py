"""Run the CUDA Smith-Waterman kernel under numba's CUDA simulator and compare it with the CPU kernel.

Run as a script by ``tests/unit/phase2/test_sw_cuda.py`` in its own process: NUMBA_ENABLE_CUDASIM must be
set before numba is first imported, which a pytest process that already imported numba cannot undo.
Prints one JSON object: where ``numba.cuda`` came from and, per case, how many pairs differ.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

from helixflow.seq.packing import pack  # noqa: E402
from helixflow.phase2 import sw_cuda  # noqa: E402
from helixflow.phase2.sw import Scoring, score_batch  # noqa: E402


def random_batch(rng, n, alphabet, max_query, max_target):
    symbols = np.frombuffer(alphabet, dtype=np.uint8)
    queries, targets = [], []
    for k in range(n):
        target = rng.choice(symbols, int(rng.integers(0, max_target + 1))).tobytes()
        if k % 2 and len(target) > 2:  # related: a substring with substitutions and insertions
            start = int(rng.integers(0, len(target) - 1))
            query = bytearray(target[start:start + int(rng.integers(1, max_query + 1))])
            for _ in range(int(rng.integers(0, 4))):
                pos = int(rng.integers(0, len(query)))
                if rng.integers(0, 2):
                    query[pos] = int(rng.choice(symbols))
                else:  # a vertical gap: it crosses strip edges where F must be carried over
                    query[pos:pos] = rng.choice(symbols, int(rng.integers(1, 5))).tobytes()
            query = bytes(query)
        else:
            query = rng.choice(symbols, int(rng.integers(0, max_query + 1))).tobytes()
        queries.append(query)
        targets.append(target)
    return queries, targets


def main() -> int:
    rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    cases = {
        # queries up to 5 strips long, so full strips, a partial last strip and strip edges are exercised
        "default": (Scoring(), random_batch(rng, 200, b"ACGTNacgt", 5 * sw_cuda.STRIP_ROWS, 60)),
        "cheap_gaps": (Scoring(match=3, mismatch=-3, n_score=-1, gap_open=2, gap_extend=1),
                       random_batch(rng, 100, b"ACGT", 5 * sw_cuda.STRIP_ROWS, 60)),
        "ties": (Scoring(match=1, mismatch=-1, n_score=-1, gap_open=2, gap_extend=1),
                 random_batch(rng, 100, b"AC", 20, 30)),
        "n0": (Scoring(match=2, mismatch=-3, n_score=0, gap_open=5, gap_extend=2),
               random_batch(rng, 60, b"ACGTN", 30, 40)),
    }
    report = {"cuda_file": cuda.__file__, "cases": {}}
    for name, (scoring, (queries, targets)) in cases.items():
        qbuf, qoff = pack(queries)
        tbuf, toff = pack(targets)
        gpu = sw_cuda.score_batch_cuda(qbuf, qoff, tbuf, toff, scoring)
        cpu = score_batch(qbuf, qoff, tbuf, toff, scoring)
        differ = int(np.count_nonzero(np.any(np.stack(gpu) != np.stack(cpu), axis=0)))
        report["cases"][name] = {"pairs": len(queries), "differ": differ, "positive": int((cpu[0] > 0).sum()),
                                 "dtypes": [str(a.dtype) for a in gpu]}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
