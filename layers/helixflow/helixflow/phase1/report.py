"""Phase 1 reports from merged statistics: fastp-compatible JSON and MultiQC custom content.

The JSON follows fastp's key layout (summary.before_filtering/after_filtering, filtering_result, duplication,
insert_size, adapter_cutting, read1_before_filtering/... with quality_curves and content_curves), so MultiQC's
fastp module reads it; the sample name reaches MultiQC through ``--report_title`` in ``command``, as with
fastp. Extra curves fastp does not have (quality quartiles, length and mean-quality histograms, adapter
content) sit under the same sections with their own keys, which MultiQC ignores. The run's HTML report is
MultiQC's, built from these by the BuildReport state (helixflow.pipeline.run_report).
"""

from __future__ import annotations

import json

import numpy as np

from helixflow import __version__
from helixflow.phase1.stats import ReadStats

_BASE_ORDER = (("A", 0), ("T", 3), ("C", 1), ("G", 2))


def _r(x: float) -> float:
    return round(float(x), 6)


def _ratio(a: np.ndarray, b: np.ndarray) -> list[float]:
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(b > 0, a / np.maximum(b, 1), 0.0)
    return [_r(v) for v in out]


def quality_quartiles(stats: ReadStats) -> dict[str, list[int]]:
    cum = np.cumsum(stats.qual_hist, axis=1)
    total = cum[:, -1:]
    out = {}
    for name, p in (("q1", 0.25), ("median", 0.5), ("q3", 0.75)):
        out[name] = (cum < np.maximum(np.ceil(total * p), 1)).sum(axis=1).astype(int).tolist()
    return out


def _summary(stats: list[ReadStats]) -> dict:
    reads = sum(s.reads for s in stats)
    bases = sum(s.bases for s in stats)
    q20 = sum(s.bases_at_least(20) for s in stats)
    q30 = sum(s.bases_at_least(30) for s in stats)
    out = {"total_reads": reads, "total_bases": bases, "q20_bases": q20, "q30_bases": q30,
           "q20_rate": _r(q20 / bases) if bases else 0.0, "q30_rate": _r(q30 / bases) if bases else 0.0}
    for m, s in enumerate(stats):
        out[f"read{m + 1}_mean_length"] = s.bases // s.reads if s.reads else 0
    gc = sum(s.gc_bases for s in stats)
    out["gc_content"] = _r(gc / bases) if bases else 0.0
    return out


def _section(s: ReadStats, overrepresented: dict, adapter_positions: np.ndarray | None) -> dict:
    cycles = s.max_length
    counts = s.base_counts[:cycles]
    per_pos = counts.sum(axis=1)
    qsum = (s.qual_hist[:cycles] * np.arange(s.qual_hist.shape[1])).sum(axis=1)
    quality = {b: _ratio(s.base_qual_sum[:cycles, i], counts[:, i]) for b, i in _BASE_ORDER}
    quality["mean"] = _ratio(qsum, per_pos)
    content = {b: _ratio(counts[:, i], per_pos) for b, i in _BASE_ORDER}
    content["N"] = _ratio(counts[:, 4], per_pos)
    content["GC"] = _ratio(counts[:, 1] + counts[:, 2], per_pos)
    out = {
        "total_reads": s.reads, "total_bases": s.bases, "q20_bases": s.bases_at_least(20),
        "q30_bases": s.bases_at_least(30), "total_cycles": cycles, "quality_curves": quality,
        "content_curves": content, "overrepresented_sequences": overrepresented,
        "quality_quartiles": quality_quartiles(ReadStats(qual_hist=s.qual_hist[:cycles])),
        "length_histogram": s.len_hist[: cycles + 1].astype(int).tolist(),
        "mean_quality_histogram": s.mean_qual_hist.astype(int).tolist(),
    }
    if adapter_positions is not None:
        cumulative = np.cumsum(_fit(adapter_positions, cycles))
        out["adapter_content"] = [_r(v) for v in (cumulative / s.reads if s.reads else cumulative * 0.0)]
    return out


