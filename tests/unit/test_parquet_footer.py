"""Parquet files joined by their bytes (helixflow.parquet_footer): what any Parquet reader sees in the joined file
is the parts' rows in order, their statistics and metadata unchanged, and parts that cannot be joined that way are
refused by name rather than joined wrongly."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helixflow import embedding, parquet_footer
from helixflow.parquet_footer import NotJoinable, footer_span, joined_tail
from helixflow.phase1.engine import _parquet_writer


def _part(index: int, rows: int, group_rows: int, **writer_options) -> tuple[bytes, pa.Table]:
    rng = np.random.default_rng(index)
    codes = rng.integers(-128, 128, (rows, embedding.DIMS), dtype=np.int8)
    table = pa.table([pa.array([f"p{index}r{i}" for i in range(rows)]),
                      pa.array((np.arange(rows) % 2 + 1).astype(np.int8)),
                      pa.array([row.tobytes() for row in codes], pa.binary(embedding.DIMS))],
                     schema=embedding.parquet_schema())
    buffer = io.BytesIO()
    writer = (pq.ParquetWriter(buffer, table.schema, **writer_options) if writer_options
              else _parquet_writer(buffer, table.schema))
    for start in range(0, rows, group_rows):
        writer.write_table(table.slice(start, group_rows))
    writer.close()
    return buffer.getvalue(), table


def _split(data: bytes) -> tuple[bytes, bytes]:
    """(pages, footer) of one file: its bytes from 4 to the footer, and the footer."""
    start, length = footer_span(data[-parquet_footer.TAIL_BYTES:], len(data))
    return data[4:start], data[start:start + length]


def _joined(files: list[bytes]) -> bytes:
    bodies, footers = zip(*(_split(data) for data in files))
    return parquet_footer.MAGIC + b"".join(bodies) + joined_tail(list(footers), [len(b) for b in bodies])


def test_a_footer_is_decoded_and_encoded_back_to_the_same_bytes():
    data, _ = _part(0, 500, 128)
    _, footer = _split(data)
    assert parquet_footer._encode(parquet_footer._decode(footer)) == footer


def test_joined_parts_read_as_their_rows_in_order_with_row_groups_statistics_and_metadata_kept():
    parts = [_part(0, 3000, 1000), _part(1, 2500, 700), _part(2, 7, 1000)]
    joined = pq.ParquetFile(io.BytesIO(_joined([data for data, _ in parts])))
    expected = pa.concat_tables([table for _, table in parts])
    assert joined.read().equals(expected)
    assert joined.schema_arrow.metadata == expected.schema.metadata  # the embedding's definition travels with it
    metadata = joined.metadata
    assert metadata.num_rows == 5507
    sources = [pq.ParquetFile(io.BytesIO(data)).metadata for data, _ in parts]
    groups = [(m, g) for m in sources for g in range(m.num_row_groups)]
    assert metadata.num_row_groups == len(groups) == 3 + 4 + 1
    for index, (source, group) in enumerate(groups):
        assert metadata.row_group(index).num_rows == source.row_group(group).num_rows
        assert joined.read_row_group(index).equals(pq.ParquetFile(io.BytesIO(parts[sources.index(source)][0]))
                                                   .read_row_group(group))
        for column in range(3):
            got, want = metadata.row_group(index).column(column), source.row_group(group).column(column)
            assert got.statistics == want.statistics and got.total_compressed_size == want.total_compressed_size
    # Row groups are found by offset, so a filter reading one row group only must land on the right one.
    found = pq.read_table(io.BytesIO(_joined([data for data, _ in parts])), filters=[("read_id", "=", "p1r2499")])
    assert found.column("read_id").to_pylist() == ["p1r2499"]


def test_a_part_without_rows_joins_as_no_rows():
    """A chunk whose reads were all filtered out writes a part with no row group (and no pages)."""
    empty, _ = _part(5, 0, 100)
    parts = [_part(6, 300, 100), (empty, None), _part(7, 200, 100)]
    joined = pq.ParquetFile(io.BytesIO(_joined([data for data, _ in parts])))
    assert joined.read().equals(pa.concat_tables([parts[0][1], parts[2][1]]))
    assert joined.metadata.num_row_groups == 5


def test_a_reader_of_another_implementation_reads_the_joined_file_as_pyarrow_does():
    """polars reads Parquet with its own (Rust) reader, not Arrow C++'s: the footer is sound, not just to pyarrow."""
    import polars as pl

    parts = [_part(3, 2000, 600), _part(4, 1500, 1000)]
    joined = _joined([data for data, _ in parts])
    frame = pl.read_parquet(io.BytesIO(joined))
    expected = pa.concat_tables([table for _, table in parts])
    assert frame["read_id"].to_list() == expected.column("read_id").to_pylist()
    assert frame["embedding"].to_list() == expected.column("embedding").to_pylist()
    one = pl.scan_parquet(io.BytesIO(joined)).filter(pl.col("read_id") == "p4r1499").collect()
    assert one["mate"].to_list() == [2]


def test_parts_that_differ_in_schema_or_carry_a_page_index_are_refused_by_name():
    ours, _ = _part(0, 100, 50)
    other_schema = io.BytesIO()
    pq.write_table(pa.table({"read_id": ["x"]}), other_schema)
    with pytest.raises(NotJoinable, match="part 1's schema"):
        _joined([ours, other_schema.getvalue()])
    with_page_index, _ = _part(1, 100, 50, write_page_index=True)
    with pytest.raises(NotJoinable, match="part 0 has a (offset|column) index"):
        _joined([with_page_index, ours])
    with pytest.raises(NotJoinable, match="no closing PAR1"):
        footer_span(b"not a parquet file", 18)
