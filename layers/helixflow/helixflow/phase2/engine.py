"""What the commands and the MPI driver share: searcher choice and sample naming (device choice is
``device``). Both callers use these functions, which is what makes a one-rank and a many-rank
run produce the same bytes."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from helixflow.phase2.reference import Reference

SEARCHERS = ("index", "dense")


def build_searcher(kind: str, reference: Reference, device: str):
    """The candidate searcher for ``reference``; both return ``candidates.Candidates``."""
    if kind == "index":
        from helixflow.phase2.index import MinimizerIndex

        return MinimizerIndex.build(reference)
    if kind == "dense":
        from helixflow.phase2.dense import DenseSearcher

        return DenseSearcher.build(reference, device=device)
    raise ValueError(f"searcher must be one of {SEARCHERS}, got {kind!r}")


_SAMPLE_SUFFIXES = re.compile(r"(\.(parquet|fastq|fq)(\.gz)?)$", re.IGNORECASE)
_MATE_SUFFIX = re.compile(r"([._](R?[12]))$")


def sample_name(paths: Sequence[str | os.PathLike]) -> str:
    """Sample name from the first reads file: ``S1_R1.fastq.gz`` and ``embeddings/S1.parquet`` give ``S1``."""
    stem = _SAMPLE_SUFFIXES.sub("", os.path.basename(os.fspath(paths[0])))
    if len(paths) == 2:
        stem = _MATE_SUFFIX.sub("", stem)
    return stem or "sample"
