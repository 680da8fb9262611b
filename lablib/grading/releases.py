"""Student releases: each solution block replaced by a stub that raises ``NotImplementedError``, every output
cleared, the checks kept (``lab release``). Also what grading reads of a released lab: its exercise calls."""
from __future__ import annotations

import re
from pathlib import Path
from typing import List

from .exercises import BEGIN, END, EXERCISE_TAG
from ..course.running import RunError

STUB = 'raise NotImplementedError("exercise: write this part")'
_CHECK_CALL = re.compile(r"exercises\.check\(\s*[\"']([^\"']+)[\"']\s*,\s*([A-Za-z_]\w*)\s*\)")


class GradingError(RunError):
    """A notebook or folder that cannot be released or graded, worded as one line."""


def exercise_calls(nb) -> List[tuple]:
    """``(exercise, function name)`` of each ``exercises.check("NAME", function)`` call in a notebook, in order."""
    return [m for c in nb.cells if c.cell_type == "code" for m in _CHECK_CALL.findall(c.source)]


def exercise_sources(nb) -> List[str]:
    """The source of each code cell tagged ``exercise``, in order."""
    return [c.source for c in nb.cells if c.cell_type == "code" and EXERCISE_TAG in c.metadata.get("tags", [])]


def strip_solutions(source: str, where: str = "cell") -> str:
    """``source`` with every solution block replaced by a stub at the block's indentation."""
    out, inside, indent = [], False, ""
    for n, line in enumerate(source.splitlines(), 1):
        if line.strip() == BEGIN:
            if inside:
                raise GradingError(f"{where}, line {n}: {BEGIN} inside another solution block")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{STUB}")
        elif line.strip() == END:
            if not inside:
                raise GradingError(f"{where}, line {n}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise GradingError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def exercise_names(nb) -> List[str]:
    """The exercise names a notebook checks, in order (from its ``exercises.check("NAME", ...)`` calls)."""
    return [name for name, _ in exercise_calls(nb)]


def release(src: str | Path, dst: str | Path) -> dict:
    """Write the student version of the notebook ``src`` to ``dst``: solutions stubbed, outputs cleared.
    Returns the number of exercises and stubbed blocks."""
    import nbformat  # here, not at the top: its import costs ~2 s that `lab list` need not pay

    nb = nbformat.read(str(src), as_version=4)
    blocks = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if BEGIN in cell.source:
            if EXERCISE_TAG not in cell.metadata.get("tags", []):
                raise GradingError(f"{src}: cell {i} has a solution block but no '{EXERCISE_TAG}' tag")
            blocks += cell.source.count(BEGIN)
            cell.source = strip_solutions(cell.source, f"{src}: cell {i}")
        cell.outputs, cell.execution_count = [], None
    if any(BEGIN in c.source or END in c.source for c in nb.cells):
        raise GradingError(f"{src}: a solution marker survived the release")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    nbformat.write(nb, str(tmp))
    tmp.replace(dst)
    return {"exercises": len(exercise_names(nb)), "blocks": blocks}
