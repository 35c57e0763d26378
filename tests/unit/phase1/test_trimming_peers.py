"""Trimming agrees with cutadapt and fastp on constructed reads; where it differs on purpose, the test says why.

Each case runs the peer as a subprocess on the same FASTQ and compares the trimmed sequence of every read.
"""

from __future__ import annotations

import gzip

import numpy as np

from helixflow.phase1 import engine, simulate
from helixflow.phase1 import params as phase1_params

ADAPTER = "AGATCGGAAGAGCACACGTCTGAACTCCAGTCA"
NO_FILTERS = dict(quality=0, n_limit=-1, unqualified_percent=-1, min_length=1, detect_adapter=False,
                  embeddings=False)


def _rng(seed):
    return np.random.default_rng(seed)


def _random_seq(rng, n):
    return bytes(np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, n)])


def _write(path, records):
    with open(path, "wb") as fh:
        for name, seq, qual in records:
            fh.write(b"@%s\n%s\n+\n%s\n" % (name.encode(), seq, qual))


def _read(path) -> dict[str, bytes]:
    opener = gzip.open if str(path).endswith(".gz") else open
    lines = opener(path, "rb").read().split(b"\n")
    return {lines[i][1:].split()[0].decode(): lines[i + 1] for i in range(0, len(lines) - 1, 4)}


def _ours(tmp_path, r1, r2=None, **params) -> list[dict[str, bytes]]:
    out = tmp_path / "ours"
    engine.process_file(str(r1), str(r2) if r2 else None, str(out), "s", engine.Params(**params))
    paths = engine.output_paths(str(out), "s", r2 is not None)["reads"]
    return [_read(p) for p in paths]


def _substitute(rng, seq: bytes, pos: int) -> bytes:
    other = bytes([[b for b in b"ACGT" if b != seq[pos]][int(rng.integers(0, 3))]])
    return seq[:pos] + other + seq[pos + 1:]


def _adapter_reads(rng, n=400, length=150):
    """Inserts followed by the whole adapter, an adapter with one substitution, a 3' adapter prefix of 3..12
    bases, or no adapter; uniform high quality so only adapter trimming acts."""
    records, expected = [], {}
    for i in range(n):
        kind = i % 4
        if kind == 2:
            overlap = 3 + i % 10
            insert = _random_seq(rng, length - overlap)
            seq = insert + ADAPTER[:overlap].encode()
        else:
            insert = _random_seq(rng, int(rng.integers(20, 140)))
            adapter = ADAPTER.encode()
            if kind == 1:
                adapter = _substitute(rng, adapter, int(rng.integers(3, 20)))
            seq = (insert + adapter + _random_seq(rng, length))[:length] if kind != 3 else _random_seq(rng, length)
        records.append((f"r{i}", seq, b"I" * len(seq)))
    return records


def test_adapter_trimming_matches_cutadapt_without_indels(tmp_path, run_tool):
    records = _adapter_reads(_rng(1))
    _write(tmp_path / "in.fq", records)
    run_tool("cutadapt", "-a", ADAPTER, "-e", "0.1", "-O", "3", "--no-indels", "-o", str(tmp_path / "ca.fq"),
             str(tmp_path / "in.fq"))
    theirs = _read(tmp_path / "ca.fq")
    ours = _ours(tmp_path, tmp_path / "in.fq", adapter=ADAPTER, **NO_FILTERS)[0]
    assert set(ours) == set(theirs)
    differing = [name for name in ours if ours[name] != theirs[name]]
    assert differing == []
    trimmed = sum(len(seq) < 150 for seq in ours.values())
    assert trimmed >= 290  # three of the four constructions carry an adapter


def test_adapter_with_an_indel_is_left_on_purpose(tmp_path, run_tool):
    """We differ on purpose: the adapter scan allows substitutions only (indels in an Illumina adapter read are
    rare, and the substitution-only scan is much faster). cutadapt's default aligner also finds an adapter read
    with a deleted base; we leave such a read untrimmed from the deletion on."""
    rng = _rng(2)
    deleted = (ADAPTER[:8] + ADAPTER[9:]).encode()
    records = []
    for i in range(50):
        insert = _random_seq(rng, 60)
        records.append((f"d{i}", (insert + deleted + _random_seq(rng, 100))[:150], b"I" * 150))
    _write(tmp_path / "in.fq", records)
    run_tool("cutadapt", "-a", ADAPTER, "-e", "0.1", "-O", "3", "-o", str(tmp_path / "ca.fq"), str(tmp_path / "in.fq"))
    theirs = _read(tmp_path / "ca.fq")
    ours = _ours(tmp_path, tmp_path / "in.fq", adapter=ADAPTER, **NO_FILTERS)[0]
    assert all(len(theirs[name]) == 60 for name in theirs)
    assert all(len(ours[name]) > 60 for name in ours)


