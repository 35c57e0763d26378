"""Statistics agree with fastp's on the same files, before and after filtering: counts, rates, GC content, mean
lengths, filtering results, duplication rate and adapter trimming exactly; per-position curves to the digits the
two JSON writers print.

Both tools run with the same operations: fastp's defaults (no quality cut, adapter trimming by pair overlap for
pairs, the low-quality / N / length filters) and ours with ``quality=0`` (our 3' window cut is on by default,
fastp's is off). For single-end files fastp's adapter auto-detection and ours can pick differently (see
test_adapter_scan.py), so adapter trimming is off on both sides there (``-A`` / ``detect_adapter=False``)."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

from helixflow.phase1 import engine

# Curves: ours are rounded to 6 decimals (report._r); fastp prints 6 significant digits, i.e. 4 decimals for
# a mean quality of 10-99 and 6-7 decimals for a fraction in [0.01, 1). The sum of the two roundings bounds the
# difference; the measured maxima are 5.0e-5 and 4.9e-7.
QUALITY_CURVE_ATOL = 5e-5 + 5e-7
CONTENT_CURVE_ATOL = 5e-7 + 5e-7
# Duplication rate: ours rounded to 6 decimals, fastp's to 6 significant digits (0.0331667 vs 0.033167).
DUPLICATION_ATOL = 5e-7 + 5e-8
EXACT_SUMMARY_KEYS = ("total_reads", "total_bases", "q20_bases", "q30_bases", "q20_rate", "q30_rate", "gc_content")


def _fastp(run_tool, tmp_path, r1, r2=None):
    args = ["fastp", "-i", r1, "-o", str(tmp_path / "fp1.fq.gz"), "-j", str(tmp_path / "fp.json"),
            "-h", str(tmp_path / "fp.html"), "-w", "1"]
    if r2:
        args += ["-I", r2, "-O", str(tmp_path / "fp2.fq.gz")]
    else:
        args += ["-A"]
    run_tool(*args)
    return json.loads((tmp_path / "fp.json").read_text())


def _ours(tmp_path, r1, r2=None):
    params = engine.Params(embeddings=False, quality=0, detect_adapter=r2 is not None)
    engine.process_file(r1, r2, str(tmp_path / "hf"), "s", params)
    return json.loads((tmp_path / "hf" / "qc" / "s.fastp.json").read_text())


def _compare(ours, theirs, mates):
    for stage in ("before_filtering", "after_filtering"):
        b, t = ours["summary"][stage], theirs["summary"][stage]
        for key in EXACT_SUMMARY_KEYS + tuple(f"read{m}_mean_length" for m in range(1, mates + 1)):
            assert b[key] == t[key], (stage, key)
    assert ours["filtering_result"] == theirs["filtering_result"]
    assert abs(ours["duplication"]["rate"] - theirs["duplication"]["rate"]) <= DUPLICATION_ATOL
    assert ours["duplication"]["rate"] > 0
    if mates == 2:
        for key in ("adapter_trimmed_reads", "adapter_trimmed_bases"):
            assert ours["adapter_cutting"][key] == theirs["adapter_cutting"][key], key
        assert ours["adapter_cutting"]["adapter_trimmed_reads"] > 0
    for m in range(1, mates + 1):
        for stage in ("before_filtering", "after_filtering"):
            ours_m, theirs_m = ours[f"read{m}_{stage}"], theirs[f"read{m}_{stage}"]
            for key in ("total_reads", "total_bases", "q20_bases", "q30_bases", "total_cycles"):
                assert ours_m[key] == theirs_m[key], (m, stage, key)
            for base in ("A", "T", "C", "G", "mean"):
                np.testing.assert_allclose(ours_m["quality_curves"][base], theirs_m["quality_curves"][base],
                                           rtol=0, atol=QUALITY_CURVE_ATOL)
            for base in ("A", "C", "G", "T", "N", "GC"):
                np.testing.assert_allclose(ours_m["content_curves"][base], theirs_m["content_curves"][base],
                                           rtol=0, atol=CONTENT_CURVE_ATOL)


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


def _quartiles_by_position(path):
    """Q1, median and Q3 of the Phred scores at each read position, from the FASTQ itself (lower quantile:
    the smallest score with at least a quarter / half / three quarters of the position's bases at or below)."""
    lines = gzip.open(path, "rb").read().split(b"\n")
    quals = [np.frombuffer(q, np.uint8).astype(int) - 33 for q in lines[3::4] if q]
    longest = max(map(len, quals))
    out = {"q1": [], "median": [], "q3": []}
    for pos in range(longest):
        column = np.sort([q[pos] for q in quals if len(q) > pos])
        for name, p in (("q1", 0.25), ("median", 0.5), ("q3", 0.75)):
            out[name].append(int(column[max(int(np.ceil(len(column) * p)), 1) - 1]))
    return out


def test_quality_quartiles_are_the_quartiles_of_the_input(tmp_path, single_gz):
    ours = _ours(tmp_path, single_gz)["read1_before_filtering"]["quality_quartiles"]
    expected = _quartiles_by_position(single_gz)
    assert ours == expected
    assert len(set(expected["q1"])) > 1  # the quality falls along the read: the positions really differ


def test_overrepresented_sequences_are_counted_exactly_below_the_sample_capacity(tmp_path):
    """A sequence making up 3 % of the reads is reported with its exact count (the read sample is exact below
    its capacity of 2^15 reads); random reads are not reported."""
    rng = np.random.default_rng(21)
    bases = np.frombuffer(b"ACGT", np.uint8)
    repeated = bases[rng.integers(0, 4, 100)].tobytes()
    path = tmp_path / "over.fq"
    with open(path, "wb") as handle:
        for i in range(2000):
            seq = repeated if i % 100 < 3 else bases[rng.integers(0, 4, 100)].tobytes()
            handle.write(b"@r%d\n%s\n+\n%s\n" % (i, seq, b"I" * 100))
    doc = _ours(tmp_path, str(path))
    assert doc["read1_before_filtering"]["overrepresented_sequences"] == {repeated[:50].decode(): 60}
