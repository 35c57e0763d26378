"""No JIT on a user's first run: the warm-up covers every kernel specialisation the commands take, and the
images' build-time cache is seeded into Lambda's writable /tmp at cold start."""

import subprocess
import sys

import pytest

from helixflow.phase1.simulate import random_genome, write_sample
from helixflow.phase2.simulate import write_fasta
from helixflow.warmup import seed_cache

# Each command in a fresh interpreter, counting Numba compilations (a cache hit is not one).
COUNT_COMPILATIONS = """
import sys
from helixflow.warmup import compiled_count
from helixflow_local.cli import main
count = compiled_count()
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print("compiled", count())
"""


def test_the_seed_is_copied_into_an_empty_cache_dir_once(tmp_path, monkeypatch):
    seed = tmp_path / "seed"
    (seed / "helixflow_x").mkdir(parents=True)
    (seed / "helixflow_x" / "k.nbi").write_bytes(b"index")
    monkeypatch.setenv("HELIXFLOW_NUMBA_CACHE_SEED", str(seed))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "tmp-cache"))
    assert seed_cache() is True
    assert (tmp_path / "tmp-cache" / "helixflow_x" / "k.nbi").read_bytes() == b"index"
    assert seed_cache() is False  # a warm environment keeps what it compiled since
    monkeypatch.delenv("HELIXFLOW_NUMBA_CACHE_SEED")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "other"))
    assert seed_cache() is False and not (tmp_path / "other").exists()


@pytest.mark.slow
def test_after_the_warm_up_no_command_compiles_anything(tmp_path):
    # The install's warm-up (make install) filled the cache; run it again in case a kernel changed since.
    subprocess.run([sys.executable, "-m", "helixflow.warmup"], check=True, capture_output=True, timeout=1800)
    genome = random_genome(20_000, 9)
    write_fasta(tmp_path / "ref.fa", {"c": genome})
    r1, r2 = write_sample(tmp_path, 300, paired=True, fmt="gzip", name="t", genome=genome, seed=4)
    commands = {
        "preprocess": ["preprocess", r1, r2, "--out", str(tmp_path / "pre")],
        "align FASTQ": ["align", r1, r2, "--reference", str(tmp_path / "ref.fa"), "--out", str(tmp_path / "a.sam"),
                        "--device", "cpu"],
        "align Parquet": ["align", str(tmp_path / "pre/embeddings/t.parquet"), "--reference",
                          str(tmp_path / "ref.fa"), "--out", str(tmp_path / "b.sam"), "--device", "cpu"],
        "align dense": ["align", str(tmp_path / "pre/embeddings/t.parquet"), "--reference", str(tmp_path / "ref.fa"),
                        "--out", str(tmp_path / "d.sam"), "--device", "cpu", "--searcher", "dense", "--threads", "1"],
        "cluster": ["cluster", str(tmp_path / "pre/embeddings/t.parquet"), "--out", str(tmp_path / "c.tsv"),
                    "--device", "cpu"],
    }
    compiled = {}
    for name, argv in commands.items():
        done = subprocess.run([sys.executable, "-c", COUNT_COMPILATIONS, *argv], capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        compiled[name] = int(done.stdout.split("compiled ")[-1])
    assert compiled == dict.fromkeys(commands, 0)
    assert (tmp_path / "c.tsv").read_text().startswith("read_id\tcluster_id")


HELPER = "from numba import njit\n\n\n@njit(inline='always')\ndef value():\n    return {}\n"
KERNEL = "from numba import njit\n\nfrom stale_pkg.helper import value\n\n\n@njit(cache=True)\ndef kernel():\n    return value()\n"


def test_the_warm_up_drops_kernels_compiled_from_sources_that_changed_since(tmp_path, monkeypatch):
    """Numba checks only a kernel's own file: a kernel that inlines another module's function keeps the old
    code from the cache when only that module changes. The warm-up's fingerprint of every source catches it."""
    from numba.core import config

    from helixflow.warmup import drop_stale_cache

    package = tmp_path / "src" / "stale_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text(HELPER.format(1))
    (package / "kernel.py").write_text(KERNEL)
    cache = tmp_path / "cache"
    monkeypatch.setattr(config, "CACHE_DIR", str(cache))
    # No bytecode cache: the helper is rewritten within the second at the same size, which .pyc stamps miss.
    env = {"PATH": "/usr/bin:/bin", "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(tmp_path / "src"),
           "PYTHONDONTWRITEBYTECODE": "1"}

    def run() -> int:
        done = subprocess.run([sys.executable, "-c", "from stale_pkg.kernel import kernel; print(kernel())"],
                              capture_output=True, text=True, env=env, timeout=120, check=True)
        return int(done.stdout)

    assert drop_stale_cache(package) == 0  # no cache yet: only the fingerprint is written
    assert run() == 1
    (package / "helper.py").write_text(HELPER.format(2))
    assert run() == 1  # the hazard: served from the cache, compiled from the old helper
    assert drop_stale_cache(package) == 2  # the kernel's index and its compiled code
    assert run() == 2
    assert drop_stale_cache(package) == 0  # sources unchanged since: the warm cache stays
    assert run() == 2
