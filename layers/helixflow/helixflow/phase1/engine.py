"""The Phase 1 runners: whole files and record-aligned chunks through ``transform.transform_batch``.

Public API (what the CLI, the Ray job and the Lambda chunk path call)::

    params = resolve_params(Params(...), r1, r2)                  # fills in an auto-detected adapter, once per sample
    result = process_file(r1, r2, out_dir, sample, params)        # whole file: process + write_outputs
    result = process_chunk(chunk, params, parts_dir, part_name)   # one record-aligned chunk -> ChunkResult
    merged = merge_results([result_a, result_b, ...])            # in file order
    write_outputs(merged, out_dir, sample)                        # README's results layout
    ChunkResult.to_dict() / ChunkResult.from_dict(d)              # JSON-able, for Step Functions payloads

``chunk`` is a ``reader.Chunk`` (single-end) or a (R1 chunk, R2 chunk) tuple with the same records;
``reader.plan_chunks`` makes them. ``merge_results`` of the chunks of a file, written with ``write_outputs``,
gives the same decompressed reads, the same Parquet rows and the same JSON statistics as ``process_file``.
What happens to each read is ``transform`` (the per-batch transform) and ``params`` (options, adapter
detection); this module reads batches, writes what the transform returns and keeps the statistics.

Output compression: isal level 1 (the fastest deflate level that still compresses FASTQ about 3.5x), written
by a background thread; the output is one gzip member per chunk, so chunk outputs concatenate.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from helixflow.errors import InvalidFastq, Position
from helixflow.phase1.layout import output_paths
from helixflow.phase1.params import Params, resolve_params
from helixflow.phase1.reader import Chunk, FastqReader, RecordBatch, slice_batch, whole_file
from helixflow.phase1.stats import EmbeddingStats, HashSample, ReadSample, ReadStats, TrimStats
from helixflow.phase1.transform import BatchOutput, BatchStats, EmbeddingRows, TrimmedReads, transform_batch

COMPRESS_LEVEL = 1

@dataclass
class ChunkResult:
    paired: bool
    params: dict
    inputs: list[str]
    before: list[ReadStats]
    after: list[ReadStats]
    trim: TrimStats
    duplication: HashSample
    overrepresented: list[ReadSample]
    embedding: EmbeddingStats
    reads_parts: list[list[str]] = field(default_factory=list)
    """Per part, the gzip files (one per mate) in file order."""
    embedding_parts: list[str] = field(default_factory=list)

    @property
    def stats(self) -> BatchStats:
        return BatchStats(self.before, self.after, self.trim, self.duplication, self.overrepresented,
                          self.embedding)

    @classmethod
    def of(cls, paired: bool, params: dict, inputs: list[str], stats: BatchStats, reads_parts: list[list[str]],
           embedding_parts: list[str]) -> ChunkResult:
        return cls(paired=paired, params=params, inputs=inputs, before=stats.before, after=stats.after,
                   trim=stats.trim, duplication=stats.duplication, overrepresented=stats.overrepresented,
                   embedding=stats.embedding, reads_parts=reads_parts, embedding_parts=embedding_parts)

    def to_dict(self) -> dict:
        return {
            "paired": self.paired, "params": self.params, "inputs": self.inputs,
            "before": [s.to_dict() for s in self.before], "after": [s.to_dict() for s in self.after],
            "trim": self.trim.to_dict(), "duplication": self.duplication.to_dict(),
            "overrepresented": [s.to_dict() for s in self.overrepresented],
            "embedding": self.embedding.to_dict(), "reads_parts": self.reads_parts,
            "embedding_parts": self.embedding_parts,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ChunkResult":
        return cls(paired=d["paired"], params=d["params"], inputs=d["inputs"],
                   before=[ReadStats.from_dict(x) for x in d["before"]],
                   after=[ReadStats.from_dict(x) for x in d["after"]], trim=TrimStats.from_dict(d["trim"]),
                   duplication=HashSample.from_dict(d["duplication"]),
                   overrepresented=[ReadSample.from_dict(x) for x in d["overrepresented"]],
                   embedding=EmbeddingStats.from_dict(d["embedding"]), reads_parts=d["reads_parts"],
                   embedding_parts=d["embedding_parts"])


def merge_results(results: Sequence[ChunkResult]) -> ChunkResult:
    """Merge chunk results given in file order (statistics add; output parts are listed in order)."""
    if not results:
        raise ValueError("nothing to merge")
    out = results[0]
    for nxt in results[1:]:
        out = ChunkResult.of(out.paired, out.params, out.inputs, out.stats.merge(nxt.stats),
                             out.reads_parts + nxt.reads_parts, out.embedding_parts + nxt.embedding_parts)
    return out


def _parquet_writer(path: str, schema):
    """zstd level 1 (level 3 saves 2% of the file for 1.5x the time); no dictionary (read ids, reads and codes
    are nearly all distinct, so the dictionary is built and then abandoned) and statistics on the key columns
    only (min/max of sequences, qualities and codes help no reader)."""
    import pyarrow.parquet as pq

    return pq.ParquetWriter(path, schema, compression="zstd", compression_level=1, use_dictionary=False,
                            write_statistics=["read_id", "mate"])


class _WriterThread:
    """``write(item)`` for every item put, then ``finish()``, on a thread of their own, so that the caller
    transforms the next batch meanwhile. At most two items wait; an error surfaces at the next ``put`` or at
    ``close`` (after a failure the thread drains the queue without writing, so no ``put`` blocks, and still
    finishes, which closes its files)."""

    def __init__(self, name: str, write: Callable[[object], None], finish: Callable[[], None]):
        import queue
        import threading

        self._write, self._finish = write, finish
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as error:  # noqa: BLE001 - re-raised on the caller's thread
                    self._error = error
        try:
            self._finish()
        except BaseException as error:  # noqa: BLE001 - re-raised on the caller's thread
            self._error = self._error or error

    def put(self, item: object) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class _ParquetRows:
    """The embeddings Parquet of one chunk, written on a ``_WriterThread``: each batch's rows are built there (the
    embedding kernels release the GIL) and written (pyarrow encodes and compresses without it) while the next
    batch is transformed; the write was a third of Phase 1 with embeddings. The rows' statistics go to ``stats``,
    which the caller reads after the thread is closed."""

    def __init__(self, path: str, stats: EmbeddingStats):
        self.path, self.stats, self._writer = path, stats, None

    def write(self, rows: EmbeddingRows) -> None:
        from helixflow.embedding import parquet_schema

        self._writer = self._writer or _parquet_writer(self.path, parquet_schema())
        self._writer.write_table(rows.table(self.stats))

    def finish(self) -> None:
        from helixflow.embedding import parquet_schema

        (self._writer or _parquet_writer(self.path, parquet_schema())).close()


class _Writers:
    """Trimmed FASTQ.gz per mate and the embeddings Parquet of one chunk, each on a ``_WriterThread``. The FASTQ
    thread hands the text to isal's compressor, whose queue holds one 1 MiB block: written from the transform's
    thread, that queue kept it waiting (1.8 s of 2 M reads at --threads 1)."""

    def __init__(self, parts_dir: str, part_name: str, mates: int, embeddings: EmbeddingStats | None, threads: int):
        from isal import igzip_threaded

        os.makedirs(parts_dir, exist_ok=True)
        self.fastq_paths = [os.path.join(parts_dir, f"{part_name}.R{m + 1}.fastq.gz") for m in range(mates)]
        self.fastq = [igzip_threaded.open(p, "wb", compresslevel=COMPRESS_LEVEL, threads=max(1, threads))
                      for p in self.fastq_paths]
        self._fastq = _WriterThread("fastq-writer", self._write_fastq, self._close_fastq)
        self.parquet_path = os.path.join(parts_dir, f"{part_name}.parquet") if embeddings is not None else None
        parquet = _ParquetRows(self.parquet_path, embeddings) if embeddings is not None else None
        self._parquet = _WriterThread("parquet-writer", parquet.write, parquet.finish) if parquet else None

    def _write_fastq(self, reads: TrimmedReads) -> None:
        for handle, text in zip(self.fastq, reads.texts()):
            handle.write(memoryview(text))

    def _close_fastq(self) -> None:
        for handle in self.fastq:
            handle.close()

    def write(self, out: BatchOutput) -> None:
        self._fastq.put(out.fastq)
        if out.embeddings is not None:
            self._parquet.put(out.embeddings)

    def close(self) -> None:
        try:
            self._fastq.close()
        finally:
            if self._parquet is not None:
                self._parquet.close()


def process_chunk(chunk: Chunk | tuple[Chunk, Chunk], params: Params, parts_dir: str, part_name: str = "part-00000",
                  *, threads: int = 1, progress: Callable[[int], None] | None = None) -> ChunkResult:
    """Process one record-aligned chunk (or a whole file: ``reader.whole_file(path)``); write its trimmed reads
    and embeddings under ``parts_dir`` and return its mergeable statistics. ``params`` must be resolved
    (``resolve_params``). ``progress`` receives the compressed input bytes consumed since the last call."""
    paired = isinstance(chunk, tuple)
    chunks = list(chunk) if paired else [chunk]
    stats = BatchStats.empty(len(chunks))
    # The Parquet thread adds the embedding statistics to ``stats`` (read after writers.close()).
    writers = _Writers(parts_dir, part_name, len(chunks), stats.embedding if params.embeddings else None, threads)
    readers = [FastqReader(c) for c in chunks]
    last_pos = [r.compressed_position() for r in readers]
    try:
        while (batches := _next_batches(readers)) is not None:
            out, stats = transform_batch(batches, params, stats)
            writers.write(out)
            if progress is not None:
                pos = [r.compressed_position() for r in readers]
                progress(sum(pos) - sum(last_pos))
                last_pos = pos
    finally:
        for r in readers:
            r.close()
        writers.close()
    return ChunkResult.of(paired, params.to_dict(), [c.path for c in chunks], stats, [writers.fastq_paths],
                          [writers.parquet_path] if writers.parquet_path else [])


def _next_batches(readers: list[FastqReader]) -> list[RecordBatch] | None:
    first = readers[0].next_batch()
    if len(readers) == 1:
        return None if first is None else [first]
    second = readers[1].next_batch(limit=first.n if first is not None else 1)
    if first is None and second is None:
        return None
    if first is None or second is None:
        shorter = readers[0] if first is None else readers[1]
        longer_batch = second if first is None else first
        raise InvalidFastq("the mates have different numbers of records", code="PAIR_COUNT_MISMATCH",
                           position=Position(file=shorter.chunk.path, record=longer_batch.first_record + 1))
    if second.n < first.n:
        readers[0].push_back(first, second.n)
        first = slice_batch(first, 0, second.n)
    return [first, second]


def write_outputs(result: ChunkResult, out_dir: str, sample: str, *, move_parts: bool = True,
                  open_part: Callable[[str], BinaryIO] | None = None,
                  written: Callable[[str], None] | None = None, joined: Collection[str] = ()) -> dict[str, object]:
    """Write the results layout under ``out_dir``: concatenated reads and embeddings from the parts (moved
    when there is a single local part and ``move_parts``), the fastp JSON and the MultiQC custom content.
    ``open_part`` opens a part by its name (default: a local path; MergeChunks reads them from S3, so the parts
    never land on its scratch disk); ``written`` is told each file's path as soon as the file is complete;
    the files of ``joined`` (paths relative to ``out_dir``) are not written here: the caller joins their parts
    itself (MergeChunks, server-side). Returns the layout's paths."""
    from helixflow.phase1 import report

    paths = output_paths(out_dir, sample, result.paired)
    for sub in ("reads", "qc") + (("embeddings",) if result.embedding_parts else ()):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    move = move_parts and open_part is None
    opener = open_part or (lambda name: open(name, "rb"))
    done = written or (lambda path: None)
    caller_joins = {os.path.join(out_dir, relative) for relative in joined}
    for mate, target in enumerate(paths["reads"]):
        if target not in caller_joins:
            _concat_files([part[mate] for part in result.reads_parts], target, move, opener)
            done(target)
    if not result.embedding_parts:
        paths.pop("embeddings")
    elif paths["embeddings"] not in caller_joins:
        _concat_parquet(result.embedding_parts, paths["embeddings"], move, opener)
        done(paths["embeddings"])
    report.write_reports(result, sample, paths)
    done(paths["fastp_json"])
    done(paths["mqc_json"])
    return paths


