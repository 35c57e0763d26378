"""Phase 1 reports from merged statistics: fastp-compatible JSON, MultiQC custom content, self-contained HTML.

The JSON follows fastp's key layout (summary.before_filtering/after_filtering, filtering_result, duplication,
insert_size, adapter_cutting, read1_before_filtering/... with quality_curves and content_curves), so MultiQC's
fastp module reads it; the sample name reaches MultiQC through ``--report_title`` in ``command``, as with
fastp. Extra curves fastp does not have (quality quartiles, length and mean-quality histograms, adapter
content) sit under the same sections with their own keys, which MultiQC ignores. The HTML page draws inline
SVG and loads nothing from the network.
"""

from __future__ import annotations

import html
import json
import math

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


# --------------------------------------------------------------------------------------------------- HTML

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")


def _nice_ticks(lo: float, hi: float, target: int = 5) -> tuple[float, float, float]:
    """A round step (1, 2, 2.5 or 5 x 10^k) and the axis range widened to whole steps, so tick labels read
    like 0, 500, 1,000 rather than 0, 71.2, 142."""
    raw = (hi - lo) / max(target - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step, math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step


def _tick_label(value: float, step: float) -> str:
    decimals = len(f"{step:.6f}".rstrip("0").split(".")[1])  # as many as the step needs
    return f"{value:,.{decimals}f}"


def svg_lines(title: str, series: dict[str, list[float]], xlabel: str, ylabel: str, *, width: int = 640,
              height: int = 260, ymin: float | None = None, ymax: float | None = None, x0: int = 1) -> str:
    """A line chart as inline SVG. Each series is y values at x = x0, x0 + 1, ..."""
    series = {k: v for k, v in series.items() if len(v)}
    left, right, top, bottom = 56, 150, 28, 40
    pw, ph = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="{width / 2}" y="18" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>']
    if not series:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    n = max(len(v) for v in series.values())
    lo = min(min(v) for v in series.values()) if ymin is None else ymin
    hi = max(max(v) for v in series.values()) if ymax is None else ymax
    if hi <= lo:
        hi = lo + 1
    step, nice_lo, nice_hi = _nice_ticks(lo, hi)
    lo = nice_lo if ymin is None else lo
    hi = nice_hi if ymax is None else hi
    sx = pw / max(n - 1, 1)

    def y(v):
        return top + ph - (v - lo) / (hi - lo) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for i in range(int(round((hi - lo) / step)) + 1):
        v = lo + i * step
        if v > hi + 1e-9:
            break
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10">'
                     f'{_tick_label(v, step)}</text>')
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
    for i in range(6):
        xi = (n - 1) * i / 5
        parts.append(f'<text x="{left + xi * sx:.1f}" y="{top + ph + 14}" text-anchor="middle" '
                     f'font-size="10">{int(x0 + xi)}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="11">'
                 f'{html.escape(xlabel)}</text>')
    parts.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" font-size="11" '
                 f'transform="rotate(-90 14 {top + ph / 2})">{html.escape(ylabel)}</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        points = " ".join(f"{left + i * sx:.1f},{y(v):.1f}" for i, v in enumerate(values) if math.isfinite(v))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        ly = top + 12 + 16 * k
        parts.append(f'<line x1="{left + pw + 10}" x2="{left + pw + 26}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                     f'stroke-width="3"/><text x="{left + pw + 30}" y="{ly + 4}" font-size="11">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def html_report(doc: dict, sample: str) -> str:
    mates = 2 if "read2_before_filtering" in doc else 1
    b, a = doc["summary"]["before_filtering"], doc["summary"]["after_filtering"]
    summary_rows = [(k.replace("_", " "), f"{b[k]:,}" if isinstance(b[k], int) else _pct(b[k]),
                     f"{a[k]:,}" if isinstance(a[k], int) else _pct(a[k]))
                    for k in ("total_reads", "total_bases", "q20_rate", "q30_rate", "gc_content")]
    fr = doc["filtering_result"]
    filter_rows = [(k.replace("_", " "), f"{v:,}") for k, v in fr.items()]
    cut = doc["adapter_cutting"]
    extra_rows = [("duplication rate (sampled estimate)", _pct(doc["duplication"]["rate"])),
                  ("adapter-trimmed reads", f"{cut['adapter_trimmed_reads']:,}"),
                  ("adapter-trimmed bases", f"{cut['adapter_trimmed_bases']:,}"),
                  ("adapter (read 1)", cut["read1_adapter_sequence"])]
    charts = []
    for m in range(1, mates + 1):
        before, after = doc[f"read{m}_before_filtering"], doc[f"read{m}_after_filtering"]
        qq = before["quality_quartiles"]
        charts.append(svg_lines(f"Read {m}: quality per position", {
            "mean before": before["quality_curves"]["mean"], "mean after": after["quality_curves"]["mean"],
            "Q1 before": qq["q1"], "median before": qq["median"], "Q3 before": qq["q3"]},
            "position (bp)", "Phred", ymin=0))
        charts.append(svg_lines(f"Read {m}: base content per position (before)", {
            k: before["content_curves"][k] for k in ("A", "T", "C", "G", "N", "GC")},
            "position (bp)", "fraction", ymin=0, ymax=1))
        charts.append(svg_lines(f"Read {m}: GC per position", {
            "before": before["content_curves"]["GC"], "after": after["content_curves"]["GC"]},
            "position (bp)", "GC fraction", ymin=0, ymax=1))
        charts.append(svg_lines(f"Read {m}: read length", {
            "before": before["length_histogram"], "after": after["length_histogram"]},
            "length (bp)", "reads", ymin=0, x0=0))
        charts.append(svg_lines(f"Read {m}: mean quality per read", {
            "before": before["mean_quality_histogram"], "after": after["mean_quality_histogram"]},
            "mean Phred", "reads", ymin=0, x0=0))
        charts.append(svg_lines(f"Read {m}: adapter content (reads with an adapter starting at or before)", {
            "adapter": before.get("adapter_content", [])}, "position (bp)", "fraction", ymin=0))
    charts.append(svg_lines("Duplication level (sampled distinct sequences)",
                            {"sequences": doc["duplication"]["histogram"]}, "copies", "sequences", ymin=0))
    if "insert_size" in doc:
        charts.append(svg_lines("Insert size (overlapping pairs)", {"pairs": doc["insert_size"]["histogram"]},
                                "insert (bp)", "pairs", ymin=0, x0=0))
    over = []
    for m in range(1, mates + 1):
        for seq, count in doc[f"read{m}_before_filtering"]["overrepresented_sequences"].items():
            over.append((f"read {m}", seq, f"{count:,}"))
    emb = doc["helixflow"]["embedding"]
    emb_rows = [(k.replace("_", " "), str(v)) for k, v in emb.items()]
    style = ("body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 20px}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}"
             "svg{display:block;margin:10px 0}h2{border-bottom:1px solid #ddd}")
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>helixflow Phase 1: {html.escape(sample)}</title><style>{style}</style></head><body>",
        f"<h1>helixflow Phase 1 report: {html.escape(sample)}</h1>",
        f"<p>{html.escape(doc['summary']['sequencing'])}; helixflow {html.escape(__version__)}</p>",
        "<h2>Summary</h2>", _table(summary_rows, ("", "before filtering", "after filtering")),
        "<h2>Filtering</h2>", _table(filter_rows, ("result", "reads")), _table(extra_rows, ("", "")),
        "<h2>Plots</h2>", "".join(charts),
        "<h2>Overrepresented sequences (before filtering)</h2>",
        _table(over, ("mate", "sequence (first 50 bp)", "estimated reads")) if over else "<p>none</p>",
        "<h2>Embeddings</h2>", _table(emb_rows, ("", "")),
        "</body></html>",
    ])


def write_reports(result, sample: str, paths: dict) -> dict:
    doc = fastp_json(result, sample)
    # One line: Athena's JSON SerDe reads one object per line (the catalog's qc table, infra/catalog.yaml).
    with open(paths["fastp_json"], "w") as fh:
        fh.write(json.dumps(doc) + "\n")
    with open(paths["mqc_json"], "w") as fh:
        json.dump(mqc_json(result, sample), fh, indent=2)
    with open(paths["html"], "w") as fh:
        fh.write(html_report(doc, sample))
    return doc
