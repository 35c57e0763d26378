"""Reads for Phase 2: Phase 1's embeddings Parquet with its trimmed FASTQ(s), or FASTQ(.gz) (one file, or R1
and R2).

Reads are held packed (uint8 buffer + int64 offsets) for the Numba kernels. Mates are paired by mate id
(``helixflow.seq.read_ids``: the read id up to the first space or tab, less a trailing ``/1``/``/2``, the rule
the validator checks), not by row adjacency, so any row order Phase 1 writes pairs correctly. A mate whose partner is absent (Phase 1 dropped it) is treated as a
single-end read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from helixflow import embedding
from helixflow.errors import InvalidReads, Position
from helixflow.fastq.bgzf import GZIP_MAGIC
from helixflow.fastq.pairs import pair_count_mismatch, pair_name_mismatch
from helixflow.phase1.layout import reads_beside
from helixflow.seq.packed_kernels import gather_into, gather_packed
from helixflow.seq.packing import offsets_from_lengths
from helixflow.seq.read_ids import mate_ids


@dataclass
class ReadBatch:
    ids: list[str]
    mates: np.ndarray  # int8: 0 single-end, 1 / 2 mate
    seq: np.ndarray  # uint8 packed
    seq_offsets: np.ndarray  # int64 (n + 1,)
    qual: np.ndarray  # uint8 packed, same offsets as seq
    codes: np.ndarray | None = None  # int8 (n, DIMS): the embedding codes (stored in the Parquet, or computed)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> ReadBatch:
        return cls([], np.zeros(0, np.int8), np.zeros(0, np.uint8), np.zeros(1, np.int64), np.zeros(0, np.uint8),
                   np.zeros((0, embedding.DIMS), embedding.STORAGE_DTYPE))

    def sequence(self, i: int) -> bytes:
        return self.seq[self.seq_offsets[i]:self.seq_offsets[i + 1]].tobytes()

    def quality(self, i: int) -> bytes:
        return self.qual[self.seq_offsets[i]:self.seq_offsets[i + 1]].tobytes()

    def embedding_codes(self) -> np.ndarray:
        """The Phase 1 embedding codes of every read (computed with the same construction when not stored)."""
        if self.codes is None:
            self.codes = embedding.embed_codes_packed(self.seq, self.seq_offsets, parallel=True)[0]
        return self.codes

    def take(self, rows: np.ndarray) -> ReadBatch:
        rows = np.asarray(rows, dtype=np.int64)
        # The compiled copy: numpy's gather index (repeat + arange over every base) cost more than mapping.
        starts, lengths = self.seq_offsets[rows], np.diff(self.seq_offsets)[rows]
        seq, offsets = gather_packed(self.seq, starts, lengths)
        qual, _ = gather_packed(self.qual, starts, lengths)
        return ReadBatch([self.ids[r] for r in rows.tolist()], self.mates[rows], seq, offsets, qual,
                         None if self.codes is None else self.codes[rows])


def _string_column(column) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow string column as (packed bytes, int64 offsets), from its buffers without per-row objects."""
    array = column.combine_chunks()
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset:array.offset + len(array) + 1]
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8) if len(array) else np.zeros(0, np.uint8)
    return data[offsets[0]:offsets[-1]].copy(), (offsets - offsets[0]).astype(np.int64)


# Byte maps for the packed reads: sequences upper-cased (a-z -> A-Z), qualities as they are.
_UPPER = np.arange(256, dtype=np.uint8)
_UPPER[ord("a"):ord("z") + 1] -= 32
_SAME = np.arange(256, dtype=np.uint8)


def _upper(sequence: np.ndarray) -> np.ndarray:
    return _UPPER[sequence]


def _room(buffer: np.ndarray, used: int, more: int) -> np.ndarray:
    """``buffer`` with room for ``more`` bytes after ``used``: itself, or a copy twice as large."""
    if used + more <= buffer.shape[0]:
        return buffer
    grown = np.empty(max(2 * buffer.shape[0], used + more), dtype=np.uint8)
    grown[:used] = buffer[:used]
    return grown


