"""Golden outputs for nbval: each lab executed under the ``smoke`` profile, stored in ``tests/goldens/``.

``lab goldens`` (or ``make goldens``) regenerates them. nbval then re-executes each golden notebook and
compares the outputs of the cells tagged ``nbval-check-output`` -- config summaries, token and parameter
counts, a packed block, rounded metrics, the stage's own checks -- with the stored ones. A test fails when a
lab's code no longer matches its golden, so a changed lab cannot pass on stale goldens.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import List, Sequence

from . import config as config_mod
from . import running
from .session import TMP

PROFILE = "smoke"
CHECK_TAG = "nbval-check-output"


def golden_dir() -> Path:
    return config_mod.home() / "tests" / "goldens"


def golden_path(lab: running.LabSpec) -> Path:
    return golden_dir() / f"{lab.dirname}.ipynb"


def ensure_upstream(lab: running.LabSpec, root: Path) -> None:
    """Run (or reuse) the smoke runs of every lab ``lab`` consumes from, under ``root``."""
    ups, todo = set(), [lab]
    while todo:  # every lab upstream of ``lab``, not only the ones it reads from directly
        for ref in todo.pop().consumes.values():
            key = ref.partition("/")[0]
            if key not in ups:
                ups.add(key)
                todo.append(running.find_lab(key))
    ups = sorted(ups)
    if ups:
        running.run(ups, [f"profile={PROFILE}"], root, progress=False, echo=lambda *_: None)


def regenerate(keys: Sequence[str] = ()) -> List[Path]:
    import nbformat
    import papermill

    labs = [running.find_lab(k) for k in keys] if keys else running.manifest()
    root = Path(os.environ.get("LABLIB_RUNS") or tempfile.mkdtemp(prefix="lablib-golden-runs-"))
    os.environ["LABLIB_RUNS"] = str(root)  # the kernels inherit it: upstream artifacts are found there
    golden_dir().mkdir(parents=True, exist_ok=True)
    written = []
    for lab in labs:
        ensure_upstream(lab, root)
        out = golden_path(lab)
        tmp = out.with_suffix(".tmp.ipynb")
        papermill.execute_notebook(str(lab.notebook_path), str(tmp), kernel_name="python3", progress_bar=False,
                                   parameters={"overrides": [f"profile={PROFILE}"], "run_dir": TMP},
                                   cwd=str(golden_dir()))
        nb = nbformat.read(str(tmp), as_version=4)
        for cell in nb.cells:  # keep goldens diff-friendly: no timings
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
        nb.metadata.pop("papermill", None)
        nbformat.write(nb, str(tmp))
        tmp.replace(out)
        written.append(out)
    return written


def lab_code_cells(nb) -> List[str]:
    """Code cells of a lab or golden notebook, without papermill's injected-parameters cell."""
    return [c.source for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
