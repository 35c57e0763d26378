"""Nothing the validator accepts breaks a later stage: fuzzed FASTQ records (read ids of arbitrary bytes,
descriptions after spaces and tabs, sequences, qualities) either fail validation with a named code or go
through Phase 1 to an embeddings Parquet that pyarrow fully validates and Phase 2 reads."""

from __future__ import annotations

import glob
import io

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixflow.errors import InvalidFastq
from helixflow.fastq.validator import validate_fastq
from helixflow.phase1.engine import process_file
from helixflow.phase2.reads import read_reads

# Mostly printable ASCII so that many inputs pass, plus bytes >= 0x80 (valid and invalid UTF-8 alike).
_ID_BYTES = st.one_of(st.integers(0x21, 0x7E), st.integers(0x80, 0xFF), st.just(0xC3), st.just(0xA9))
_TEXT = st.lists(_ID_BYTES, min_size=0, max_size=12).map(bytes)
# Reads that Phase 1's filters keep (long enough, few Ns, qualities Q20 and up), so the Parquet has rows.
_SEQUENCE = st.text("ACGT", min_size=40, max_size=80).map(str.encode)


@st.composite
def _record(draw) -> bytes:
    header = draw(_TEXT)
    if draw(st.booleans()):
        header += draw(st.sampled_from([b" ", b"\t"])) + draw(_TEXT)
    sequence = draw(_SEQUENCE)
    # Usually matching qualities; sometimes one character off, or out of range, for the rejections.
    quality = bytes(draw(st.lists(st.integers(0x35, 0x4A), min_size=len(sequence), max_size=len(sequence))))
    if draw(st.integers(0, 9)) == 0:
        quality = quality[:-1] + bytes([draw(st.integers(0x7F, 0xFF))])
    return b"@" + header + b"\n" + sequence + b"\n+\n" + quality + b"\n"


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(records=st.lists(_record(), min_size=1, max_size=4))
def test_what_validates_reaches_a_valid_parquet_and_phase2(records, tmp_path_factory):
    data = b"".join(records)
    try:
        validate_fastq(io.BytesIO(data), name="fuzz.fq")
    except InvalidFastq as exc:
        assert exc.code in InvalidFastq.codes and exc.code != InvalidFastq.default_code, exc.describe()
        return
    work = tmp_path_factory.mktemp("fuzz")
    fastq = work / "fuzz.fq"
    fastq.write_bytes(data)
    process_file(str(fastq), None, str(work / "out"), "fuzz")
    [parquet] = glob.glob(str(work / "out" / "embeddings" / "*.parquet"))
    table = pq.read_table(parquet)
    table.validate(full=True)
    assert table.num_rows == len(records)
    assert len(read_reads([parquet])) == table.num_rows