def column_mate_ids(column) -> list[str]:
    """The mate id of every read id in an Arrow string column (Phase 1's ``read_id``)."""
    data, offsets = _string_column(column)
    return mate_ids(data, offsets[:-1], offsets[1:])


def _parse_fastq(path: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mate ids, upper-cased packed sequences, packed qualities, offsets, header byte offsets) through Phase
    1's batch reader, which raises InvalidFastq with a position on a malformed record."""
    from helixflow.phase1.reader import iter_batches, whole_file

    ids: list[str] = []
    lengths, headers = [], []
    # Sequences and qualities go straight into one buffer each, sized for the whole file (a plain FASTQ's bases
    # are at most half its bytes; gzip's about twice its size, grown if not): each page is written once, with
    # no per-batch copies to concatenate (on a guest whose new memory is slow to touch, that was half the parse).
    with open(path, "rb") as handle:
        gzipped = handle.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    size = os.path.getsize(path)
    capacity = max(2 * size if gzipped else size // 2, 1 << 16)
    seq, qual = np.empty(capacity, dtype=np.uint8), np.empty(capacity, dtype=np.uint8)
    used = 0
    for batch in iter_batches(whole_file(path)):
        ids.extend(mate_ids(batch.data, batch.name_start, batch.name_end))
        seq_len = np.ascontiguousarray(batch.seq_len, dtype=np.int64)
        more = int(seq_len.sum())
        seq, qual = _room(seq, used, more), _room(qual, used, more)
        gather_into(seq, used, batch.data, np.ascontiguousarray(batch.seq_start), seq_len, _UPPER)
        used = gather_into(qual, used, batch.data, np.ascontiguousarray(batch.qual_start), seq_len, _SAME)
        lengths.append(batch.seq_len)
        headers.append(batch.first_byte + batch.name_start - 1)  # the '@' of each record
    return (ids, seq[:used], qual[:used],
            offsets_from_lengths(np.concatenate(lengths) if lengths else np.zeros(0, np.int64)),
            np.concatenate(headers) if headers else np.zeros(0, np.int64))


def read_fastq(paths: Sequence[str | os.PathLike]) -> ReadBatch:
    """One FASTQ (single-end) or two (R1, R2: mates interleaved in the batch as 1, 2, 1, 2, ...). The mates
    must pair record by record, as the validator requires (same codes: PAIR_NAME_MISMATCH,
    PAIR_COUNT_MISMATCH)."""
    paths = [os.fspath(p) for p in paths]
    parsed = [_parse_fastq(p) for p in paths]
    if len(parsed) == 1:
        ids, seq, qual, offsets, _ = parsed[0]
        return ReadBatch(ids, np.zeros(len(ids), dtype=np.int8), seq, offsets, qual)
    (ids1, seq1, qual1, off1, headers1), (ids2, seq2, qual2, off2, headers2) = parsed
    if ids1 != ids2:
        common = min(len(ids1), len(ids2))
        record = next((i for i, (a, b) in enumerate(zip(ids1, ids2)) if a != b), common)
        if record < common:
            raise pair_name_mismatch(record + 1, ids1[record], ids2[record], paths[0], paths[1],
                                     int(headers1[record]), int(headers2[record]))
        longer = headers1 if len(ids1) > len(ids2) else headers2
        raise pair_count_mismatch((len(ids1), len(ids2)), (paths[0], paths[1]), int(longer[common]))
    mate1 = ReadBatch(ids1, np.ones(len(ids1), np.int8), seq1, off1, qual1)
    mate2 = ReadBatch(ids2, np.full(len(ids2), 2, np.int8), seq2, off2, qual2)
    return _interleave(mate1, mate2)


def _interleave(first: ReadBatch, second: ReadBatch) -> ReadBatch:
    n = len(first)
    combined = ReadBatch(first.ids + second.ids, np.concatenate([first.mates, second.mates]),
                         np.concatenate([first.seq, second.seq]),
                         np.concatenate([first.seq_offsets[:-1], second.seq_offsets + first.seq_offsets[-1]]),
                         np.concatenate([first.qual, second.qual]))
    order = np.empty(2 * n, dtype=np.int64)
    order[0::2] = np.arange(n)
    order[1::2] = np.arange(n) + n
    return combined.take(order)


def _check_embeddings(path: str, schema) -> None:
    """Refuse vectors built another way (EMBEDDING_MISMATCH): the construction in the schema metadata, and the
    stored form of the column (a file of an older version without metadata still holds its vectors as a list)."""
    expected = embedding.parquet_schema()
    metadata = schema.metadata or {}
    for key, value in expected.metadata.items():
        if key in metadata and metadata[key] != value:
            raise InvalidReads(f"embeddings were built with {key.decode()}={metadata[key].decode()}, "
                               f"this build expects {value.decode()} (run Phase 1 again with this build)",
                               code="EMBEDDING_MISMATCH", position=Position(file=path))
    field = schema.field("embedding") if "embedding" in schema.names else None
    if field is not None and field.type != expected.field("embedding").type:
        raise InvalidReads(f"the embedding column is {field.type}, this build expects "
                           f"{expected.field('embedding').type} (run Phase 1 again with this build)",
                           code="EMBEDDING_MISMATCH", position=Position(file=path))


def read_parquet(path: str | os.PathLike, fastqs: Sequence[str | os.PathLike] = ()) -> ReadBatch:
    """Phase 1's ``embeddings/<sample>.parquet`` with its trimmed reads: the codes from the Parquet, sequences and
    qualities from the trimmed FASTQ(s) ``fastqs``, by default the ones beside it in Phase 1's results layout
    (``helixflow.phase1.layout``). Row i of the Parquet must be read i of the FASTQ(s), mates interleaved; the
    read ids and mates are compared (READS_EMBEDDINGS_MISMATCH). A Parquet from a build that still stored
    ``sequence`` and ``quality`` is read alone when no FASTQ is given."""
    import pyarrow.parquet as pq

    path = os.fspath(path)
    parquet = pq.ParquetFile(path)
    _check_embeddings(path, parquet.schema_arrow)
    stored_reads = {"sequence", "quality"} <= set(parquet.schema_arrow.names)
    columns = ["read_id", "mate", "embedding"] + (["sequence", "quality"] if stored_reads and not fastqs else [])
    table = parquet.read(columns=columns)
    ids = column_mate_ids(table.column("read_id"))
    mates = table.column("mate").to_numpy().astype(np.int8)
    codes = embedding.codes_from_column(table.column("embedding"))
    if table.num_rows == 0:  # nothing to pair with reads (Phase 1 writes no Parquet when it keeps no read)
        return ReadBatch.empty()
    if "sequence" in columns:
        seq, offsets = _string_column(table.column("sequence"))
        qual, _ = _string_column(table.column("quality"))
        return ReadBatch(ids, mates, _upper(seq), offsets, qual, codes)
    fastqs = [os.fspath(p) for p in fastqs] or _reads_beside(path, paired=bool(mates.any()))
    batch = read_fastq(fastqs)
    _check_same_reads(path, fastqs, ids, mates, codes, batch)
    return batch


def _reads_beside(path: str, paired: bool) -> list[str]:
    found = reads_beside(path, paired)
    if found is None:
        raise InvalidReads(f"{path} holds the embeddings only; pass its trimmed FASTQ(s) after it (Phase 1 writes "
                           "them to reads/ beside embeddings/)", code="READS_NOT_FOUND", position=Position(file=path))
    for fastq in found:
        if not os.path.isfile(fastq):
            raise InvalidReads(f"the trimmed reads of {path} are not beside it: {fastq} not found (pass the "
                               "FASTQ(s) after the Parquet)", code="READS_NOT_FOUND", position=Position(file=fastq))
    return found


def _check_same_reads(path: str, fastqs: Sequence[str], ids: list[str], mates: np.ndarray, codes: np.ndarray,
                      batch: ReadBatch) -> None:
    """Row i of the embeddings is read i of the FASTQ(s): the same mate id and mate number, and the same sequence
    (its codes, computed again, equal the stored ones: the untrimmed input given for the trimmed reads differs
    wherever a read was trimmed). The batch keeps the stored codes."""
    def mismatch(row: int, what: str) -> InvalidReads:
        return InvalidReads(f"the embeddings are not those of {' and '.join(fastqs)}: {what}",
                            code="READS_EMBEDDINGS_MISMATCH", position=Position(file=path, record=row + 1))

    if ids != batch.ids or not np.array_equal(mates, batch.mates):
        common = min(len(ids), len(batch))
        row = next((i for i in range(common) if ids[i] != batch.ids[i] or mates[i] != batch.mates[i]), common)
        raise mismatch(row, f"row {row + 1} is read {ids[row]!r} (mate {mates[row]}) and the FASTQ's read "
                            f"{row + 1} is {batch.ids[row]!r} (mate {batch.mates[row]})" if row < common
                       else f"{len(ids)} rows against {len(batch)} reads")
    differs = np.flatnonzero((batch.embedding_codes() != codes).any(axis=1))
    if differs.size:
        row = int(differs[0])
        raise mismatch(row, f"read {ids[row]!r} at row {row + 1} has another sequence than the one Phase 1 "
                            "embedded (its trimmed reads are in reads/ beside embeddings/, not the input FASTQ)")
    batch.codes = codes


def read_reads(paths: Sequence[str | os.PathLike]) -> ReadBatch:
    """READS as the commands take them: Phase 1's embeddings Parquet (alone, its trimmed reads found beside it,
    or followed by its trimmed FASTQ(s)), or one or two FASTQ(.gz) files."""
    paths = [os.fspath(p) for p in paths]
    for p in paths:
        if not os.path.isfile(p):
            raise InvalidReads(f"reads file not found: {p}", code="READS_NOT_FOUND", position=Position(file=p))
    if any(p.endswith(".parquet") for p in paths[1:]):
        raise InvalidReads("pass one Parquet file, first", code="UNSUPPORTED_FORMAT")
    if paths[0].endswith(".parquet") and len(paths) <= 3:
        batch = read_parquet(paths[0], paths[1:])
    elif len(paths) in (1, 2):
        batch = read_fastq(paths)
    else:
        raise InvalidReads("pass one or two FASTQ files, after a Parquet file or alone", code="UNSUPPORTED_FORMAT")
    if len(batch) == 0:
        raise InvalidReads("no reads in the input", code="NO_READS", position=Position(file=paths[0]))
    return batch


@dataclass(frozen=True)
class Fragments:
    """Reads grouped into fragments: ``first[i]`` is a row, ``second[i]`` its mate's row or -1."""

    first: np.ndarray
    second: np.ndarray

    def __len__(self) -> int:
        return int(self.first.shape[0])


def fragments(ids: Sequence[str], mates: np.ndarray) -> Fragments:
    """Pair mate 1 and mate 2 rows by read id, in order of first appearance (mate 1 first in each pair)."""
    if not mates.any():  # single-end: each read its own fragment, without a Python step per read
        return Fragments(np.arange(len(ids), dtype=np.int64), np.full(len(ids), -1, dtype=np.int64))
    first: list[int] = []
    second: list[int] = []
    open_pairs: dict[str, int] = {}
    for row, (read_id, mate) in enumerate(zip(ids, mates.tolist())):
        if mate == 0:
            first.append(row)
            second.append(-1)
            continue
        slot = open_pairs.pop(read_id, None)
        if slot is None:
            open_pairs[read_id] = len(first)
            first.append(row)
            second.append(-1)
        elif mate == 1:
            second[slot] = first[slot]
            first[slot] = row
        else:
            second[slot] = row
    return Fragments(np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64))
