"""The Phase 1 engine: QC before and after filtering, trimming, filtering, embeddings, over batches of records.

Public API (what the CLI, the Ray job and the Lambda chunk path call)::

    params = resolve_params(Params(...), r1, r2)                  # fills in an auto-detected adapter, once per sample
    result = process_file(r1, r2, out_dir, sample, params)        # whole file: process + write_outputs
    result = process_chunk(chunk, params, parts_dir, part_name)   # one record-aligned chunk -> ChunkResult
    merged = merge_results([result_a, result_b, ...])            # in file order
    write_outputs(merged, out_dir, sample)                        # results layout of DESIGN.md
    ChunkResult.to_dict() / ChunkResult.from_dict(d)              # JSON-able, for Step Functions payloads

``chunk`` is a ``reader.Chunk`` (single-end) or a (R1 chunk, R2 chunk) tuple with the same records;
``reader.plan_chunks`` makes them. ``merge_results`` of the chunks of a file, written with ``write_outputs``,
gives the same decompressed reads, the same Parquet rows and the same JSON statistics as ``process_file``.

Order of operations per read (as fastp and cutadapt: quality before adapter): 5' window cut (optional),
3' window cut, trailing Ns, poly-G (optional), adapter (paired: mate overlap first, then the given sequence),
poly-X (optional), then the filters in fastp's order: low quality (more than 40% of bases below Q15), too
many Ns (> 5), too short, too long. A pair is kept or dropped whole; its outcome is the worse of its mates'.

Adapters: given sequences are matched at every position with substitutions only, at most
floor(0.1 x overlap) of them and an overlap of at least 3 bases (cutadapt's defaults without indels; indels in an
adapter are rare on Illumina and the substitution-only scan is several times faster). Single-end auto-detection
(``detect_adapter``) tries the known Illumina TruSeq, Nextera and small-RNA adapters on the first 100,000 reads
and takes the one found (whole, or as a prefix of >= 8 bases at the 3' end) in the most reads, if that is at
least 0.1% of them and 10 reads; random sequence matches in about 0.01%. Detection runs once per sample before
chunking, so every chunk trims with the same sequence.

Output compression: isal level 1 (the fastest deflate level that still compresses FASTQ about 3.5x), written
by a background thread; the output is one gzip member per chunk, so chunk outputs concatenate.
Embeddings: ``helixflow.embedding`` (k-mer feature hashing, see there) of each kept read after trimming.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from helixflow.errors import InvalidFastq, Position
from helixflow.phase1 import kernels
from helixflow.phase1.reader import Chunk, FastqReader, RecordBatch, iter_batches, slice_batch, whole_file
from helixflow.phase1.stats import EmbeddingStats, HashSample, ReadSample, ReadStats, TrimStats

COMPRESS_LEVEL = 1

KNOWN_ADAPTERS = {
    "Illumina TruSeq Read 1": "AGATCGGAAGAGCACACGTCTGAACTCCAGTCA",
    "Illumina TruSeq Read 2": "AGATCGGAAGAGCGTCGTGTAGGGAAAGAGTGT",
    "Nextera / Illumina DNA Prep": "CTGTCTCTTATACACATCT",
    "Illumina Small RNA 3'": "TGGAATTCTCGGGTGCCAAGG",
}
DETECT_READS = 100_000
DETECT_MIN_OVERLAP = 8
DETECT_MIN_FRACTION = 0.001
DETECT_MIN_READS = 10


@dataclass(frozen=True)
class Params:
    adapter: str | None = None
    adapter2: str | None = None
    detect_adapter: bool = True
    adapter_min_overlap: int = 3
    adapter_error_rate: float = 0.1
    quality: int = 20
    """3' sliding-window cut: minimum mean Phred of the window (0 = off)."""
    window: int = 4
    quality_front: int = 0
    """5' sliding-window cut (0 = off)."""
    window_front: int = 4
    poly_g: int = 0
    """Minimum poly-G run to trim at the 3' end (0 = off; 10 is fastp's)."""
    poly_x: int = 0
    qualified_quality: int = 15
    unqualified_percent: int = 40
    """Low-quality filter: drop reads with more than this percent of bases below ``qualified_quality`` (-1 = off)."""
    n_limit: int = 5
    min_length: int = 15
    max_length: int = 0
    overlap_require: int = 30
    overlap_diff_limit: int = 5
    overlap_diff_percent: int = 20
    embeddings: bool = True

    def kernel_config(self) -> np.ndarray:
        cfg = np.zeros(kernels.CFG_SIZE, dtype=np.int64)
        cfg[:] = [self.quality_front, self.window_front, self.quality, self.window, self.poly_g, self.poly_x,
                  self.adapter_min_overlap, self.qualified_quality, self.unqualified_percent, self.n_limit,
                  self.min_length, self.max_length, self.overlap_require, self.overlap_diff_limit,
                  self.overlap_diff_percent]
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)


