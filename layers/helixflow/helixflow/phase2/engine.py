"""What the commands and the MPI driver share: device and searcher choice, sample naming. Both callers use these
functions, which is what makes a one-rank and a many-rank run produce the same bytes. The device rules live in
``device`` (the aligners need them too) and are offered here with the rest of what a command needs."""

from __future__ import annotations

import os
from collections.abc import Sequence

from helixflow.phase2.device import DEVICES, resolve_device
from helixflow.pipeline.keys import sample_from_path
from helixflow.phase2.reference import Reference

__all__ = ["DEVICES", "SEARCHERS", "build_searcher", "resolve_device", "sample_name"]

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


def sample_name(paths: Sequence[str | os.PathLike]) -> str:
    """Sample name from the first reads file, by the pipeline's one rule (helixflow.pipeline.keys)."""
    return sample_from_path(os.fspath(paths[0]))
