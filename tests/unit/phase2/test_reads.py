"""Phase 2's FASTQ reader: every record's id, upper-cased sequence and quality, from plain and gzip files of any
compression ratio (the packed buffers grow past the size first guessed from the file)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from helixflow.phase2.reads import read_fastq


def _records(n: int, rng: np.random.Generator, repetitive: bool) -> list[tuple[str, bytes, bytes]]:
    out = []
    for i in range(n):
        length = 150 if repetitive else int(rng.integers(0, 300))
        seq = b"ACGT" * (length // 4) if repetitive else rng.choice(
            np.frombuffer(b"ACGTNacgtn", np.uint8), size=length).tobytes()
        qual = b"I" * len(seq) if repetitive else rng.integers(33, 75, size=len(seq), dtype=np.uint8).tobytes()
        out.append((f"read{i}/1", seq, qual))
    return out


@pytest.mark.parametrize("compressed,repetitive", [(False, False), (True, False), (True, True)])
def test_every_record_is_read_whole_and_upper_cased(tmp_path, compressed, repetitive):
    records = _records(30_000 if repetitive else 3_000, np.random.default_rng(3), repetitive)
    text = b"".join(b"@%s extra\n%s\n+\n%s\n" % (name.encode(), seq, qual) for name, seq, qual in records)
    path = tmp_path / ("r.fastq.gz" if compressed else "r.fastq")
    path.write_bytes(gzip.compress(text) if compressed else text)
    if repetitive:  # far past the 2x-the-gzip-size guess: the buffers must grow
        assert len(text) > 20 * path.stat().st_size
    batch = read_fastq([path])
    assert batch.ids == [name[:-2] for name, _, _ in records]
    assert [batch.sequence(i) for i in range(len(batch))] == [seq.upper() for _, seq, _ in records]
    assert [batch.quality(i) for i in range(len(batch))] == [qual for _, _, qual in records]