def _adapter_array(seq: str | None) -> np.ndarray:
    return np.frombuffer((seq or "").upper().encode(), dtype=np.uint8)


def detect_adapter(path: str, reads: int = DETECT_READS) -> str | None:
    """The known adapter with the most evidence in the first ``reads`` reads (see the module docstring)."""
    hits = dict.fromkeys(KNOWN_ADAPTERS.values(), 0)
    seen = 0
    for batch in iter_batches(whole_file(path), decompress_thread=False):
        take = min(batch.n, reads - seen)
        for adapter in hits:
            hits[adapter] += kernels.count_adapter_hits(batch.data, batch.seq_start[:take], batch.seq_len[:take],
                                                        _adapter_array(adapter), DETECT_MIN_OVERLAP, 0.1)
        seen += take
        if seen >= reads:
            break
    if not seen:
        return None
    best = max(hits, key=lambda a: (hits[a], a))
    if hits[best] >= max(DETECT_MIN_READS, DETECT_MIN_FRACTION * seen):
        return best
    return None


def resolve_params(params: Params, r1: str, r2: str | None = None) -> Params:
    """Params every chunk of the sample must share: the auto-detected adapter (single-end only; pairs are cut
    by their overlap) is decided here, once."""
    if r2 is None and params.adapter is None and params.detect_adapter:
        return replace(params, adapter=detect_adapter(r1), detect_adapter=False)
    return replace(params, detect_adapter=False)


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
        out = ChunkResult(
            paired=out.paired, params=out.params, inputs=out.inputs,
            before=[a.merge(b) for a, b in zip(out.before, nxt.before)],
            after=[a.merge(b) for a, b in zip(out.after, nxt.after)],
            trim=out.trim.merge(nxt.trim), duplication=out.duplication.merge(nxt.duplication),
            overrepresented=[a.merge(b) for a, b in zip(out.overrepresented, nxt.overrepresented)],
            embedding=out.embedding.merge(nxt.embedding), reads_parts=out.reads_parts + nxt.reads_parts,
            embedding_parts=out.embedding_parts + nxt.embedding_parts)
    return out


def _parquet_writer(path: str, schema):
    """zstd level 1: the float16 vectors barely compress, so a cheap level; the list child keeps Arrow's name
    ("item") so the file's schema equals ``embedding.parquet_schema()`` when read back."""
    import pyarrow.parquet as pq

    # Min/max statistics of 256 float16 elements per row help no reader and cost a quarter of the write.
    return pq.ParquetWriter(path, schema, compression="zstd", compression_level=1, use_dictionary=False,
                            use_compliant_nested_type=False, write_statistics=["read_id", "mate"])


class _Writers:
    """Trimmed FASTQ.gz per mate and the embeddings Parquet of one chunk."""

    def __init__(self, parts_dir: str, part_name: str, mates: int, embeddings: bool, threads: int):
        from isal import igzip_threaded

        os.makedirs(parts_dir, exist_ok=True)
        self.fastq_paths = [os.path.join(parts_dir, f"{part_name}.R{m + 1}.fastq.gz") for m in range(mates)]
        self.fastq = [igzip_threaded.open(p, "wb", compresslevel=COMPRESS_LEVEL, threads=max(1, threads))
                      for p in self.fastq_paths]
        self.parquet_path = os.path.join(parts_dir, f"{part_name}.parquet") if embeddings else None
        self._parquet = None

    def write_embeddings(self, table) -> None:
        if self._parquet is None:
            self._parquet = _parquet_writer(self.parquet_path, table.schema)
        self._parquet.write_table(table)

    def close(self) -> None:
        for fh in self.fastq:
            fh.close()
        if self.parquet_path is not None:
            if self._parquet is None:
                from helixflow.embedding import parquet_schema

                self._parquet = _parquet_writer(self.parquet_path, parquet_schema())
            self._parquet.close()


