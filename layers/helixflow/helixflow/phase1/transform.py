"""The Phase 1 transform of one batch of records: QC before, trim and filter, QC after, embed.

``transform_batch`` is the whole per-batch pipeline and touches no file: it takes the records of one batch (one
``reader.RecordBatch``, or R1 and R2 batches holding the same records) and returns what the batch writes
(``BatchOutput``: the trimmed reads and the embeddings rows, each rendered where it is written) with the statistics it adds
(``BatchStats``; the embedding statistics are added when the rows are built). Runners feed it and write its
outputs: the whole-file and chunk runs in ``engine`` (what ``helixflow preprocess``, the Lambda chunk path and
the Ray job's tasks call). Because
``BatchStats.merge`` is exact, any split of a file into batches and any grouping of those batches gives the same
statistics, so runners may merge in whatever shape they like, as long as outputs stay in file order.

Order of operations per read (as fastp and cutadapt: quality before adapter): 5' window cut (optional),
3' window cut, trailing Ns, poly-G (optional), adapter (paired: mate overlap first, then the given sequence),
poly-X (optional), then the filters in fastp's order: low quality (more than 40% of bases below Q15), too
many Ns (> 5), too short, too long. A pair is kept or dropped whole; its outcome is the worse of its mates'.
Embeddings: ``helixflow.embedding`` (k-mer feature hashing, see there) of each kept read after trimming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from helixflow.phase1.kernels import output, sampling, trim
from helixflow.phase1.params import Params, adapter_array
from helixflow.phase1.reader import RecordBatch
from helixflow.phase1.stats import EmbeddingStats, HashSample, ReadSample, ReadStats, TrimStats, add_before_after
from helixflow.seq.hashing import GOLDEN_GAMMA

_OUTCOMES = 5  # trim.PASS .. trim.LOW_QUALITY


@dataclass
class BatchStats:
    """Mergeable statistics of the batches seen so far; the lists hold one entry per mate."""

    before: list[ReadStats]
    after: list[ReadStats]
    trim: TrimStats
    duplication: HashSample
    overrepresented: list[ReadSample]
    embedding: EmbeddingStats

    @classmethod
    def empty(cls, mates: int) -> BatchStats:
        return cls([ReadStats() for _ in range(mates)], [ReadStats() for _ in range(mates)], TrimStats(),
                   HashSample(), [ReadSample() for _ in range(mates)], EmbeddingStats())

    def merge(self, other: BatchStats) -> BatchStats:
        """Statistics of both (``other`` comes after ``self`` in file order)."""
        return BatchStats([a.merge(b) for a, b in zip(self.before, other.before)],
                          [a.merge(b) for a, b in zip(self.after, other.after)], self.trim.merge(other.trim),
                          self.duplication.merge(other.duplication),
                          [a.merge(b) for a, b in zip(self.overrepresented, other.overrepresented)],
                          self.embedding.merge(other.embedding))


@dataclass
class EmbeddingRows:
    """A batch's rows of ``embedding.parquet_schema()``, built by ``table`` where they are written: the engine's
    Parquet thread embeds the kept reads while the next batch is trimmed (the embedding kernels release the GIL),
    which took the embedding off the transform's path (a quarter of Phase 1 with embeddings)."""

    batches: Sequence[RecordBatch]
    fronts: list[np.ndarray]
    lengths: list[np.ndarray]
    selected: np.ndarray

    def table(self, stats: EmbeddingStats):
        """The kept reads' rows (a pyarrow Table; mates interleaved); adds their k-mer counts to ``stats``."""
        paired = len(self.batches) == 2
        return _interleave([_embedding_table(b, self.fronts[m], self.lengths[m], self.selected,
                                             m + 1 if paired else 0, stats) for m, b in enumerate(self.batches)])


@dataclass
class TrimmedReads:
    """A batch's trimmed FASTQ text, rendered by ``texts`` where it is written: the engine's FASTQ thread renders
    it (``render_fastq`` releases the GIL) while the next batch is trimmed, which took a ninth of the transform's
    thread off it."""

    batches: Sequence[RecordBatch]
    fronts: list[np.ndarray]
    lengths: list[np.ndarray]
    selected: np.ndarray

    def texts(self) -> list[np.ndarray]:
        """FASTQ text of the kept reads, per mate (uint8), in record order."""
        return [output.render_fastq(b.data, b.name_start, b.name_end, b.seq_start, b.qual_start, self.fronts[m],
                                    self.lengths[m], self.selected) for m, b in enumerate(self.batches)]


@dataclass
class BatchOutput:
    """What one batch writes, in record order."""

    fastq: TrimmedReads
    """The kept reads, trimmed, per mate."""
    embeddings: EmbeddingRows | None
    """The kept reads' embeddings rows, or None when ``params.embeddings`` is off."""