def _fit(a: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    k = min(n, a.shape[0])
    out[:k] = a[:k]
    return out


def fastp_json(result, sample: str) -> dict:
    mates = len(result.before)
    params = result.params
    command = ["helixflow", "preprocess", "--report_title", sample, "--in1", result.inputs[0]]
    if mates == 2:
        command += ["--in2", result.inputs[1]]
    before_reads = sum(s.reads for s in result.before)
    cycles = " + ".join(f"{s.max_length} cycles" for s in result.before)
    doc = {
        "summary": {
            "helixflow_version": __version__,
            "sequencing": f"{'paired' if mates == 2 else 'single'} end ({cycles})",
            "before_filtering": _summary(result.before),
            "after_filtering": _summary(result.after),
        },
    }
    sc = result.trim.status_counts
    doc["filtering_result"] = {"passed_filter_reads": int(sc[0]), "low_quality_reads": int(sc[4]),
                               "too_many_N_reads": int(sc[1]), "too_short_reads": int(sc[2]),
                               "too_long_reads": int(sc[3])}
    rate, hist = result.duplication.duplication()
    doc["duplication"] = {"rate": _r(rate), "histogram": hist}
    if mates == 2:
        ins = result.trim.insert_size_hist
        doc["insert_size"] = {"peak": int(np.argmax(ins)) if ins.size else 0,
                              "unknown": int(result.trim.insert_unknown[0]), "histogram": ins.astype(int).tolist()}
    cutting = {"adapter_trimmed_reads": int(result.trim.adapter_reads[:mates].sum()),
               "adapter_trimmed_bases": int(result.trim.adapter_bases[:mates].sum()),
               "read1_adapter_sequence": params.get("adapter") or "unspecified"}
    if mates == 2:
        cutting["read2_adapter_sequence"] = params.get("adapter2") or params.get("adapter") or "unspecified"
    doc["adapter_cutting"] = cutting
    positions = result.trim.adapter_position_hist
    for m in range(mates):
        over = result.overrepresented[m].overrepresented(result.before[m].reads)
        doc[f"read{m + 1}_before_filtering"] = _section(result.before[m], over, positions[:, m])
        doc[f"read{m + 1}_after_filtering"] = _section(result.after[m], {}, None)
    doc["helixflow"] = {"params": params, "embedding": _embedding_summary(result)}
    doc["command"] = " ".join(command)
    return doc


def _embedding_summary(result) -> dict:
    from helixflow import embedding

    emb = result.embedding
    hist = emb.valid_kmer_hist
    mean = float((hist * np.arange(hist.shape[0])).sum() / emb.reads) if emb.reads else 0.0
    return {"reads_embedded": emb.reads, "dims": embedding.DIMS, "k": embedding.K,
            "embedding_version": embedding.EMBEDDING_VERSION, "zero_vectors": emb.zero_vectors,
            "mean_valid_kmers": _r(mean)}


def mqc_json(result, sample: str) -> dict:
    summary = _embedding_summary(result)
    hist = result.embedding.valid_kmer_hist
    return {
        "id": "helixflow_embeddings",
        "section_name": "helixflow k-mer embeddings",
        "description": (f"One {summary['dims']}-dimensional vector per kept read from its canonical {summary['k']}-mers "
                        "(signed feature hashing, L2-normalised). Zero vectors are reads without a k-mer free of N."),
        "plot_type": "table",
        "pconfig": {"id": "helixflow_embeddings_table", "title": "helixflow: embeddings"},
        "data": {sample: {"reads_embedded": summary["reads_embedded"], "dims": summary["dims"], "k": summary["k"],
                          "zero_vectors": summary["zero_vectors"], "mean_valid_kmers": summary["mean_valid_kmers"],
                          "max_valid_kmers": int(hist.shape[0] - 1) if hist.size else 0}},
    }


def write_reports(result, sample: str, paths: dict) -> dict:
    doc = fastp_json(result, sample)
    # One line: Athena's JSON SerDe reads one object per line (the catalog's qc table, infra/catalog.yaml).
    with open(paths["fastp_json"], "w") as fh:
        fh.write(json.dumps(doc) + "\n")
    with open(paths["mqc_json"], "w") as fh:
        json.dump(mqc_json(result, sample), fh, indent=2)
    return doc