def _step_quality_reads(rng, n=200, length=100):
    """High quality (Phred 35-40) followed by a low-quality tail (Phred 2-10) of 0..30 bases."""
    records = []
    for i in range(n):
        bad = i % 31
        good_q = rng.integers(35, 41, length - bad)
        bad_q = rng.integers(2, 11, bad)
        qual = bytes((np.concatenate([good_q, bad_q]) + 33).astype(np.uint8))
        records.append((f"q{i}", _random_seq(rng, length), qual))
    return records


def test_quality_step_is_cut_exactly_like_cutadapt(tmp_path, run_tool):
    """On a clean quality step, cutadapt's BWA-style algorithm and our sliding window both cut exactly at it."""
    records = _step_quality_reads(_rng(3))
    _write(tmp_path / "in.fq", records)
    run_tool("cutadapt", "-q", "20", "-o", str(tmp_path / "ca.fq"), str(tmp_path / "in.fq"))
    theirs = _read(tmp_path / "ca.fq")
    ours = _ours(tmp_path, tmp_path / "in.fq", **{**NO_FILTERS, "quality": 20})[0]
    for name, seq, qual in records:
        good = len(qual) - int(name[1:]) % 31
        assert len(theirs[name]) == good
        assert ours[name] == theirs[name]


def test_quality_window_keeps_the_good_bases_fastp_drops(tmp_path, run_tool):
    """We differ from fastp's --cut_tail on purpose. Both slide a 4-base window from the 3' end and stop at
    the first window with mean >= Q. fastp then cuts just after that window's first (5'-most) base, dropping up
    to 3 bases that may be of high quality, and when the 3'-most window already passes it keeps the whole read,
    low-quality last bases included. We keep the stopping window up to its last base of quality >= Q. So on a
    quality step we keep exactly the good bases, and on any read the two cuts differ by less than the window."""
    records = _step_quality_reads(_rng(4))
    _write(tmp_path / "in.fq", records)
    run_tool("fastp", "-i", str(tmp_path / "in.fq"), "-o", str(tmp_path / "fp.fq"), "--cut_tail",
             "--cut_tail_window_size", "4", "--cut_tail_mean_quality", "20", "-A", "-G", "-Q", "-L", "-w", "1",
             "-j", str(tmp_path / "fp.json"), "-h", str(tmp_path / "fp.html"))
    theirs = _read(tmp_path / "fp.fq")
    ours = _ours(tmp_path, tmp_path / "in.fq", **{**NO_FILTERS, "quality": 20})[0]
    fewer = 0
    for name, seq, qual in records:
        good = len(qual) - int(name[1:]) % 31
        assert len(ours[name]) == good
        assert seq.startswith(theirs[name]) and abs(good - len(theirs[name])) <= 3
        fewer += len(theirs[name]) < good
    assert fewer > len(records) // 2

    names, s1, q1, _, _ = simulate.simulate_pairs(2000, paired=False, seed=5, bad_tail_fraction=0.5)
    _write(tmp_path / "sim.fq", [(n, bytes(s), bytes(q + 33)) for n, s, q in zip(names, s1, q1)])
    run_tool("fastp", "-i", str(tmp_path / "sim.fq"), "-o", str(tmp_path / "fp2.fq"), "--cut_tail",
             "--cut_tail_window_size", "4", "--cut_tail_mean_quality", "20", "-A", "-G", "-Q", "-L", "-w", "1",
             "-j", str(tmp_path / "fp2.json"), "-h", str(tmp_path / "fp2.html"))
    theirs = _read(tmp_path / "fp2.fq")
    ours = _ours(tmp_path / "sim", tmp_path / "sim.fq", **{**NO_FILTERS, "quality": 20})[0]
    # No filter is on (-Q -L / NO_FILTERS) and no read is trimmed to nothing, so both keep every read.
    assert set(ours) == set(theirs) and len(ours) == 2000
    # Less than the 4-base window apart, by the construction in the docstring (measured: 0 to 3).
    assert all(abs(len(ours[n]) - len(theirs[n])) <= 3 for n in ours)