def _embedding_table(batch: RecordBatch, front, lengths, selected, mate: int, stats: EmbeddingStats):
    import pyarrow as pa
    from helixflow import embedding

    ids, id_off, seqs, quals, seq_off = kernels.gather_columns(
        batch.data, batch.name_start, batch.name_end, batch.seq_start, batch.qual_start, front, lengths, selected)
    n = id_off.shape[0] - 1
    offsets64 = seq_off.astype(np.int64)
    vectors = embedding.embed_packed(seqs, offsets64).astype(embedding.STORAGE_DTYPE)
    stats.add(kernels.valid_kmer_counts(seqs, offsets64, embedding.K))
    schema = embedding.parquet_schema()
    columns = [
        pa.StringArray.from_buffers(n, pa.py_buffer(id_off), pa.py_buffer(ids)),
        pa.array(np.full(n, mate, dtype=np.int8)),
        pa.StringArray.from_buffers(n, pa.py_buffer(seq_off), pa.py_buffer(seqs)),
        pa.StringArray.from_buffers(n, pa.py_buffer(seq_off), pa.py_buffer(quals)),
        pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), embedding.DIMS),
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


def process_chunk(chunk: Chunk | tuple[Chunk, Chunk], params: Params, parts_dir: str, part_name: str = "part-00000",
                  *, threads: int = 1, progress: Callable[[int], None] | None = None) -> ChunkResult:
    """Process one record-aligned chunk (or a whole file: ``reader.whole_file(path)``); write its trimmed reads
    and embeddings under ``parts_dir`` and return its mergeable statistics. ``params`` must be resolved
    (``resolve_params``). ``progress`` receives the compressed input bytes consumed since the last call."""
    paired = isinstance(chunk, tuple)
    chunks = list(chunk) if paired else [chunk]
    mates = len(chunks)
    cfg = params.kernel_config()
    adapters = [_adapter_array(params.adapter), _adapter_array(params.adapter2 or params.adapter)]
    before = [ReadStats() for _ in range(mates)]
    after = [ReadStats() for _ in range(mates)]
    trim = TrimStats()
    dup = HashSample()
    overrep = [ReadSample() for _ in range(mates)]
    emb_stats = EmbeddingStats()
    writers = _Writers(parts_dir, part_name, mates, params.embeddings, threads)
    readers = [FastqReader(c) for c in chunks]
    last_pos = [r.compressed_position() for r in readers]
    try:
        while True:
            batches = _next_batches(readers)
            if batches is None:
                break
            n = batches[0].n
            name_hash = np.empty(n, np.uint64)
            kernels.hash_names(batches[0].data, batches[0].name_start, batches[0].name_end, name_hash)
            everything = np.ones(n, dtype=np.bool_)
            seq_hash = np.zeros(n, np.uint64)
            for m, b in enumerate(batches):
                before[m].add(b.data, b.seq_start, b.qual_start, b.seq_len, everything)
                overrep[m].add(name_hash, b.data, b.seq_start, b.seq_len)
                h = np.empty(n, np.uint64)
                kernels.hash_sequences(b.data, b.seq_start, b.seq_len, h)
                seq_hash = h if m == 0 else (seq_hash * np.uint64(0x9E3779B97F4A7C15)) ^ h
            dup.add(seq_hash)
            fronts, lengths, status = _trim(batches, adapters, cfg, params, trim)
            trim.status_counts += np.bincount(status, minlength=5)[:5] * mates
            selected = status == kernels.PASS
            tables = []
            for m, b in enumerate(batches):
                after[m].add(b.data, b.seq_start + fronts[m], b.qual_start + fronts[m], lengths[m], selected)
                text = kernels.render_fastq(b.data, b.name_start, b.name_end, b.seq_start, b.qual_start, fronts[m],
                                            lengths[m], selected)
                writers.fastq[m].write(memoryview(text))
                if params.embeddings:
                    tables.append(_embedding_table(b, fronts[m], lengths[m], selected, m + 1 if paired else 0,
                                                   emb_stats))
            if tables:
                writers.write_embeddings(_interleave(tables))
            if progress is not None:
                pos = [r.compressed_position() for r in readers]
                progress(sum(pos) - sum(last_pos))
                last_pos = pos
    finally:
        for r in readers:
            r.close()
        writers.close()
    return ChunkResult(paired=paired, params=params.to_dict(), inputs=[c.path for c in chunks], before=before,
                       after=after, trim=trim, duplication=dup, overrepresented=overrep, embedding=emb_stats,
                       reads_parts=[writers.fastq_paths],
                       embedding_parts=[writers.parquet_path] if writers.parquet_path else [])


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


