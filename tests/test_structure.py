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
    assert graph["core.generation"] <= {"core.data"}
    assert "core.generation" in graph["methods.sft"] and "core.generation" in graph["core.evaluation"]
    assert "methods.sft" not in graph["core.evaluation"]


LAYERS = {"core": {"core"}, "methods": {"core", "methods"}, "course": {"core", "methods", "course", "grading"},
          "grading": {"core", "methods", "course", "grading"}}


def test_each_layer_builds_only_on_the_layers_below_it():
    """The core (config, domain, data, models ...) imports nothing above it; the methods being taught import the
    core only; the course machinery and the grader sit on top."""
    graph = imports_of_lablib()
    for module, deps in graph.items():
        layer = module.split(".")[0]
        if layer not in LAYERS:
            continue
        above = {d for d in deps if d.split(".")[0] in LAYERS and d.split(".")[0] not in LAYERS[layer]}
        assert not above, f"lablib.{module} imports {sorted(above)}, a layer above {layer}"
    assert set(p.name for p in PACKAGE.iterdir() if p.suffix == ".py") == {"__init__.py"}, "a module outside a layer"


def test_every_short_name_is_its_layers_module():
    for name, layer in lablib.MODULES.items():
        assert getattr(lablib, name).__name__ == f"lablib.{layer}.{name}"
        assert (PACKAGE / layer / f"{name}.py").exists()


def test_a_labs_imports_leave_bitsandbytes_until_it_is_used():
    """bitsandbytes (and the torch compiler it imports) costs seconds of every kernel's start: a lab's imports
    leave it deferred, and reading one of its attributes (what QLoRA's loading does) imports the real module."""
    import subprocess
    import sys

    code = ("import sys, lablib\nfrom lablib import training, models, generation, plots\n"
            "print('bitsandbytes.backends' in sys.modules)\n"
            "import bitsandbytes\nprint('bitsandbytes.backends' in sys.modules)\n"
            "print('cpu' in bitsandbytes.supported_torch_devices, 'bitsandbytes.backends' in sys.modules)\n"
            "import bitsandbytes.nn\nprint(bitsandbytes.nn.Linear4bit.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True", "True", "Linear4bit"], out