def _concat_files(parts: list[str], target: str, move: bool, opener: Callable[[str], BinaryIO]) -> None:
    if len(parts) == 1 and move:
        os.replace(parts[0], target)
        return
    with open(target, "wb") as out:
        for part in parts:
            with opener(part) as src:
                shutil.copyfileobj(src, out, 1 << 22)


def _concat_parquet(parts: list[str], target: str, move: bool, opener: Callable[[str], BinaryIO]) -> None:
    import pyarrow.parquet as pq

    if len(parts) == 1 and move:
        os.replace(parts[0], target)
        return
    writer = None
    try:
        for part in parts:
            with opener(part) as handle:
                source = pq.ParquetFile(handle)
                if writer is None:
                    writer = _parquet_writer(target, source.schema_arrow)
                for group in range(source.num_row_groups):
                    writer.write_table(source.read_row_group(group))
    finally:
        if writer is not None:
            writer.close()


def process_file(r1: str, r2: str | None, out_dir: str, sample: str, params: Params = Params(), *,
                 threads: int = 1, progress: Callable[[int], None] | None = None) -> ChunkResult:
    """Whole-file run: resolve params, process the file as one chunk, write the results layout."""
    params = resolve_params(params, r1, r2)
    chunk = (whole_file(r1), whole_file(r2)) if r2 else whole_file(r1)
    parts_dir = os.path.join(out_dir, ".parts")
    result = process_chunk(chunk, params, parts_dir, "part-00000", threads=threads, progress=progress)
    write_outputs(result, out_dir, sample)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return result
