"""The error-code registry (helixflow.errors) is the truth: every code the code raises is registered on the class
that raises it, README's error tables are exactly the registry, and a code names one error class unless the
registry shares it on purpose."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

from helixflow import errors

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("layers", "tools", "functions")
REGISTRY = errors.registry()


def _sources() -> list[Path]:
    return sorted(p for root in SCANNED for p in (REPO / root).rglob("*.py") if "__pycache__" not in p.parts)


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _enclosing(node: ast.AST, parents: dict, kind: type) -> list[ast.AST]:
    found = []
    while node in parents:
        node = parents[node]
        if isinstance(node, kind):
            found.append(node)
    return found


def _class_tables(tree: ast.Module) -> dict[str, set[str]]:
    """Module-level dicts of error classes (``FAILURES = {"phase1": Phase1JobFailed, ...}``): raising
    ``FAILURES[stage](...)`` raises any of them."""
    tables = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Dict):
            names = {v.id for v in value.values if isinstance(v, ast.Name)}
            if names and names <= REGISTRY.keys():
                tables[target.id] = names
    return tables


def _classes(func: ast.expr, tables: dict[str, set[str]]) -> set[str]:
    if isinstance(func, ast.Name) and func.id in REGISTRY:
        return {func.id}
    if isinstance(func, ast.Attribute) and func.attr in REGISTRY:
        return {func.attr}
    if isinstance(func, ast.Subscript) and isinstance(func.value, ast.Name):
        return tables.get(func.value.id, set())
    return set()


def _fstring_codes(value: ast.JoinedStr, parents: dict, where: str) -> set[str]:
    """The codes an f-string code can be: each placeholder must be bounded by an enclosing
    ``if <same expression> in ("A", "B")``, so the test knows its values without running the code."""
    choices = []
    for part in value.values:
        if isinstance(part, ast.Constant):
            choices.append([part.value])
            continue
        expression = ast.unparse(part.value)
        bounds = [test.comparators[0] for test in (node.test for node in _enclosing(value, parents, ast.If))
                  if isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.In)
                  and ast.unparse(test.left) == expression
                  and isinstance(test.comparators[0], (ast.Tuple, ast.List, ast.Set))]
        assert bounds, f"{where}: f-string code placeholder {{{expression}}} has no enclosing `if {expression} in (...)`"
        choices.append([element.value for element in bounds[0].elts])
    return {"".join(parts) for parts in itertools.product(*choices)}


def raised_codes() -> list[tuple[str, str, str]]:
    """(where, error class, code) for every literal or bounded f-string code the scanned code raises. Calls that
    pass a code through a parameter (``def _error(self, code, ...)``) are followed to the callers of that function
    in the same module; a code taken from another exception (``code=exc.code``) re-raises a registered one."""
    found = []
    for path in _sources():
        tree = ast.parse(path.read_text(), str(path))
        parents, tables = _parents(tree), _class_tables(tree)
        helpers: dict[str, tuple[int, str, set[str]]] = {}  # function -> (positional index, parameter, classes)

        def add(node: ast.AST, classes: set[str], value: ast.expr) -> None:
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.extend((where, cls, value.value) for cls in classes)
            elif isinstance(value, ast.JoinedStr):
                found.extend((where, cls, code) for cls in classes for code in _fstring_codes(value, parents, where))

        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not (classes := _classes(node.func, tables)):
                continue
            code = next((k.value for k in node.keywords if k.arg == "code"), None)
            if isinstance(code, ast.Name):
                for function in _enclosing(node, parents, (ast.FunctionDef, ast.AsyncFunctionDef))[:1]:
                    params = [a.arg for a in function.args.posonlyargs + function.args.args if a.arg != "self"]
                    if code.id in params:
                        helpers[function.name] = (params.index(code.id), code.id, classes)
            elif code is not None:
                add(node, classes, code)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name not in helpers:
                continue
            index, param, classes = helpers[name]
            value = next((k.value for k in node.keywords if k.arg == param),
                         node.args[index] if index < len(node.args) else None)
            assert isinstance(value, (ast.Constant, ast.JoinedStr)), \
                f"{path.relative_to(REPO)}:{node.lineno}: {name}() is given a code the test cannot read"
            add(node, classes, value)
    return found


def test_every_raised_code_is_registered_on_the_class_that_raises_it():
    found = raised_codes()
    unregistered = sorted(f"{where}: {cls}(code={code!r})" for where, cls, code in found
                          if code not in REGISTRY[cls])
    assert not unregistered, "codes missing from helixflow.errors:\n" + "\n".join(unregistered)
    # The scan reaches every way codes are raised: literals, helpers (the gzip reader's _error), f-strings over
    # a table of classes (the job seam's JOB_<state>).
    seen = {(cls, code) for _, cls, code in found}
    assert {("InvalidFastq", "TRUNCATED_GZIP"), ("InvalidFastq", "BAD_QUALITY_CHAR"),
            ("Phase1JobFailed", "JOB_CANCELLED"), ("Phase2JobFailed", "JOB_FAILED"),
            ("InvalidKey", "SAME_FILE"), ("ClusterUnavailable", "SLURM_AUTH_REJECTED")} <= seen


def test_every_class_registers_its_default_code():
    for cls in errors.error_classes():
        assert cls.default_code in cls.codes, cls.__name__
        assert all(meaning.strip() and "\n" not in meaning for meaning in cls.codes.values()), cls.__name__


def test_a_code_names_one_class_unless_shared_on_purpose():
    owners: dict[str, list[str]] = {}
    for name, codes in REGISTRY.items():
        for code in codes:
            owners.setdefault(code, []).append(name)
    shared = {code: names for code, names in owners.items() if len(names) > 1}
    assert shared.keys() <= errors.SHARED_CODES.keys(), shared
    assert all(errors.SHARED_CODES[code] == REGISTRY[name][code] for code, names in shared.items() for name in names)


def readme_error_tables() -> str:
    """README's tables as the registry renders them: InvalidFastq's codes get their own table."""
    rows = ["| error | code | meaning |", "|---|---|---|",
            "| `InvalidFastq` | see the FASTQ table below | |"]
    for name, codes in REGISTRY.items():
        if name != "InvalidFastq":
            rows += [f"| {f'`{name}`' if i == 0 else ''} | `{code}` | {meaning} |"
                     for i, (code, meaning) in enumerate(codes.items())]
    rows += ["", "FASTQ validation codes (`InvalidFastq`; each with the file and byte offset into the decompressed "
             "stream, and the record and line of a defect inside a record):", "", "| code | meaning |", "|---|---|"]
    rows += [f"| `{code}` | {meaning} |" for code, meaning in REGISTRY["InvalidFastq"].items()]
    return "\n".join(rows) + "\n"


def test_readme_error_tables_are_the_registry():
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    assert readme_error_tables() in section, "README's ## Errors tables should read:\n\n" + readme_error_tables()
