"""One submission, run: checked that it is a notebook of the lab, executed headlessly in the sandbox under its
limits, its exercises rechecked by the grader, and what it wrote read back as data only.

Its folder, ``work/``, is the grader's; inside it ``nb/`` is the only place the notebook run may write,
``exercises/`` the exercise process's, and ``log.txt`` (the run's output, of which the grader reads the tail)
is out of the submission's reach.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import List

from . import sandbox
from .verdicts import recheck

_START = re.compile(r"lablib\.start\(\s*[\"']((?:own/)?\d+)[\"']")  # "02", or "own/02" in the own-domain track
_READS_NOTEBOOKS = re.compile(r"\.ipynb\b|nbformat")
_LIMITS = {"limits": re.compile(r"File too large|Resource temporarily unavailable|can't start new thread|EAGAIN"),
           "memory": re.compile(r"MemoryError|[Cc]an(no|')t allocate memory")}
MAX_LOG_TAIL = 64 * 1024
MAX_METRICS = 256 * 1024


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
            limits: sandbox.Limits, workers: int = 1, calls: List[tuple] = (), sandbox_on: bool = True,
            readable: List[Path] = ()) -> dict:
    """Execute one submission (papermill, in :mod:`lablib.grading.sandbox` when ``sandbox_on``, as a sandbox
    user of its own) in ``work``, where ``readable`` (the upstream labs' artifacts) is all it sees of the runs
    folder; then the grader's verdict on each exercise ``calls`` of the released lab. Returns its entry: status,
    message, seconds, verdicts, and where its run wrote (``run``); its metrics are the grader's to compute."""
    from ..course import running

    entry = {"student": path.stem, "status": "", "message": "", "seconds": 0.0, "checks": {}, "run": "",
             "sandbox": "bubblewrap" if sandbox_on else "none"}
    why = inspect(path, lab_id)
    if why:
        return {**entry, "status": "invalid", "message": why}
    work = work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    nb_dir = work / "nb"
    nb_dir.mkdir(parents=True)
    submission = nb_dir / "submission.ipynb"
    shutil.copyfile(path, submission)  # the submitted file itself is only ever read
    with sandbox.user() as uid:
        sandbox.hand_over(nb_dir, uid)
        cmd = [sys.executable, "-I", "-m", "lablib.grading", "notebook", str(submission), str(nb_dir / "executed.ipynb"),
               str(nb_dir / "run"), str(runs_root), json.dumps(overrides), *limits.to_args()]
        if sandbox_on:
            cmd = sandbox.wrap(cmd, [nb_dir], readable, uid)
        env = sandbox.environment(nb_dir, running.worker_env(workers))
        entry.update(_run(cmd, nb_dir, env, work / "log.txt", timeout_s, limits))
        entry["checks"] = recheck(path, list(calls), timeout_s=min(timeout_s, 120), limits=limits,
                                  sandbox_on=sandbox_on, work=work / "exercises", uid=uid, workers=workers)
    entry["run"] = str(nb_dir / "run")
    return entry


def _run(cmd: List[str], cwd: Path, env: dict, log: Path, timeout_s: float, limits: sandbox.Limits) -> dict:
    """Run ``cmd`` under a timeout and the work folder's size cap; its status and the line that says why."""
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        watch = sandbox.Watch([cwd, log], limits.disk_gb * 2 ** 30, proc.pid)
        watch.start()
        try:
            proc.wait(timeout_s)
            status = "ok" if proc.returncode == 0 else "crashed"
        except subprocess.TimeoutExpired:
            status = "timeout"
        finally:
            try:
                os.killpg(proc.pid, 9)  # the kernel and whatever it left running, unsandboxed too
            except OSError:
                pass
            proc.wait()
            watch.stop()
    text = tail(log)
    message = {"ok": "", "timeout": f"still running after {timeout_s:g} s; stopped"}.get(status, _last_line(text))
    if watch.tripped:
        status, message = "limits", f"its work folder passed its {limits.disk_gb:g} GB limit; stopped"
    elif status == "crashed" and _LIMITS["limits"].search(text):
        status, message = "limits", f"hit a limit (processes {limits.processes}, files {limits.disk_gb:g} GB): {message}"
    elif status == "crashed" and _LIMITS["memory"].search(text):
        status, message = "memory", f"ran out of its {limits.memory_gb:g} GB memory limit ({message})"
    return {"status": status, "message": message, "seconds": round(time.perf_counter() - start, 1)}


def tail(path: Path, n: int = MAX_LOG_TAIL) -> str:
    """The last ``n`` bytes of ``path`` as text."""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - n))
        return f.read().decode("utf-8", "replace")


def _last_line(out: str) -> str:
    """The informative line of a failed execution: papermill's 'cell N' error, else the last line."""
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("GRADE-ERROR"):
            return line[len("GRADE-ERROR "):][:200]
    return lines[-1][:200] if lines else "no output"


def self_reported(run: str | Path) -> dict:
    """The numbers (and short strings) of the run's own ``metrics.json``, read as data: a plain file of at most
    :data:`MAX_METRICS` bytes, a JSON object; anything else is ``{}``. Shown, marked, never ranked by."""
    try:
        path = sandbox.plain_path(Path(run).parent, Path(run).name, "metrics.json")
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_METRICS:
            return {}
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
            raw = json.loads(f.read(MAX_METRICS).decode())
    except (OSError, TypeError, ValueError, RecursionError):
        return {}
    if not isinstance(raw, dict):
        return {}
    ok = lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)) or (  # noqa: E731
        isinstance(v, str) and len(v) <= 80)
    return {k[:80]: v for k, v in raw.items() if isinstance(k, str) and ok(v)}


def execute(submission: str, executed: str, run_dir: str, runs_root: str, overrides: str,
            limits: sandbox.Limits) -> int:
    """The notebook run's process: its limits first (the kernel it starts inherits them), then papermill with
    the lab's parameters; a failing cell is reported by its number."""
    sandbox.apply(limits)
    import papermill

    from ..course.running import execute_notebook

    try:
        execute_notebook(Path(submission), Path(executed), {"overrides": json.loads(overrides), "run_dir": run_dir,
                                                            "runs_root": runs_root}, Path.cwd())
    except papermill.PapermillExecutionError as exc:
        print(f"GRADE-ERROR cell {exc.exec_count}: {exc.ename}: "
              f"{str(exc.evalue).splitlines()[0][:160] if exc.evalue else ''}")
        return 1
    return 0
