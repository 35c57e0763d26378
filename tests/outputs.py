"""Comparing a pipeline's Phase 1 outputs with `helixflow preprocess` on the same input (Lambda and Ray paths)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq


def relative_files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def same_outputs(pipeline_dir: Path, local_dir: Path, relative_paths: list[str]) -> None:
    """Reads equal after decompression (gzip members differ in how they are cut), tables and JSON equal."""
    for relative in relative_paths:
        got, want = (pipeline_dir / relative).read_bytes(), (local_dir / relative).read_bytes()
        if relative.endswith(".gz"):
            assert gzip.decompress(got) == gzip.decompress(want), relative
        elif relative.endswith(".parquet"):
            assert pq.read_table(pipeline_dir / relative).equals(pq.read_table(local_dir / relative)), relative
        elif relative.endswith(".json"):
            got_doc, want_doc = json.loads(got), json.loads(want)
            # fastp records the command line, which names the inputs (S3 keys vs local paths).
            got_doc.pop("command", None), want_doc.pop("command", None)
            assert got_doc == want_doc, relative
