"""Student releases and autograding (the exercises and their checks are ``lablib.exercises``).

``lab release`` (:func:`release`) writes the student notebooks: each solution block replaced by a stub that
raises ``NotImplementedError``, every output cleared, the checks kept. ``lab grade`` (:func:`grade`) runs a
folder of submitted notebooks, each in its own process with a time and a memory limit, and writes a gradebook
with every exercise's verdict.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import List

from .exercises import BEGIN, END, EXERCISE_TAG, RESULTS_ENV
from .running import RunError

STUB = 'raise NotImplementedError("exercise: write this part")'


class GradingError(RunError):
    """A notebook or folder that cannot be released or graded, worded as one line."""


# --------------------------------------------------------------------------------------------
# Releases
# --------------------------------------------------------------------------------------------
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
    return [m for c in nb.cells if c.cell_type == "code"
            for m in re.findall(r"exercises\.check\(\s*[\"']([^\"']+)[\"']", c.source)]


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


# --------------------------------------------------------------------------------------------
# Grading a folder of submissions
# --------------------------------------------------------------------------------------------
_START = re.compile(r"lablib\.start\(\s*[\"'](\d+)[\"']")
_READS_NOTEBOOKS = re.compile(r"\.ipynb\b|nbformat")


def inspect(path: Path, lab_id: str) -> str:
    """Why ``path`` cannot be graded as a submission of lab ``lab_id`` ('' when it can)."""
    if path.suffix != ".ipynb":
        return f"not a notebook ({path.suffix or 'no extension'})"
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises JSON, validation and encoding errors alike
        return f"not a readable notebook ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:80]})"
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not any("parameters" in c.metadata.get("tags", []) for c in code):
        return "no parameters cell (a cell tagged 'parameters'): was it built from a released lab?"
    labs = {m for c in code for m in _START.findall(c.source)}
    if labs and lab_id not in labs:
        return f"a notebook of lab {'/'.join(sorted(labs))}, not lab {lab_id}"
    if not labs:
        return f"no lablib.start(\"{lab_id}\", ...) call: not a lab {lab_id} notebook"
    if any(_READS_NOTEBOOKS.search(c.source) for c in code):
        return "refused: its code reads notebook files (the solutions?)"
    return ""


def run_one(path: Path, lab_id: str, work: Path, runs_root: Path, overrides: List[str], timeout_s: float,
            memory_gb: float, workers: int = 1) -> dict:
    """Execute one submission headlessly (papermill, in a child process with a memory limit and a timeout) in
    its own folder ``work``; return its entry: status, message, each exercise's result and the lab's metrics."""
    import shutil
    import subprocess
    import sys
    import time

    from . import running

    entry = {"student": path.stem, "status": "", "message": "", "seconds": 0.0, "checks": {}, "metrics": {}}
    why = inspect(path, lab_id)
    if why:
        return {**entry, "status": "invalid", "message": why}
    work = work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    submission = work / "submission.ipynb"
    shutil.copyfile(path, submission)  # the submitted file itself is only ever read
    results = work / "checks.jsonl"
    env = {**os.environ, RESULTS_ENV: str(results), "JUPYTER_RUNTIME_DIR": str(work / ".jupyter"),
           "MPLBACKEND": "Agg", **running.worker_env(workers)}
    cmd = [sys.executable, "-m", "lablib.grading", str(submission), str(work / "executed.ipynb"), str(work / "run"),
           str(runs_root), json.dumps(overrides), str(memory_gb)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        status, message = ("ok", "") if proc.returncode == 0 else ("crashed", _last_line(out))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the kernel too: it is in the same session
        proc.communicate()
        status, message = "timeout", f"still running after {timeout_s:g} s; stopped"
    if status == "crashed" and re.search(r"MemoryError|[Cc]an(no|')t allocate memory", out):
        status, message = "memory", f"ran out of its {memory_gb:g} GB memory limit ({message})"
    entry.update(status=status, message=message, seconds=round(time.perf_counter() - start, 1))
    if results.exists():
        for line in results.read_text().splitlines():
            r = json.loads(line)
            entry["checks"][r["exercise"]] = "pass" if r["passed"] else f"fail: {r['message']}"
    metrics = work / "run" / "metrics.json"
    if metrics.exists():
        entry["metrics"] = json.loads(metrics.read_text())
    return entry


def _last_line(out: str) -> str:
    """The informative line of a failed execution: papermill's 'cell N' error, else the last line."""
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("GRADE-ERROR"):
            return line[len("GRADE-ERROR "):]
    return lines[-1][:200] if lines else "no output"


