"""The shape of lablib: modules build on each other without cycles (imports inside functions count too)."""
import ast
from pathlib import Path

import lablib

PACKAGE = Path(lablib.__file__).parent


def imports_of_lablib() -> dict:
    """module -> the lablib modules it imports anywhere in its code (``from . import x``, ``from .x import y``,
    ``from .. import x`` in a subpackage); modules of a subpackage are named ``grading.wire``."""
    names = {".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
             for p in PACKAGE.rglob("*.py")}
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        package = name.split(".")[:-1]
        name = name.removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                base = package[: len(package) - (node.level - 1)]
                if node.module:
                    target = ".".join(base + node.module.split("."))
                    deps.add(target if target in names else target.rsplit(".", 1)[0])
                else:
                    deps |= {".".join(base + [a.name]) for a in node.names if ".".join(base + [a.name]) in names}
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict):
    """One import cycle as a list of modules, or None."""
    state: dict = {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep in graph and dep not in state:
                found = visit(dep, path + [dep])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_lablib_has_no_import_cycle():
    cycle = find_cycle(imports_of_lablib())
    assert cycle is None, "import cycle in lablib: " + " -> ".join(cycle)


def test_generation_is_a_leaf_that_training_and_metrics_build_on():
    graph = imports_of_lablib()
    assert graph["generation"] <= {"data"}
    assert "generation" in graph["sft"] and "generation" in graph["evaluation"] and "sft" not in graph["evaluation"]
