"""The course website: a Jupyter Book (1.x, Sphinx) built offline from the executed labs.

``lab book`` shows what a student sees: each numbers lab with the outputs of a `cpu` run kept in the repository
(``book/executed/cpu``, made by ``bench/run.py --science cpu``), where its code still matches the lab's; any other
chapter (the own track, a lab whose code changed since) runs under `smoke` and says so in a banner at its top.
``lab book profile=P`` runs (or reuses) every lab under P instead. Then it stages a book folder:

* the hand-written pages in ``book/`` (introduction, setup, instructors, distributed training), the
  benchmark figures (``bench/run.py --markdown``) and the bad-input table (``tests/test_bad_inputs.py``),
* one chapter per lab of both tracks: the notebook executed by papermill, with its plots and tables (the own
  track's on the shipped example domain, or on the domain the overrides name),
* ``reference.md``, generated from ``lablib``'s docstrings (read with ``ast``, nothing imported),
* MathJax 3, vendored from npm, so that math renders with no network,

and builds it with the ``jupyter-book`` of its own virtual environment (``.venv-book``: Jupyter Book 1
pins other versions than the lab stack). The site lands in ``book/_build/html``.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Sequence

from ..core import config as config_mod
from ..core import domain
from . import running

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
KEPT_PROFILE = "cpu"  # the profile whose executed notebooks the repository keeps for the book
FALLBACK = "profile=smoke"


def kept_dir() -> Path:
    return book_src() / "executed" / KEPT_PROFILE


def kept_path(lab: running.LabSpec) -> Path:
    """Where a lab's kept `cpu` notebook lives: ``book/executed/cpu/NN_name.ipynb``; the own track's (run on the
    example domain) under ``own/``."""
    return kept_dir() / ("" if lab.track == "numbers" else lab.track) / f"{lab.dirname}.ipynb"


def code_cells(nb) -> list:
    """``(id, source)`` of a notebook's code cells, papermill's injected parameters left out: what outputs depend on."""
    return [(c.get("id"), c.source) for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


def code_fingerprint(nb) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(code_cells(nb)).encode()).hexdigest()[:16]


def keep(lab: running.LabSpec, executed: Path) -> int:
    """Store a lab's executed notebook as the book's kept output (:func:`kept_dir`), with the fingerprint of the
    code it ran (``metadata.lablib.code``); returns how many lines its cells wrote to stderr."""
    import nbformat

    dst = kept_path(lab)
    dst.parent.mkdir(parents=True, exist_ok=True)
    stage_notebook(executed, dst)
    nb = nbformat.read(str(dst), as_version=4)
    nb.metadata["lablib"] = {"profile": KEPT_PROFILE, "code": code_fingerprint(nb)}
    nbformat.write(nb, str(dst))
    return running.stderr_lines(executed)


def kept_outputs(lab: running.LabSpec):
    """The lab's current notebook with the outputs of its kept `cpu` run, or None where none is kept or the lab's
    code changed since (the prose is always the lab's current prose)."""
    import nbformat

    path = kept_path(lab)
    if not path.exists():
        return None
    kept = nbformat.read(str(path), as_version=4)
    current = nbformat.read(str(lab.notebook_path), as_version=4)
    if kept.metadata.get("lablib", {}).get("code") != code_fingerprint(current) or \
            code_cells(kept) != code_cells(current):
        return None
    outputs = {c.get("id"): c for c in kept.cells if c.cell_type == "code"}
    for cell in current.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = outputs[cell.get("id")].outputs, outputs[cell.get("id")].execution_count
    return current


def banner(profile: str, why: str) -> str:
    return (f"```{{note}}\nThe outputs on this page come from the `{profile}` profile ({why}), not from the `cpu` "
            "profile the text describes: numbers differ, and some runs are shorter. `make course` shows a "
            "student's.\n```")


def book_src() -> Path:
    return config_mod.home() / "book"


def book_venv() -> Path:
    """The virtual environment holding Jupyter Book 1 and the npm-vendored MathJax (``make book-setup``)."""
    return Path(os.environ.get("LABLIB_BOOK_VENV", config_mod.home() / ".venv-book"))


def jupyter_book() -> Path:
    exe = book_venv() / "bin" / "jupyter-book"
    if not exe.exists():
        raise running.RunError(f"{exe} not found: run `make book-setup` (Jupyter Book 1 lives in its own venv)")
    return exe


def mathjax_dir() -> Path:
    es5 = book_venv() / "npm" / "node_modules" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").exists():
        raise running.RunError(f"MathJax not found at {es5}: run `make book-setup`")
    return es5


def reference_markdown() -> str:
    """A page per module: its docstring, then each public function's and class's signature and docstring."""
    lines = ["# Reference: `lablib`", "",
             "Generated from the docstrings of the library every lab calls (`lab book` rebuilds it).", ""]
    pkg = Path(__file__).resolve().parent.parent
    for path in sorted(pkg.rglob("*.py"), key=lambda p: (len(p.relative_to(pkg).parts), str(p))):
        if path.name.startswith("_") and path.parent == pkg or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        name = ".".join(("lablib", *path.relative_to(pkg).with_suffix("").parts)).removesuffix(".__init__")
        lines += [f"## `{name}`", "", ast.get_docstring(tree) or "", ""]
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                kind = "class" if isinstance(node, ast.ClassDef) else "def"
                args = "" if kind == "class" else f"({ast.unparse(node.args)})"
                lines += [f"### `{node.name}`", "", f"```python\n{kind} {node.name}{args}\n```", "", doc, ""]
    return "\n".join(lines) + "\n"


def page(lab: running.LabSpec) -> str:
    """A lab's page in the book, without its suffix: ``labs/02_sft`` or ``labs/own/02_sft``."""
    return f"labs/{lab.dirname}" if lab.track == "numbers" else f"labs/{lab.track}/{lab.dirname}"


def toc(labs: Sequence[running.LabSpec], own: Sequence[running.LabSpec] = ()) -> str:
    chapters = "\n".join(f"      - file: {page(lab)}" for lab in labs)
    own_part = ("  - caption: Your own domain (the example)\n    chapters:\n"
                + "\n".join(f"      - file: {page(lab)}" for lab in own) + "\n") if own else ""
    return ("format: jb-book\nroot: intro\nparts:\n"
            "  - caption: Getting started\n    chapters:\n      - file: setup\n      - file: own_domain\n"
            f"  - caption: Labs\n    chapters:\n{chapters}\n{own_part}"
            "  - caption: For instructors\n    chapters:\n      - file: instructors\n      - file: distributed\n"
            "      - file: benchmarks\n      - file: bad_inputs\n      - file: reference\n")


def tracks(overrides: Sequence[str]) -> dict:
    """The overrides each track's chapters run with: the numbers track's as given, the own track's on the domain
    the overrides name, else the shipped example (a run without a gold checker, on SmolLM2)."""
    plain = [o for o in overrides if str(o).partition("=")[0].lstrip("+") != "domain"
             and not str(o).startswith("domain.")]
    own = list(overrides) if domain.track_of(overrides) == "own" else [*plain, "domain=example"]
    return {"numbers": plain, "own": own}


def stage_notebook(src, dst: Path, note: str = "") -> None:
    """Copy an executed lab (a path, or a notebook already read) for the book: drop the injected parameters
    (machine paths) and widget outputs (they would pull widget scripts from a CDN), and put ``note`` (a banner)
    under its title; the static outputs stay."""
    import nbformat

    nb = nbformat.read(str(src), as_version=4) if isinstance(src, (str, Path)) else src
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_MIME not in o.get("data", {})]
    nb.metadata.pop("widgets", None)
    if note:
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(note))
    nbformat.write(nb, str(dst))


