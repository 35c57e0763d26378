"""The documentation tells the truth about the repository: docs/output.md covers exactly the results layout
README names, and no path README or the shipped package's docstrings point at is missing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
PACKAGE = REPO / "layers" / "helixflow" / "helixflow"


def readme_results_layout() -> set[str]:
    """Every path of README's results layout block, with the run prefix its indented lines sit under."""
    block = README.split("\n## Results layout\n", 1)[1].split("```\n", 2)[1]
    paths, prefix = set(), ""
    for line in block.splitlines():
        token = line.split()[0]
        if line.startswith("  "):
            paths.add(prefix + token)
        elif token.endswith("/"):
            prefix = token
        else:
            paths.add(token)
    return paths


def output_doc_paths() -> set[str]:
    """The first cell of every table row of docs/output.md."""
    text = (REPO / "docs" / "output.md").read_text()
    return {m[1].replace("\\|", "|") for m in re.finditer(r"^\| `((?:[^`\\]|\\.)+)` \|", text, re.M)}


def test_output_doc_describes_exactly_the_results_layout():
    layout = readme_results_layout()
    assert "results/<sample>/<run_id>/manifest.json" in layout and "errors/<sample>/<run_id>/error.json" in layout
    assert output_doc_paths() == layout
