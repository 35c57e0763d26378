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


# A repository path: it starts at a top-level folder of the checkout (or at the package, as the docs name it)
# and is written out whole; S3 keys (incoming/, results/...) and templated names (<sample>) never match.
_PATH = re.compile(r"(?<![\w./<>{-])((?:layers|tools|functions|batch_jobs|statemachines|tests|benchmarks|docs|helixflow)"
                   r"/[\w./-]*)(?![\w<>{*])")
# A bare file name of a kind only the repository holds (outputs are .json, .tsv, .yml, .fastq...).
_BARE = re.compile(r"(?<![\w./<>{-])([\w-]+\.(?:py|sbatch|md|sh))\b(?![/<>{-])")


def _package_docstrings() -> list[tuple[str, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                if doc := ast.get_docstring(node):
                    found.append((f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 1)}", doc))
    return found


def _missing(where: str, text: str, names: set[str]) -> list[str]:
    missing = []
    for match in _PATH.finditer(text):
        path = match[1].rstrip(".")
        target = REPO / "layers" / "helixflow" / path if path.startswith("helixflow/") else REPO / path
        if not target.exists():
            missing.append(f"{where}: {path}")
    missing += [f"{where}: {m[1]}" for m in _BARE.finditer(text) if m[1] not in names]
    return missing


def test_readme_and_package_docstrings_point_only_at_files_that_exist():
    names = {p.name for p in REPO.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts}
    # The parameter tables hold values (secret names, a repository id), not repository paths.
    before, tables = README.split("\n### Parameters of every stack\n", 1)
    readme = before + "\n### " + tables.split("\n### ", 1)[1]
    texts = [("README.md", readme), *_package_docstrings()]
    missing = [line for where, text in texts for line in _missing(where, text, names)]
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)
    # The pattern finds what it guards: README names the state machine and the package's own modules.
    assert {"statemachines/pipeline.asl.json", "helixflow/pipeline/plan.py"} <= {
        m[1].rstrip(".") for m in _PATH.finditer(README)}
