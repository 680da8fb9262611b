"""Golden outputs for nbval: each lab executed under the ``smoke`` profile, stored in ``tests/goldens/``.

``lab goldens`` (or ``make goldens``) regenerates them. nbval then re-executes each golden notebook and
compares the outputs of the cells tagged ``nbval-check-output`` with the stored ones. A test fails when a
lab's code no longer matches its golden, so a changed lab cannot pass on stale goldens.

Goldens must hold on every machine, and float results do not: torch picks vector kernels by CPU
capability, so the same lab gives a val loss of 1.594 / 1.624 / 1.633 under ``ATEN_CPU_CAPABILITY=default``
/ ``avx2`` / avx512. So:

* a checked cell whose output is deterministic by construction (configs, data, token and parameter counts,
  masks, memory predictions, exercise PASS lines, "checks passed") is compared exactly;
* a checked cell that prints numbers out of training or sampling is listed in ``tests/goldens/tolerances.yaml``
  with an absolute and a relative tolerance (and why): :func:`compare_text` then requires the text around the
  numbers to match exactly and each number to lie within ``atol + rtol * |golden|``; where the smoke profile's
  numbers are chaotic across CPUs (a reward model's arbitrary scale, a few sampled tokens that go another way),
  ``text_only`` compares the text and where the numbers stand, not their values -- the lab's own assertions
  check what the stage must achieve;
* generated samples are not compared (those cells carry no check tag; nbval still runs them);
* goldens are made under the most portable kernels (:data:`GOLDEN_ENV`, recorded in each golden's metadata)
  and checked under the machine's own best, so a golden that holds only where it was made fails the suite.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from unittest import mock
from typing import Dict, List, Optional, Sequence, Tuple

from ..core import config as config_mod
from . import running
from .session import TMP

PROFILE = "smoke"
CHECK_TAG = "nbval-check-output"
# The kernels goldens are made with: torch's own (ATEN), MKL's BLAS and oneDNN, each at its plainest level,
# which any x86-64 CPU runs and no machine picks for itself -- so checking anywhere else tests portability.
GOLDEN_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"}


def golden_dir() -> Path:
    return config_mod.home() / "tests" / "goldens"


def golden_name(lab: running.LabSpec) -> str:
    """The golden's name, also its key in ``tolerances.yaml``: ``02_sft``, or ``own/02_sft`` in the own track
    (whose goldens run the shipped example domain, the own track's default)."""
    return lab.dirname if lab.track == "numbers" else f"{lab.track}/{lab.dirname}"


def golden_path(lab: running.LabSpec) -> Path:
    return golden_dir() / f"{golden_name(lab)}.ipynb"


def lab_of(path: Path) -> Optional[running.LabSpec]:
    """The lab whose golden is at ``path``, or None."""
    return next((lab for lab in running.all_labs() if golden_path(lab) == Path(path).resolve()), None)


def ensure_upstream(lab: running.LabSpec, root: Path) -> None:
    """Run (or reuse) the smoke runs of every lab ``lab`` consumes from, transitively, under ``root``."""
    ups = running.upstream_keys(lab)
    if ups:
        running.run(ups, [f"profile={PROFILE}"], root, progress=False, echo=lambda *_: None)


def regenerate(keys: Sequence[str] = ()) -> List[Path]:
    """Execute the labs under ``smoke`` with the kernels of :data:`GOLDEN_ENV` and store them as goldens.

    Upstream labs run afresh in a temporary runs folder under the same kernels: a golden made from artifacts
    of another CPU would hold numbers that no machine reproduces."""
    import nbformat

    labs = [running.find_lab(k) for k in keys] if keys else running.all_labs()
    root = Path(tempfile.mkdtemp(prefix="lablib-golden-runs-"))
    with mock.patch.dict(os.environ, {**GOLDEN_ENV, "LABLIB_RUNS": str(root)}):  # kernels inherit both
        capability = cpu_capability()
        golden_dir().mkdir(parents=True, exist_ok=True)
        written = []
        for lab in labs:
            ensure_upstream(lab, root)
            out = golden_path(lab)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp.ipynb")
            running.execute_notebook(lab.notebook_path, tmp, {"overrides": [f"profile={PROFILE}"], "run_dir": TMP},
                                     cwd=out.parent)
            nb = nbformat.read(str(tmp), as_version=4)
            for cell in nb.cells:  # keep goldens diff-friendly: no timings
                cell.metadata.pop("papermill", None)
                cell.metadata.pop("execution", None)
            nb.metadata.pop("papermill", None)
            nb.metadata["lablib"] = {"golden": {"profile": PROFILE, "cpu_capability": capability, "env": GOLDEN_ENV}}
            nbformat.write(nb, str(tmp))
            tmp.replace(out)
            written.append(out)
    return written


def lab_code_cells(nb) -> List[str]:
    """Code cells of a lab or golden notebook, without papermill's injected-parameters cell."""
    return [c.source for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


# --------------------------------------------------------------------------------------------
# Comparing outputs within a tolerance
# --------------------------------------------------------------------------------------------
# A number as labs print it: sign, thousands separators, decimals, exponent, percent ("-1.3e-05", "45,248", "64%").
NUMBER = re.compile(r"(?<![\d.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?%?(?!\d)")


def split_numbers(text: str) -> Tuple[List[str], List[float]]:
    """The text with every number cut out (the pieces between them), and the numbers. "64%" reads as 0.64,
    so that one tolerance serves fractions and percentages alike."""
    pieces, numbers, last = [], [], 0
    for m in NUMBER.finditer(text):
        token = m.group()
        value = float(token.rstrip("%").replace(",", ""))
        numbers.append(value / 100 if token.endswith("%") else value)
        pieces.append(text[last:m.start()])
        last = m.end()
    pieces.append(text[last:])
    return pieces, numbers


def compare_text(golden: str, actual: str, atol: float = 0.0, rtol: float = 0.0,
                 text_only: bool = False) -> Optional[str]:
    """None if ``actual`` is ``golden`` up to its numbers; else what differs. The text around the numbers must
    match (runs of spaces aside: a column's padding shifts when a number gains a digit or a sign); each number
    must lie within ``atol + rtol * |golden|`` of the golden's, or, with ``text_only``, merely be there."""
    g_pieces, g_numbers = split_numbers(golden)
    a_pieces, a_numbers = split_numbers(actual)
    g_pieces, a_pieces = [re.sub(r"[ \t]+", " ", p) for p in g_pieces], [re.sub(r"[ \t]+", " ", p) for p in a_pieces]
    if g_pieces != a_pieces:
        i = next((i for i, (g, a) in enumerate(zip(g_pieces, a_pieces)) if g != a), min(len(g_pieces), len(a_pieces)))
        g = g_pieces[i] if i < len(g_pieces) else "<end>"
        a = a_pieces[i] if i < len(a_pieces) else "<end>"
        return f"the text differs, not only its numbers: golden {g!r}, got {a!r}"
    for g, a in zip(g_numbers, a_numbers):
        if not text_only and abs(a - g) > atol + rtol * abs(g):
            line = next(line for line in actual.splitlines() if _has_number(line, a))
            return f"{a:g} differs from the golden {g:g} by more than {atol:g} + {rtol:g} x |{g:g}|, in: {line.strip()!r}"
    return None


def _has_number(line: str, value: float) -> bool:
    return value in split_numbers(line)[1]


def tolerances() -> Dict[str, Dict[str, dict]]:
    """``tests/goldens/tolerances.yaml``: golden name (:func:`golden_name`) -> cell id -> {atol, rtol | text_only,
    why}."""
    from omegaconf import OmegaConf

    path = golden_dir() / "tolerances.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(path)) if path.exists() else {}
    for lab, cells in raw.items():
        for cell_id, spec in cells.items():
            unknown = set(spec) - {"atol", "rtol", "text_only", "why"}
            if unknown or not spec.get("why") or not ({"atol", "rtol", "text_only"} & set(spec)):
                raise ValueError(f"{path}: {lab}.{cell_id} needs atol and/or rtol, or text_only, and why "
                                 f"(unknown keys: {sorted(unknown)})")
    return raw


def cpu_capability(env: Optional[Dict[str, str]] = None) -> str:
    """The vector kernels torch runs with ``env`` (e.g. DEFAULT, AVX2, AVX512), asked of a fresh interpreter."""
    import subprocess
    import sys

    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return out.stdout.strip()


def golden_capability(lab: running.LabSpec) -> Optional[str]:
    """The CPU capability a lab's golden was made under (recorded by :func:`regenerate`)."""
    import json

    meta = json.loads(golden_path(lab).read_text()).get("metadata", {})
    return meta.get("lablib", {}).get("golden", {}).get("cpu_capability")
