"""Phase 1's results layout under an output folder (README's results layout; ``docs/output.md``): the one home
for its file names, used by the runners that write it and by Phase 2, which reads the trimmed reads beside the
embeddings."""

from __future__ import annotations

import os


def reads_paths(out_dir: str, sample: str, paired: bool) -> list[str]:
    """The trimmed FASTQ(s): ``reads/<sample>_R1|_R2.trimmed.fastq.gz`` for pairs, else
    ``reads/<sample>.trimmed.fastq.gz``."""
    names = [f"{sample}_R{m}.trimmed.fastq.gz" for m in (1, 2)] if paired else [f"{sample}.trimmed.fastq.gz"]
    return [os.path.join(out_dir, "reads", name) for name in names]


def output_paths(out_dir: str, sample: str, paired: bool) -> dict[str, object]:
    return {
        "reads": reads_paths(out_dir, sample, paired),
        "embeddings": os.path.join(out_dir, "embeddings", f"{sample}.parquet"),
        "fastp_json": os.path.join(out_dir, "qc", f"{sample}.fastp.json"),
        "mqc_json": os.path.join(out_dir, "qc", f"{sample}_mqc.json"),
    }


def reads_beside(embeddings_path: str, paired: bool) -> list[str] | None:
    """The trimmed FASTQ(s) that belong to ``<out>/embeddings/<sample>.parquet`` in this layout, or None when the
    file is not in an ``embeddings/`` folder."""
    folder, name = os.path.split(os.path.abspath(embeddings_path))
    if os.path.basename(folder) != "embeddings" or not name.endswith(".parquet"):
        return None
    return reads_paths(os.path.dirname(folder), name.removesuffix(".parquet"), paired)
