"""Compile every Numba kernel ahead of the first run, so no user and no cold start pays the JIT.

    python -m helixflow.warmup [--phase1] [--phase2]      (both when neither is given)

Every kernel is ``@njit(cache=True)``: compiled once, then loaded from Numba's cache (``NUMBA_CACHE_DIR``, or
``__pycache__`` beside the sources). This runs the same code paths a run takes - Phase 1 single-end and
paired on a tiny simulated sample, then Phase 2 on its embeddings Parquet against a tiny genome the reads come
from (minimizer and dense searchers, Smith-Waterman with CIGAR, SAM records, the read graph) - so every
specialisation a run needs is in the cache afterwards. Where it runs:
- ``make install``: the first ``helixflow preprocess/align/cluster`` and every local Lambda/Slurm job start warm;
- the Phase 1 image and the cluster runtime image run it at build time into ``HELIXFLOW_NUMBA_CACHE_SEED``;
  Lambda's filesystem is read-only outside /tmp, where the cache must live (Numba writes its index beside
  what it loads), so ``seed_cache()`` copies the seed to ``NUMBA_CACHE_DIR`` at cold start (milliseconds for
  the ~1 MB it holds) before any kernel module is imported. The cache is keyed by source path and stamp,
  which the image keeps.
Numba checks only the stamp of a kernel's own file, and most kernels inline functions of other modules (the
alphabet, the hashes, the adapter scan): after an update that changes only those, a warm cache would keep
serving the old code. So the warm-up first drops this package's cache when any of its sources changed since
the cache was built (``drop_stale_cache``: a fingerprint of every source, kept beside the cache).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

WARM_UP_READS = 200
GENOME_BP = 30_000


def seed_cache() -> bool:
    """Copy the build-time cache (``HELIXFLOW_NUMBA_CACHE_SEED``) to ``NUMBA_CACHE_DIR`` once per environment;
    True when it copied. Call before importing any module with kernels."""
    seed, target = os.environ.get("HELIXFLOW_NUMBA_CACHE_SEED"), os.environ.get("NUMBA_CACHE_DIR")
    if not seed or not target or not os.path.isdir(seed) or os.path.isdir(target):
        return False
    shutil.copytree(seed, target)
    return True


def _cache_dirs(package: Path) -> tuple[Path, list[Path]]:
    """(the fingerprint file, the folders Numba caches this package's kernels in): ``NUMBA_CACHE_DIR``'s
    per-folder subpaths when it is set, else ``__pycache__`` beside each source folder."""
    from numba.core import config
    from numba.core.caching import UserProvidedCacheLocator

    folders = sorted({path.parent for path in package.rglob("*.py")})
    stamp = f"{package.name}-sources.sha256"
    if config.CACHE_DIR:
        root = Path(config.CACHE_DIR)
        return root / stamp, [root / UserProvidedCacheLocator.get_suitable_cache_subpath(str(f / "m.py"))
                                   for f in folders]
    return package / "__pycache__" / stamp, [f / "__pycache__" for f in folders]


def sources_fingerprint(package: Path) -> str:
    """SHA-256 of Numba's version and every source file of ``package`` (path and bytes)."""
    import numba

    digest = hashlib.sha256(numba.__version__.encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def drop_stale_cache(package: Path | None = None) -> int:
    """Delete ``package``'s (default: helixflow's) compiled kernels from Numba's cache when its sources changed
    since the fingerprint beside the cache was written, and write the new one; returns how many cache files went
    (0: the cache matches the sources, or there was none)."""
    package = package or Path(__file__).resolve().parent
    stamp, folders = _cache_dirs(package)
    fingerprint = sources_fingerprint(package)
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return 0
    removed = 0
    for folder in folders:
        for entry in [*folder.glob("*.nbi"), *folder.glob("*.nbc")]:
            entry.unlink()
            removed += 1
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    return removed


def warm_phase1(scratch: Path, *, paired: bool, params=None, genome: bytes | None = None) -> Path:
    """Phase 1 on a tiny sample (the engine's kernels with these parameters); returns its output folder."""
    from helixflow.phase1.engine import Params, process_file
    from helixflow.phase1.simulate import write_sample

    name = "warm_pe" if paired else "warm_se"
    paths = write_sample(scratch / name, WARM_UP_READS, paired=paired, fmt="none", name=name, genome=genome)
    out = scratch / f"{name}_out"
    process_file(paths[0], paths[1] if paired else None, str(out), name, params or Params())
    return out


def warm_phase2(scratch: Path) -> None:
    """Phase 2 as a run takes it: reads from Phase 1's Parquet, both searchers, SAM records, the read graph."""
    import numpy as np

    from helixflow.phase1.simulate import random_genome
    from helixflow.phase2 import graph, sam
    from helixflow.phase2.engine import build_searcher
    from helixflow.phase2.mapper import MapOptions, map_reads
    from helixflow.phase2.reads import read_reads
    from helixflow.phase2.reference import read_fasta
    from helixflow.phase2.simulate import write_fasta

    genome = random_genome(GENOME_BP, 3)
    write_fasta(scratch / "warm.fa", {"warm": genome})
    reference = read_fasta(scratch / "warm.fa")
    out = warm_phase1(scratch, paired=True, genome=genome)
    fastq = sorted(str(p) for p in (scratch / "warm_pe").iterdir())
    batch = read_reads([str(out / "embeddings" / "warm_pe.parquet")])
    for searcher in ("index", "dense"):
        for reads in (batch, read_reads(fastq)):  # a run reads Parquet; `helixflow align` also FASTQ
            mapping, frags = map_reads(reads, reference, build_searcher(searcher, reference, "cpu"),
                                       MapOptions(device="cpu"))
            sam.records(reads, mapping, frags, reference, "warm")
    pairs = graph.neighbour_pairs(batch, np.arange(len(batch), dtype=np.int64))
    graph.clusters_tsv(batch, pairs[graph.confirm_pairs(batch, pairs, device="cpu")])


def compiled_count() -> Callable[[], int]:
    """A counter of Numba compilations from now on (a cache hit is not one)."""
    from numba.core import event

    class Counter(event.Listener):
        count = 0

        def on_start(self, ev) -> None:
            pass

        def on_end(self, ev) -> None:
            Counter.count += 1

    event.register("numba:compile", Counter())
    return lambda: Counter.count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helixflow.warmup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase1", action="store_true", help="Phase 1's kernels (the Lambda image, Ray workers)")
    parser.add_argument("--phase2", action="store_true", help="Phase 2's kernels (the cluster nodes)")
    options = parser.parse_args(argv)
    both = not (options.phase1 or options.phase2)
    dropped = drop_stale_cache()
    compiled = compiled_count()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="helixflow-warmup-") as scratch:
        if options.phase1 or both:
            warm_phase1(Path(scratch), paired=False)
            warm_phase1(Path(scratch), paired=True)
        if options.phase2 or both:
            warm_phase2(Path(scratch))
    print(f"helixflow warm-up: {compiled()} kernel specialisations compiled in {time.monotonic() - started:.1f} s "
          f"(0 means the cache was already warm; {dropped} stale cache files dropped first)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