def transform_batch(batches: Sequence[RecordBatch], params: Params,
                    stats: BatchStats | None = None) -> tuple[BatchOutput, BatchStats]:
    """Transform one batch: ``batches`` is ``[records]`` for single-end input or ``[R1, R2]`` with the same
    records; ``params`` must be resolved (``params.resolve_params``). Returns the batch's outputs and its
    statistics. A runner that keeps one running accumulator passes it as ``stats``, which is then updated in
    place and returned (adding to it equals merging a fresh one, without the cost of a merge per batch); its
    ``embedding`` statistics grow when the runner builds the batch's ``EmbeddingRows.table``."""
    mates = len(batches)
    stats = BatchStats.empty(mates) if stats is None else stats
    n = batches[0].n
    name_hash = np.empty(n, np.uint64)
    sampling.hash_names(batches[0].data, batches[0].name_start, batches[0].name_end, name_hash)
    seq_hash = np.zeros(n, np.uint64)
    for m, b in enumerate(batches):
        stats.overrepresented[m].add(name_hash, b.data, b.seq_start, b.seq_len)
        h = np.empty(n, np.uint64)
        sampling.hash_sequences(b.data, b.seq_start, b.seq_len, h)
        # A pair's duplication key is both mates' sequences.
        seq_hash = h if m == 0 else (seq_hash * GOLDEN_GAMMA) ^ h
    stats.duplication.add(seq_hash)
    fronts, lengths, status = _trim(batches, params, stats.trim)
    stats.trim.status_counts += np.bincount(status, minlength=_OUTCOMES)[:_OUTCOMES] * mates
    selected = status == trim.PASS
    for m, b in enumerate(batches):
        add_before_after(stats.before[m], stats.after[m], b.data, b.seq_start, b.qual_start, b.seq_len, fronts[m],
                         lengths[m], selected)
    rows = EmbeddingRows(batches, fronts, lengths, selected) if params.embeddings else None
    return BatchOutput(TrimmedReads(batches, fronts, lengths, selected), rows), stats


def _trim(batches: Sequence[RecordBatch], params: Params, trim_stats: TrimStats):
    """Per mate the kept span of every read (fronts, lengths) and per record the filter outcome."""
    cfg = params.kernel_config()
    n = batches[0].n
    if len(batches) == 1:
        b = batches[0]
        front, length, adapter_at, adapter_bases, status = (np.empty(n, np.int64) for _ in range(5))
        trim.trim_single(b.data, b.seq_start, b.qual_start, b.seq_len, adapter_array(params.adapter), cfg,
                         params.adapter_error_rate, front, length, adapter_at, adapter_bases, status)
        trim_stats.add_adapter(0, adapter_at, adapter_bases)
        return [front], [length], status
    b1, b2 = batches
    f1, l1, a1, ab1, f2, l2, a2, ab2, status, insert = (np.empty(n, np.int64) for _ in range(10))
    trim.trim_pairs(b1.data, b1.seq_start, b1.qual_start, b1.seq_len, b2.data, b2.seq_start, b2.qual_start,
                    b2.seq_len, adapter_array(params.adapter), adapter_array(params.adapter2 or params.adapter),
                    cfg, params.adapter_error_rate, f1, l1, a1, ab1, f2, l2, a2, ab2, status, insert)
    trim_stats.add_adapter(0, a1, ab1)
    trim_stats.add_adapter(1, a2, ab2)
    trim_stats.add_inserts(insert)
    return [f1, f2], [l1, l2], status


def _embedding_table(batch: RecordBatch, front, lengths, selected, mate: int, stats: EmbeddingStats):
    import pyarrow as pa

    from helixflow import embedding

    ids, id_off = output.gather_ids(batch.data, batch.name_start, batch.name_end, selected)
    n = id_off.shape[0] - 1
    # The trimmed spans embedded where they lie in the batch (copying 300 MB of bases out first cost 0.5 s).
    codes, valid_kmers = embedding.embed_codes_spans(batch.data, (batch.seq_start + front)[selected],
                                                     lengths[selected])
    stats.add(valid_kmers)
    schema = embedding.parquet_schema()
    columns = [
        pa.StringArray.from_buffers(n, pa.py_buffer(id_off), pa.py_buffer(ids)),
        pa.array(np.full(n, mate, dtype=np.int8)),
        embedding.codes_column(codes),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _interleave(tables):
    """Mate rows alternate (R1 of a pair, then its R2) so the row order does not depend on batch boundaries."""
    import pyarrow as pa

    if len(tables) == 1:
        return tables[0]
    n = tables[0].num_rows
    order = np.empty(2 * n, dtype=np.int64)
    order[0::2] = np.arange(n)
    order[1::2] = np.arange(n) + n
    return pa.concat_tables(tables).take(pa.array(order))
