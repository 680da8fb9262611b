"""Which of lablib's lines a run of the course executes, so a test can prove that `smoke` (what CI runs) takes the
code paths `cpu` (what a student runs) does.

A process records its coverage when ``LABLIB_COVERAGE=DIR`` is set (``lablib/__init__``). A line is named not by
its number, which every edit above it shifts, but by ``file::function::text#n`` -- the file, the function it is in,
its stripped text and which occurrence of that text in the function it is -- so a record made by the bench's
`cpu` run stays valid while the code around a line changes; a line whose text changed simply drops out of the
comparison until the record is made again.
"""
from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, Set

PACKAGE = Path(__file__).resolve().parents[1]


def _scopes(tree: ast.AST) -> Dict[int, str]:
    """Line -> qualified name of the innermost function or class holding it ('' at module level)."""
    where: Dict[int, str] = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}" if prefix else child.name
                for line in range(child.lineno, (child.end_lineno or child.lineno) + 1):
                    where[line] = name
                visit(child, name)
            else:
                visit(child, prefix)

    visit(tree, "")
    return where


def line_keys(path: Path) -> Dict[int, str]:
    """Every line of one lablib source file -> its stable name (see the module's docstring)."""
    text = path.read_text()
    scopes, seen, keys = _scopes(ast.parse(text)), Counter(), {}
    rel = path.resolve().relative_to(PACKAGE.parent).as_posix()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        base = f"{rel}::{scopes.get(number, '')}::{stripped}"
        seen[base] += 1
        keys[number] = f"{base}#{seen[base]}"
    return keys


def covered(data_dir: str | Path) -> Set[str]:
    """The names of every lablib line executed by the processes that recorded into ``data_dir``."""
    import coverage

    files = [str(p) for p in Path(data_dir).glob(".coverage*")]
    if not files:
        raise FileNotFoundError(f"no coverage data in {data_dir} (was LABLIB_COVERAGE set for the run?)")
    data = coverage.CoverageData(basename=str(Path(data_dir) / ".combined"))
    for name in files:
        part = coverage.CoverageData(basename=name)
        part.read()
        data.update(part)
    keys: Set[str] = set()
    for measured in data.measured_files():
        path = Path(measured)
        if PACKAGE not in path.resolve().parents or not path.exists():
            continue
        names = line_keys(path)
        keys.update(names[n] for n in data.lines(measured) or () if n in names)
    return keys


def current() -> Set[str]:
    """The names of every line lablib has now (a recorded name not among them belongs to changed code)."""
    return {key for path in PACKAGE.rglob("*.py") for key in line_keys(path).values()}


def save(keys: Iterable[str], path: str | Path) -> None:
    Path(path).write_text(json.dumps(sorted(keys), indent=0) + "\n")


def load(path: str | Path) -> Set[str]:
    return set(json.loads(Path(path).read_text()))


def missing(under_cpu: Set[str], under_smoke: Set[str], excused: Dict[str, str]) -> list:
    """Lines covered under `cpu` and not under `smoke`, leaving out lines whose code has changed since the `cpu`
    record and lines matched by an ``excused`` pattern (a substring of the name, e.g. ``"core/plots.py::"``)."""
    now = current()
    return sorted(k for k in under_cpu - under_smoke if k in now and not any(p in k for p in excused))
