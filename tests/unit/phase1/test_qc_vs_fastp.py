"""Before-filtering statistics agree with fastp's on the same files: read and base counts exactly, Q20/Q30
rates and GC content within 0.1 percentage points, per-position mean quality and base content closely."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

from helixflow.phase1 import engine

TOLERANCE = 0.001  # 0.1 percentage points


def _fastp(run_tool, tmp_path, r1, r2=None):
    args = ["fastp", "-i", r1, "-o", str(tmp_path / "fp1.fq.gz"), "-j", str(tmp_path / "fp.json"),
            "-h", str(tmp_path / "fp.html"), "-w", "1"]
    if r2:
        args += ["-I", r2, "-O", str(tmp_path / "fp2.fq.gz")]
    run_tool(*args)
    return json.loads((tmp_path / "fp.json").read_text())


def _ours(tmp_path, r1, r2=None):
    engine.process_file(r1, r2, str(tmp_path / "hf"), "s", engine.Params(embeddings=False))
    return json.loads((tmp_path / "hf" / "qc" / "s.fastp.json").read_text())


def _compare(ours, theirs, mates):
    b, t = ours["summary"]["before_filtering"], theirs["summary"]["before_filtering"]
    assert b["total_reads"] == t["total_reads"]
    assert b["total_bases"] == t["total_bases"]
    assert b["q20_bases"] == t["q20_bases"]
    assert b["q30_bases"] == t["q30_bases"]
    for key in ("q20_rate", "q30_rate", "gc_content"):
        assert abs(b[key] - t[key]) <= TOLERANCE, key
    for m in range(1, mates + 1):
        ours_m, theirs_m = ours[f"read{m}_before_filtering"], theirs[f"read{m}_before_filtering"]
        assert ours_m["total_reads"] == theirs_m["total_reads"]
        assert ours_m["total_cycles"] == theirs_m["total_cycles"]
        np.testing.assert_allclose(ours_m["quality_curves"]["mean"], theirs_m["quality_curves"]["mean"], atol=1e-3)
        for base in ("A", "C", "G", "T", "N", "GC"):
            np.testing.assert_allclose(ours_m["content_curves"][base], theirs_m["content_curves"][base], atol=1e-5)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_art_single_end_matches_fastp(run_tool, tmp_path, art_fastq, compress):
    path = art_fastq
    if compress:
        path = str(tmp_path / "art.fq.gz")
        with open(art_fastq, "rb") as src, gzip.open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    _compare(_ours(tmp_path, path), _fastp(run_tool, tmp_path, path), 1)


def test_simulated_pairs_bgzf_match_fastp(run_tool, tmp_path, pair_bgzf):
    _compare(_ours(tmp_path, *pair_bgzf), _fastp(run_tool, tmp_path, *pair_bgzf), 2)


def test_simulated_single_gzip_matches_fastp(run_tool, tmp_path, single_gz):
    _compare(_ours(tmp_path, single_gz), _fastp(run_tool, tmp_path, single_gz), 1)
