"""Grading a folder of submissions of one lab into a gradebook (``lab grade LAB FOLDER``).

Each row: the run's status, each exercise's verdict (the grader's, :mod:`lablib.grading.verdicts`), whether it
ran sandboxed, the headline metrics the grader computed from the saved weights (:mod:`lablib.grading.scores`),
which rank the class, and the run's own ``metrics.json`` as ``self_reported``, shown but never ranked by.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import List, Optional

from . import sandbox, scores
from .releases import GradingError, exercise_calls
from .sandbox import Limits
from .submission import run_one, self_reported

GRADEBOOK_FIXED = ["student", "status", "message", "seconds", "sandbox"]
TRAILING = ["metrics", "self_reported"]


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
    if not book.exists():
        book.write_text(",".join(columns) + "\n")
        return set()
    with book.open() as f:
        rows = list(csv.DictReader(f))
    if rows and list(rows[0]) != columns:
        raise GradingError(f"{book}: written for other exercises or by an older grader ({list(rows[0])}); "
                           "use another output folder")
    return {r["student"] for r in rows}


def use_sandbox(sandbox_on: Optional[bool]) -> bool:
    """Whether to sandbox: yes unless ``sandbox_on`` is False; a sandbox that cannot start is an error then."""
    if sandbox_on is False:
        return False
    why = sandbox.problem()
    if why:
        raise GradingError(f"the grading sandbox cannot start: {why}. Install bubblewrap, or pass --no-sandbox "
                           "to grade without one (the gradebook then says so)")
    return True


def grade(submissions: str | Path, lab_key: str, out: str | Path, overrides=(), workers: int = 2,
          timeout_s: float = 600, memory_gb: float = 6.0, runs_root: str | Path | None = None,
          solution: str | Path | None = None, echo=print, sandbox: bool | None = None,
          launcher: str = "local", processes: int = 512, disk_gb: float = 4.0) -> Path:
    """Grade every file in ``submissions`` as lab ``lab_key``; append each entry to ``out/gradebook.csv`` as it
    finishes (students already there are skipped, so an interrupted batch resumes), then write
    ``out/gradebook.md``. The exercises are those of the lab's solution notebook (or ``solution``). Refuses to
    start when the sandbox cannot, unless ``sandbox=False``. Returns the CSV's path."""
    import nbformat

    from ..core import domain
    from ..course import running
    from ..core.config import absolute_paths

    lab = running.find_lab(lab_key)
    files = submission_files(Path(submissions))
    sandbox_on = use_sandbox(sandbox)
    overrides = absolute_paths(list(overrides) or ["profile=smoke"])  # the kernels run in their own folders
    root = running.runs_root(runs_root)
    if lab.consumes:  # the upstream labs once, for everyone (cached when already run)
        running.run(running.upstream_keys(lab), overrides, root, progress=False, echo=lambda *_: None)
    cfg = running.compose(lab, overrides, root)  # Hydra: here, not in threads
    readable = [Path(p) for p in cfg.inputs.values()] + [p.resolve() for p in domain.of(cfg).paths(cfg).values()]
    calls = exercise_calls(nbformat.read(str(solution or lab.notebook_path), as_version=4))
    names = [name for name, _ in calls]
    out = Path(out).resolve()  # each submission runs with its own folder as working directory
    out.mkdir(parents=True, exist_ok=True)
    book = out / "gradebook.csv"
    columns = GRADEBOOK_FIXED + names + TRAILING
    done = open_gradebook(book, columns)
    todo = [p for p in files if p.stem not in done]
    echo(f"lab {lab.key}: {len(files)} submissions, {len(done)} already graded, {len(todo)} to go ({workers} at a time, "
         f"{'sandboxed' if sandbox_on else 'NOT sandboxed (--no-sandbox)'})")
    score = scores.scorer(lab, cfg) if todo else None  # the grader's own data and references, once for the class
    limits = Limits(memory_gb=memory_gb, processes=processes, disk_gb=disk_gb)
    jobs = [(p, lab.key, out / "work" / p.stem, root, overrides, timeout_s, limits, workers, calls, sandbox_on,
             readable) for p in todo]
    for e in _entries(jobs, launcher, workers, out, timeout_s, memory_gb):
        metrics, note = _score(score, e)
        row = {"student": e["student"], "status": e["status"], "message": e["message"] or note,
               "seconds": e["seconds"], "sandbox": e["sandbox"], **{n: e["checks"].get(n, "not run") for n in names},
               "metrics": json.dumps(metrics, sort_keys=True) if metrics else "",
               "self_reported": json.dumps(self_reported(e["run"]), sort_keys=True) if e["run"] else ""}
        with book.open("a", newline="") as f:  # appended as it finishes: an interruption loses nothing
            csv.DictWriter(f, columns).writerow(row)
        passed = sum(v == "pass" for v in e["checks"].values())
        echo(f"  {e['student']}: {e['status']}, {passed}/{len(names)} exercises {e['message']}".rstrip())
    write_markdown(book, out / "gradebook.md", lab)
    return book