def _execute(submission: str, executed: str, run_dir: str, runs_root: str, overrides: str, memory_gb: str) -> int:
    """The child process: limit its memory (the kernel it starts inherits the limit), then papermill with the
    lab's parameters; a failing cell is reported by its number."""
    import resource

    limit = int(float(memory_gb) * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import papermill

    try:
        from .running import execute_notebook

        execute_notebook(Path(submission), Path(executed), {"overrides": json.loads(overrides), "run_dir": run_dir,
                                                            "runs_root": runs_root}, Path.cwd())
    except papermill.PapermillExecutionError as exc:
        print(f"GRADE-ERROR cell {exc.exec_count}: {exc.ename}: {str(exc.evalue).splitlines()[0][:160] if exc.evalue else ''}")
        return 1
    return 0


GRADEBOOK_FIXED = ["student", "status", "message", "seconds"]


def submission_files(folder: Path) -> List[Path]:
    """The submitted files in ``folder`` (hidden ones aside), checked: some, with distinct student names."""
    if not folder.is_dir():
        raise GradingError(f"{folder}: not a folder of submissions")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise GradingError(f"{folder}: no submissions in it")
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        raise GradingError(f"{folder}: two submissions share a name ({sorted({s for s in stems if stems.count(s) > 1})})")
    return files


def open_gradebook(book: Path, columns: List[str]) -> set:
    """The students ``book`` already grades (a new gradebook gets its header); a gradebook written for other
    exercises is an error, not something to append to."""
    import csv

    if not book.exists():
        book.write_text(",".join(columns) + "\n")
        return set()
    with book.open() as f:
        rows = list(csv.DictReader(f))
    if rows and list(rows[0]) != columns:
        raise GradingError(f"{book}: written for other exercises ({list(rows[0])}); use another output folder")
    return {r["student"] for r in rows}


def grade(submissions: str | Path, lab_key: str, out: str | Path, overrides=(), workers: int = 2,
          timeout_s: float = 600, memory_gb: float = 6.0, runs_root: str | Path | None = None,
          solution: str | Path | None = None, echo=print) -> Path:
    """Grade every file in ``submissions`` as lab ``lab_key``; append each entry to ``out/gradebook.csv`` as it
    finishes (students already there are skipped, so an interrupted batch resumes), then write
    ``out/gradebook.md``. The exercises are those of the lab's solution notebook (or ``solution``).
    Returns the CSV's path."""
    import csv
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from . import running

    lab = running.find_lab(lab_key)
    files = submission_files(Path(submissions))
    from .config import absolute_paths

    overrides = absolute_paths(list(overrides) or ["profile=smoke"])  # the kernels run in their own folders
    root = running.runs_root(runs_root)
    if lab.consumes:  # the upstream labs once, for everyone (cached when already run)
        ups = [k for k in running.with_upstream([lab.id]) if k != lab.id]
        running.run(ups, overrides, root, progress=False, echo=lambda *_: None)
    import nbformat

    names = exercise_names(nbformat.read(str(solution or lab.notebook_path), as_version=4))
    out = Path(out).resolve()  # each submission runs with its own folder as working directory
    out.mkdir(parents=True, exist_ok=True)
    book = out / "gradebook.csv"
    columns = GRADEBOOK_FIXED + names + ["metrics"]
    done = open_gradebook(book, columns)
    todo = [p for p in files if p.stem not in done]
    echo(f"lab {lab.id}: {len(files)} submissions, {len(done)} already graded, {len(todo)} to go ({workers} at a time)")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_one, p, lab.id, out / "work" / p.stem, root, overrides, timeout_s, memory_gb,
                               workers): p
                   for p in todo}
        for fut in as_completed(futures):
            e = fut.result()
            row = {"student": e["student"], "status": e["status"], "message": e["message"], "seconds": e["seconds"],
                   **{n: e["checks"].get(n, "not run") for n in names},
                   "metrics": json.dumps(e["metrics"], sort_keys=True) if e["metrics"] else ""}
            with book.open("a", newline="") as f:  # appended as it finishes: an interruption loses nothing
                csv.DictWriter(f, columns).writerow(row)
            passed = sum(v == "pass" for v in e["checks"].values())
            echo(f"  {e['student']}: {e['status']}, {passed}/{len(names)} exercises {e['message']}".rstrip())
    write_markdown(book, out / "gradebook.md")
    return book


def write_markdown(book: Path, dst: Path) -> Path:
    """The gradebook CSV as a Markdown table (metrics left out), rewritten whole."""
    import csv

    with book.open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["student"])
    cols = [c for c in (rows[0] if rows else GRADEBOOK_FIXED) if c != "metrics"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |" for r in rows]
    dst.write_text("\n".join(lines) + "\n")
    return dst


if __name__ == "__main__":
    import sys

    sys.exit(_execute(*sys.argv[1:7]))