def test_poly_g_matches_fastp(tmp_path, run_tool):
    rng = _rng(6)
    records = []
    for i in range(200):
        body = _random_seq(rng, int(rng.integers(40, 140)))
        tail = bytearray(b"G" * (150 - len(body)))
        for _ in range(i % 3):  # a few non-G calls inside the run
            tail[int(rng.integers(0, len(tail)))] = ord("A")
        seq = body + bytes(tail)
        records.append((f"g{i}", seq, b"I" * 150))
    _write(tmp_path / "in.fq", records)
    run_tool("fastp", "-i", str(tmp_path / "in.fq"), "-o", str(tmp_path / "fp.fq"), "-g", "--poly_g_min_len", "10",
             "-A", "-Q", "-L", "-w", "1", "-j", str(tmp_path / "fp.json"), "-h", str(tmp_path / "fp.html"))
    theirs = _read(tmp_path / "fp.fq")
    ours = _ours(tmp_path, tmp_path / "in.fq", **{**NO_FILTERS, "poly_g": 10})[0]
    assert ours == theirs
    assert sum(len(s) < 150 for s in ours.values()) > 150


def test_pair_overlap_adapter_trimming_matches_fastp(tmp_path, run_tool):
    files = simulate.write_sample(tmp_path / "in", 3000, paired=True, fmt="none", seed=8, fragment_mean=160.0,
                                  fragment_sd=50.0, bad_tail_fraction=0.0)
    run_tool("fastp", "-i", files[0], "-I", files[1], "-o", str(tmp_path / "fp1.fq"), "-O", str(tmp_path / "fp2.fq"),
             "-Q", "-L", "-G", "-w", "1", "-j", str(tmp_path / "fp.json"), "-h", str(tmp_path / "fp.html"))
    theirs = [_read(tmp_path / "fp1.fq"), _read(tmp_path / "fp2.fq")]
    ours = _ours(tmp_path, files[0], files[1], **NO_FILTERS)
    for mate in (0, 1):
        # No filter is on, so both keep every pair, and every trimmed read is identical.
        assert set(ours[mate]) == set(theirs[mate]) and len(ours[mate]) == 3000
        assert ours[mate] == theirs[mate]
    trimmed = sum(len(s) < 150 for s in ours[0].values())
    assert trimmed > 1000


def _fastp_trim(run_tool, tmp_path, r1, *options, r2=None):
    """fastp with only the named operation: adapter trimming, quality and length filters off unless asked."""
    args = ["fastp", "-i", str(r1), "-o", str(tmp_path / "fp1.fq"), "-Q", "-w", "1",
            "-j", str(tmp_path / "fp.json"), "-h", str(tmp_path / "fp.html"), *options]
    if r2 is not None:
        args += ["-I", str(r2), "-O", str(tmp_path / "fp2.fq")]
    run_tool(*args)
    return [_read(tmp_path / "fp1.fq")] + ([_read(tmp_path / "fp2.fq")] if r2 is not None else [])


def test_five_prime_quality_cut_keeps_exactly_the_good_bases(tmp_path, run_tool):
    """``quality_front``: the 5' twin of the 3' window cut, and the same deliberate difference from fastp's
    --cut_front as test_quality_window_keeps_the_good_bases_fastp_drops describes for the tail: on a quality step
    we keep exactly the good bases; fastp stops at the window's edge, so it drops up to 3 good bases or keeps up to
    3 bad ones (window size 4 minus one; measured 0-2)."""
    rng = _rng(31)
    records = []
    for i in range(200):
        bad = i % 21
        qual = np.concatenate([rng.integers(2, 11, bad), rng.integers(30, 41, 100 - bad)])
        records.append((f"f{i}", _random_seq(rng, 100), bytes((qual + 33).astype(np.uint8))))
    _write(tmp_path / "in.fq", records)
    theirs = _fastp_trim(run_tool, tmp_path, tmp_path / "in.fq", "-A", "-G", "-L", "--cut_front",
                         "--cut_front_window_size", "4", "--cut_front_mean_quality", "20")[0]
    ours = _ours(tmp_path, tmp_path / "in.fq", **{**NO_FILTERS, "quality_front": 20, "window_front": 4})[0]
    assert set(ours) == set(theirs)
    for name, seq, qual in records:
        bad = int(name[1:]) % 21
        assert ours[name] == seq[bad:]
        assert seq.endswith(theirs[name]) and abs(len(theirs[name]) - len(ours[name])) <= 3
    assert sum(ours[n] != theirs[n] for n in ours) > 100  # the difference is real, not hypothetical