def chapters_of(overrides: Sequence[str], root, echo) -> list:
    """``(lab, its executed notebook, banner)`` for every chapter: kept `cpu` outputs where current (with no
    profile in ``overrides``), else a run (cached) under the overrides' profile or `smoke`."""
    explicit = any(str(o).startswith("profile=") for o in overrides)
    chapters = []
    for track, track_overrides in tracks(overrides if explicit else [FALLBACK, *overrides]).items():
        labs = running.manifest(track)
        kept = {} if explicit else {lab.id: nb for lab in labs if (nb := kept_outputs(lab)) is not None}
        if len(kept) < len(labs):
            running.run([lab.id for lab in labs if lab.id not in kept], track_overrides, root, progress=False,
                        echo=echo)
        for lab in labs:
            cfg = running.compose(lab, track_overrides, root)
            if running.skipped(lab, cfg):  # an optional stage without its data has no chapter
                continue
            if lab.id in kept:
                chapters.append((lab, kept[lab.id], ""))
                continue
            why = ("CI sizes: seconds per lab" if explicit
                   else "CI sizes: the kept `cpu` outputs predate a change to this lab's code")
            note = banner(cfg.profile, why) if cfg.profile != KEPT_PROFILE else ""
            chapters.append((lab, running.folder(lab, cfg, root) / "notebook.ipynb", note))
    return chapters


def build(overrides: Sequence[str] = (), root: str | Path | None = None,
          out: str | Path | None = None, echo=print) -> Path:
    """Stage the book from :func:`chapters_of` and build it; returns the folder holding ``index.html``."""
    exe, mathjax = jupyter_book(), mathjax_dir()  # fail before any work
    start = time.perf_counter()
    chapters = chapters_of(overrides, root, echo)
    out = Path(out) if out else book_src() / "_build"
    stage = out / "src"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(book_src(), stage, ignore=shutil.ignore_patterns("_build"))
    (stage / "labs" / "own").mkdir(parents=True)
    for lab, notebook, note in chapters:
        stage_notebook(notebook, stage / f"{page(lab)}.ipynb", note)
    (stage / "_toc.yml").write_text(toc([lab for lab, _, _ in chapters if lab.track == "numbers"],
                                        [lab for lab, _, _ in chapters if lab.track != "numbers"]))
    (stage / "reference.md").write_text(reference_markdown())
    shutil.copytree(mathjax, stage / "_vendor" / "mathjax")
    html = out / "html"
    shutil.rmtree(html, ignore_errors=True)
    proc = subprocess.run([str(exe), "build", str(stage), "--path-output", str(out / "jb"), "--warningiserror",
                           "--keep-going"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise running.RunError(f"jupyter-book build failed: {(proc.stdout + proc.stderr).strip().splitlines()[-1]}"
                               f" (full log: rerun {exe} build {stage})")
    shutil.move(str(out / "jb" / "_build" / "html"), html)
    shutil.rmtree(out / "jb", ignore_errors=True)
    echo(f"book built in {time.perf_counter() - start:.1f} s: {html / 'index.html'}")
    return html