def _trim(batches, adapters, cfg, params: Params, trim: TrimStats):
    n = batches[0].n
    if len(batches) == 1:
        b = batches[0]
        front = np.empty(n, np.int64)
        length = np.empty(n, np.int64)
        adapter_at = np.empty(n, np.int64)
        adapter_bases = np.empty(n, np.int64)
        status = np.empty(n, np.int64)
        kernels.trim_single(b.data, b.seq_start, b.qual_start, b.seq_len, adapters[0], cfg, params.adapter_error_rate,
                            front, length, adapter_at, adapter_bases, status)
        trim.add_adapter(0, adapter_at, adapter_bases)
        return [front], [length], status
    b1, b2 = batches
    out = [np.empty(n, np.int64) for _ in range(10)]
    f1, l1, a1, ab1, f2, l2, a2, ab2, status, insert = out
    kernels.trim_pairs(b1.data, b1.seq_start, b1.qual_start, b1.seq_len, b2.data, b2.seq_start, b2.qual_start,
                       b2.seq_len, adapters[0], adapters[1], cfg, params.adapter_error_rate, f1, l1, a1, ab1, f2, l2,
                       a2, ab2, status, insert)
    trim.add_adapter(0, a1, ab1)
    trim.add_adapter(1, a2, ab2)
    trim.add_inserts(insert)
    return [f1, f2], [l1, l2], status


def output_paths(out_dir: str, sample: str, paired: bool) -> dict[str, object]:
    reads = ([os.path.join(out_dir, "reads", f"{sample}_R{m}.trimmed.fastq.gz") for m in (1, 2)] if paired
             else [os.path.join(out_dir, "reads", f"{sample}.trimmed.fastq.gz")])
    return {
        "reads": reads,
        "embeddings": os.path.join(out_dir, "embeddings", f"{sample}.parquet"),
        "fastp_json": os.path.join(out_dir, "qc", f"{sample}.fastp.json"),
        "mqc_json": os.path.join(out_dir, "qc", f"{sample}_mqc.json"),
        "html": os.path.join(out_dir, "qc", f"{sample}.report.html"),
    }


def write_outputs(result: ChunkResult, out_dir: str, sample: str, *, move_parts: bool = True) -> dict[str, object]:
    """Write the results layout under ``out_dir``: concatenated reads and embeddings from the parts (moved
    when there is a single part and ``move_parts``), the fastp JSON, the MultiQC custom content and the HTML
    report. Returns the paths written."""
    from helixflow.phase1 import report

    paths = output_paths(out_dir, sample, result.paired)
    for sub in ("reads", "qc") + (("embeddings",) if result.embedding_parts else ()):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    for mate, target in enumerate(paths["reads"]):
        _concat_files([part[mate] for part in result.reads_parts], target, move_parts)
    if result.embedding_parts:
        _concat_parquet(result.embedding_parts, paths["embeddings"], move_parts)
    else:
        paths.pop("embeddings")
    report.write_reports(result, sample, paths)
    return paths


def _concat_files(parts: list[str], target: str, move: bool) -> None:
    if len(parts) == 1 and move:
        os.replace(parts[0], target)
        return
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)


def _concat_parquet(parts: list[str], target: str, move: bool) -> None:
    import pyarrow.parquet as pq

    if len(parts) == 1 and move:
        os.replace(parts[0], target)
        return
    writer = None
    try:
        for part in parts:
            source = pq.ParquetFile(part)
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