def _score(score, entry: dict) -> tuple:
    """``(metrics, note)``: the grader's headline metrics from the run's saved weights, or why there are none."""
    if score is None or entry["status"] != "ok":
        return {}, ""
    try:
        return score(Path(entry["run"])), ""
    except scores.ArtifactError as exc:
        return {}, f"not scored: {exc}"


def _entries(jobs: List[tuple], launcher: str, workers: int, out: Path, timeout_s: float, memory_gb: float):
    """:func:`run_one` for each job, as each finishes: threads here (``local``), or submitit jobs
    (``submitit-local``, ``slurm``) each given the submission's time and memory limits plus a margin."""
    if launcher == "local":
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            yield from (f.result() for f in as_completed([pool.submit(run_one, *job) for job in jobs]))
        return
    from ..course.batch import submit

    params = {"timeout_min": int(timeout_s // 60) + 5} if launcher == "submitit-local" else {
        "timeout_min": int(timeout_s // 60) + 5, "mem_gb": memory_gb + 2, "cpus_per_task": 2}
    yield from submit(run_one, jobs, out / "submitit", launcher, workers, params)


def headline(lab, rows: List[dict]) -> tuple:
    """``(column, value of a row, rows in order)``: the lab's headline metric as the grader computed it, rows
    best first; for a lab whose metrics are self-reported, that metric marked so, and rows by student."""
    from ..course import batch

    if lab.key in scores.SCORED:
        metric, ordered = batch.ranked(rows, lab, key=lambda r: json.loads(r.get("metrics") or "{}"))
        return metric, (lambda r: json.loads(r.get("metrics") or "{}").get(metric)), ordered
    metric = lab.headline[0] if lab.headline else None
    return (f"{metric} (self-reported)" if metric else None,
            lambda r: json.loads(r.get("self_reported") or "{}").get(metric), rows)


def write_markdown(book: Path, dst: Path, lab=None) -> Path:
    """The gradebook CSV as a Markdown table, rewritten whole: by student, or with ``lab`` by its headline
    metric (:func:`headline`, a column of its own); the first line says whether the runs were sandboxed."""
    with book.open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["student"])
    cols = [c for c in (rows[0] if rows else GRADEBOOK_FIXED) if c not in TRAILING]
    if lab is not None:
        column, value, rows = headline(lab, rows)
        if column:
            for r in rows:
                v = value(r)
                r[column] = f"{v:.4g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            cols.append(column)
    modes = sorted({r.get("sandbox", "") for r in rows} - {""})
    lines = [f"Sandbox: {', '.join(modes) if modes else 'nothing ran'}.", ""] if "sandbox" in cols else []
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|").replace("\n", " ") for c in cols) + " |" for r in rows]
    dst.write_text("\n".join(lines) + "\n")
    return dst