def test_poly_x_matches_fastp(tmp_path, run_tool):
    rng = _rng(32)
    records = []
    for i in range(200):
        body = _random_seq(rng, int(rng.integers(40, 140)))
        base = b"ACGT"[i % 4:i % 4 + 1]
        tail = bytearray(base * (150 - len(body)))
        for k in range(i % 3):  # a few other calls inside the run: an N (a match for fastp's poly-X) or a base
            tail[int(rng.integers(0, len(tail)))] = ord("N") if (i + k) % 2 else ord(b"ACGT"[(i + 1) % 4:(i + 1) % 4 + 1])
        records.append((f"x{i}", body + bytes(tail), b"I" * 150))
    _write(tmp_path / "in.fq", records)
    theirs = _fastp_trim(run_tool, tmp_path, tmp_path / "in.fq", "-A", "-G", "-L", "-x", "--poly_x_min_len", "10")[0]
    ours = _ours(tmp_path, tmp_path / "in.fq", **{**NO_FILTERS, "poly_x": 10})[0]
    assert ours == theirs
    assert sum(len(s) < 150 for s in ours.values()) > 150


def test_max_length_filter_matches_fastp_length_limit(tmp_path, run_tool):
    """``max_length`` is a filter: reads longer than it are dropped, as fastp's --length_limit does. (The engine
    has no trim-to-length option like fastp's -b/--max_len1.)"""
    rng = _rng(33)
    records = [(f"m{i}", _random_seq(rng, n), b"I" * n) for i, n in enumerate(rng.integers(50, 151, 200).tolist())]
    _write(tmp_path / "in.fq", records)
    theirs = _fastp_trim(run_tool, tmp_path, tmp_path / "in.fq", "-A", "-G", "-l", "1", "--length_limit", "100")[0]
    ours = _ours(tmp_path, tmp_path / "in.fq", **{**NO_FILTERS, "max_length": 100})[0]
    assert ours == theirs
    assert max(map(len, ours.values())) <= 100 and len(ours) < 150  # about half the reads were too long


def test_adapter2_trims_read_2_like_fastp(tmp_path, run_tool):
    """``adapter2``: a separate read-2 adapter (fastp --adapter_sequence_r2). Pairs with a short insert: both
    tools trim by overlap, so an insert of 10 bases (too short to overlap) is left to the given sequences."""
    files = simulate.write_sample(tmp_path / "in", 2000, paired=True, fmt="none", seed=34, fragment_mean=120.0,
                                  fragment_sd=40.0, bad_tail_fraction=0.0)
    adapter1, adapter2 = simulate.TRUSEQ_R1.decode(), simulate.TRUSEQ_R2.decode()
    theirs = _fastp_trim(run_tool, tmp_path, files[0], "-G", "-L", "--adapter_sequence", adapter1,
                         "--adapter_sequence_r2", adapter2, r2=files[1])
    ours = _ours(tmp_path, files[0], files[1], **{**NO_FILTERS, "adapter": adapter1, "adapter2": adapter2,
                                                  "adapter_min_overlap": 5, "adapter_error_rate": 0.125})
    for mate in (0, 1):
        assert set(ours[mate]) == set(theirs[mate])
        assert ours[mate] == theirs[mate]
    assert sum(len(s) < 150 for s in ours[1].values()) > 1000


def test_auto_detected_adapter_is_the_one_in_the_reads(tmp_path):
    """Simulated reads run into the TruSeq read-1 adapter: detection names that sequence."""
    files = simulate.write_sample(tmp_path / "in", 3000, paired=False, fmt="none", seed=35, fragment_mean=120.0,
                                  fragment_sd=30.0)
    assert phase1_params.detect_adapter(files[0]) == simulate.TRUSEQ_R1.decode() == ADAPTER
    clean = tmp_path / "clean.fq"
    rng = _rng(36)
    _write(clean, [(f"c{i}", _random_seq(rng, 150), b"I" * 150) for i in range(500)])
    assert phase1_params.detect_adapter(str(clean)) is None
