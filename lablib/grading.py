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

from .exercises import BEGIN, END, EXERCISE_TAG
from .running import RunError

STUB = 'raise NotImplementedError("exercise: write this part")'


class GradingError(RunError):
    """A notebook or folder that cannot be released or graded, worded as one line."""


# --------------------------------------------------------------------------------------------
# The sandbox: what a submission's code can see
# --------------------------------------------------------------------------------------------
def sandbox_available() -> bool:
    import shutil

    return shutil.which("bwrap") is not None


def sandboxed(cmd: List[str], writable: List[Path], readable: List[Path] = ()) -> List[str]:
    """``cmd`` inside bubblewrap (Debian's ``bubblewrap``): no network (a private loopback only), a private
    ``/tmp``, the system and the Python installation read-only, of the kit only ``lablib/`` and ``conf/``
    read-only, then ``readable`` read-only and ``writable`` read-write. Everything else -- the solution notebooks
    in ``labs/``, the course's executed runs, other students' work -- does not exist in there."""
    import sys

    from . import config, models

    ro = [Path(p) for p in ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc") if Path(p).exists()]
    ro += [Path(sys.base_prefix), Path(sys.prefix), config.home() / "lablib", config.home() / "conf"]
    ro += [p for p in (models.cache_dir(),) if p.exists()] + [Path(p) for p in readable]
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    for p in dict.fromkeys(ro):
        args += ["--ro-bind", str(p), str(p)]
    for p in writable:
        args += ["--bind", str(p), str(p)]
    return args + ["--chdir", str(writable[0]), *cmd]


# --------------------------------------------------------------------------------------------
# The grader's own verdict: the student's definitions in a fresh process, the checks in the grader's
# --------------------------------------------------------------------------------------------
PRELUDE = "import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"
_CHECK_CALL = re.compile(r"exercises\.check\(\s*[\"']([^\"']+)[\"']\s*,\s*([A-Za-z_]\w*)\s*\)")


def exercise_calls(nb) -> List[tuple]:
    """``(exercise, function name)`` of each ``exercises.check("NAME", function)`` call in a notebook, in order."""
    return [m for c in nb.cells if c.cell_type == "code" for m in _CHECK_CALL.findall(c.source)]


def _detached(x):
    import torch

    if torch.is_tensor(x):
        return x.detach()
    if isinstance(x, (list, tuple)):
        return type(x)(_detached(v) for v in x)
    return x


class _Channel:
    """Two pipe ends carrying plain pickles (not multiprocessing's pickler, whose torch reductions would share
    tensors through file descriptors and an authenticated side channel the two processes do not share)."""

    def __init__(self, read_fd: int, write_fd: int):
        from multiprocessing.connection import Connection

        self.inbox, self.outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)

    def send(self, obj) -> None:
        import pickle

        self.outbox.send_bytes(pickle.dumps(obj))

    def recv(self):
        import pickle

        return pickle.loads(self.inbox.recv_bytes())

    def poll(self, timeout: float) -> bool:
        return self.inbox.poll(timeout)

    def close(self) -> None:
        self.inbox.close()
        self.outbox.close()


def _student_side(conn, sources: List[str]) -> None:
    """The child process: define the student's exercise cells, then answer calls -- each under lablib's profiler,
    which flags a call into the exercise's reference -- until told to stop. Nothing here decides a verdict."""
    from . import exercises

    scope: dict = {}
    exec(PRELUDE, scope)
    errors = []
    for i, source in enumerate(sources):
        try:
            exec(compile(source, f"<exercise cell {i + 1}>", "exec"), scope)
        except BaseException as exc:  # a cell that fails to define is reported with the call that needs it
            errors.append(f"{type(exc).__name__}: {str(exc).strip()[:120]}")
    while (msg := conn.recv()) is not None:
        func, name, args = msg
        try:
            if not callable(scope.get(func)):
                raise NameError(f"the exercise cells define no function {func}"
                                + (f" (a cell failed: {errors[0]})" if errors else ""))
            out = exercises.watched(scope[func], name)(*args)
            conn.send(("ok", _detached(out), _detached(args)))
        except exercises.Borrowed as exc:
            conn.send(("borrowed", str(exc), _detached(args)))
        except NotImplementedError:
            conn.send(("not implemented", "", _detached(args)))
        except BaseException as exc:  # anything the student's code raises goes back as its type and message
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            conn.send(("error", f"{type(exc).__name__}: {first}"[:300], _detached(args)))


class _Remote:
    """The student's function, living in the child process: a call sends the arguments there and brings back the
    result, and the arguments as the function left them (so the checks still see an in-place change)."""

    def __init__(self, channel: _Channel, func: str, name: str, timeout_s: float):
        self.channel, self.func, self.name, self.timeout_s = channel, func, name, timeout_s

    def __call__(self, *args):
        import torch

        from .exercises import StudentError

        try:
            self.channel.send((self.func, self.name, args))
            if not self.channel.poll(self.timeout_s):
                raise StudentError(f"no answer within {self.timeout_s:g} s")
            status, payload, after = self.channel.recv()
        except (EOFError, OSError, BrokenPipeError):
            raise StudentError("the process running the exercise died (its memory limit?)") from None
        for a, b in zip(args, after):
            if torch.is_tensor(a) and not torch.equal(a, b):
                with torch.no_grad():
                    a.copy_(b)
            elif isinstance(a, list) and a != b:
                a[:] = b
        if status == "ok":
            return payload
        if status == "borrowed":
            raise AssertionError(payload)
        if status == "not implemented":
            raise NotImplementedError
        raise StudentError(payload)


def recheck(notebook: str | Path, calls: List[tuple], timeout_s: float = 60, memory_gb: float = 4.0,
            sandbox: bool | None = None, work: str | Path | None = None) -> dict:
    """The grader's verdict on each exercise of ``calls`` (``(exercise, function name)``, from the released lab):
    the submission's ``exercise`` cells are defined in a fresh process (in the :func:`sandboxed` sandbox when
    ``sandbox``, by default when bubblewrap is installed), and every check runs here, in the grader's, calling into
    that process over a pipe. What the student's kernel printed or wrote counts for nothing; their code can neither
    patch the checks nor forge a result. Returns ``{exercise: "pass" | "fail: why"}``."""
    import subprocess
    import sys
    import tempfile

    import nbformat

    from . import exercises

    nb = nbformat.read(str(notebook), as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code" and EXERCISE_TAG in c.metadata.get("tags", [])]
    work = Path(work or tempfile.mkdtemp(prefix="recheck-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    down, up = os.pipe(), os.pipe()  # grader -> student, student -> grader
    cmd = [sys.executable, "-m", "lablib.grading", "--student-side", str(down[0]), str(up[1]), str(memory_gb)]
    if sandbox or (sandbox is None and sandbox_available()):
        cmd = sandboxed(cmd, [work])
    proc = subprocess.Popen(cmd, cwd=work, pass_fds=(down[0], up[1]), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(down[0])
    os.close(up[1])
    channel = _Channel(up[0], down[1])
    results = {}
    try:
        channel.send(sources)
        for name, func in calls:
            ok, why = exercises.verdict(name, _Remote(channel, func, name, timeout_s), watch=False)
            results[name] = "pass" if ok else f"fail: {why}"
    finally:
        try:
            channel.send(None)
        except OSError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        channel.close()
    return results


def _serve(read_fd: str, write_fd: str, memory_gb: str) -> int:
    """``python -m lablib.grading --student-side R W GB``: the child of :func:`recheck`, under a memory limit."""
    import resource

    limit = int(float(memory_gb) * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    channel = _Channel(int(read_fd), int(write_fd))
    _student_side(channel, channel.recv())
    return 0


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
            memory_gb: float, workers: int = 1, calls: List[tuple] = (), sandbox: bool | None = None,
            readable: List[Path] = ()) -> dict:
    """Execute one submission headlessly (papermill, in a child process with a memory limit and a timeout, in the
    :func:`sandboxed` sandbox when ``sandbox`` -- by default when bubblewrap is installed) in its own folder
    ``work``, where ``readable`` (the upstream labs' artifacts) is all it sees of the runs folder; return its
    entry: status, message, each exercise's verdict (:func:`recheck`, on the exercises ``calls`` of the released
    lab) and the lab's metrics."""
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
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(work / ".jupyter"), "HOME": str(work),
           "MPLCONFIGDIR": str(work / ".matplotlib"), "MPLBACKEND": "Agg", **running.worker_env(workers)}
    cmd = [sys.executable, "-m", "lablib.grading", str(submission), str(work / "executed.ipynb"), str(work / "run"),
           str(runs_root), json.dumps(overrides), str(memory_gb)]
    sandbox = sandbox_available() if sandbox is None else sandbox
    if sandbox:
        cmd = sandboxed(cmd, [work], list(readable))
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
    entry["checks"] = recheck(path, list(calls), timeout_s=min(timeout_s, 120), memory_gb=memory_gb,
                              sandbox=sandbox, work=work / "recheck")
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
          solution: str | Path | None = None, echo=print, sandbox: bool | None = None,
          launcher: str = "local") -> Path:
    """Grade every file in ``submissions`` as lab ``lab_key``; append each entry to ``out/gradebook.csv`` as it
    finishes (students already there are skipped, so an interrupted batch resumes), then write
    ``out/gradebook.md``. The exercises are those of the lab's solution notebook (or ``solution``).
    Returns the CSV's path."""
    import csv

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

    readable = [Path(p) for p in running.compose(lab, overrides, root).inputs.values()]  # Hydra: not in threads
    calls = exercise_calls(nbformat.read(str(solution or lab.notebook_path), as_version=4))
    names = [name for name, _ in calls]
    out = Path(out).resolve()  # each submission runs with its own folder as working directory
    out.mkdir(parents=True, exist_ok=True)
    book = out / "gradebook.csv"
    columns = GRADEBOOK_FIXED + names + ["metrics"]
    done = open_gradebook(book, columns)
    todo = [p for p in files if p.stem not in done]
    echo(f"lab {lab.id}: {len(files)} submissions, {len(done)} already graded, {len(todo)} to go ({workers} at a time)")
    jobs = [(p, lab.id, out / "work" / p.stem, root, overrides, timeout_s, memory_gb, workers, calls, sandbox,
             readable) for p in todo]
    for e in _entries(jobs, launcher, workers, out, timeout_s, memory_gb):
        row = {"student": e["student"], "status": e["status"], "message": e["message"], "seconds": e["seconds"],
               **{n: e["checks"].get(n, "not run") for n in names},
               "metrics": json.dumps(e["metrics"], sort_keys=True) if e["metrics"] else ""}
        with book.open("a", newline="") as f:  # appended as it finishes: an interruption loses nothing
            csv.DictWriter(f, columns).writerow(row)
        passed = sum(v == "pass" for v in e["checks"].values())
        echo(f"  {e['student']}: {e['status']}, {passed}/{len(names)} exercises {e['message']}".rstrip())
    write_markdown(book, out / "gradebook.md", lab)
    return book


def _entries(jobs: List[tuple], launcher: str, workers: int, out: Path, timeout_s: float, memory_gb: float):
    """:func:`run_one` for each job, as each finishes: threads here (``local``), or submitit jobs
    (``submitit-local``, ``slurm``) each given the submission's time and memory limits plus a margin."""
    if launcher == "local":
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            yield from (f.result() for f in as_completed([pool.submit(run_one, *job) for job in jobs]))
        return
    from .batch import submit

    params = {"timeout_min": int(timeout_s // 60) + 5} if launcher == "submitit-local" else {
        "timeout_min": int(timeout_s // 60) + 5, "mem_gb": memory_gb + 2, "cpus_per_task": 2}
    yield from submit(run_one, jobs, out / "submitit", launcher, workers, params)


def write_markdown(book: Path, dst: Path, lab=None) -> Path:
    """The gradebook CSV as a Markdown table, rewritten whole: by student, or with ``lab`` best first by its
    headline metric (a column of its own; the other metrics left out)."""
    import csv

    from . import running

    with book.open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["student"])
    cols = [c for c in (rows[0] if rows else GRADEBOOK_FIXED) if c != "metrics"]
    if lab is not None:
        metric, rows = running.ranked(rows, lab, key=lambda r: json.loads(r.get("metrics") or "{}"))
        if metric:
            for r in rows:
                value = json.loads(r.get("metrics") or "{}").get(metric)
                r[metric] = f"{value:.4g}" if isinstance(value, (int, float)) else ""
            cols.append(metric)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |" for r in rows]
    dst.write_text("\n".join(lines) + "\n")
    return dst


# --------------------------------------------------------------------------------------------
# A whole class: one folder per student, any labs in it
# --------------------------------------------------------------------------------------------
def _code(path: Path) -> str:
    """A notebook's code cells as text ('' if it is not a readable notebook)."""
    try:
        cells = json.loads(path.read_text(errors="replace"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c.get("cell_type") == "code")
    except (ValueError, KeyError, TypeError):
        return ""


def class_submissions(folder: Path) -> dict:
    """``{lab id: {student: notebook}}`` from a class folder holding one sub-folder per student; a notebook's lab
    is the one its ``lablib.start("NN", ...)`` call names. Anything else is listed under lab ``"?"``."""
    if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
        raise GradingError(f"{folder}: not a class folder (one sub-folder per student)")
    out: dict = {}
    for student in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in student.iterdir() if p.is_file() and not p.name.startswith(".")):
            labs = sorted(set(_START.findall(_code(path)))) if path.suffix == ".ipynb" else []
            lab = labs[0] if len(labs) == 1 else "?"
            if student.name in out.setdefault(lab, {}):
                raise GradingError(f"{student}: two notebooks of lab {lab} ({out[lab][student.name].name}, {path.name})")
            out[lab][student.name] = path
    return out


def grade_class(folder: str | Path, out: str | Path, overrides=(), echo=print, **kwargs) -> Path:
    """Grade a class folder (:func:`class_submissions`) lab by lab with :func:`grade` (each lab's gradebook in
    ``out/labs/NN``, resumable), then write the course gradebook -- ``out/course.csv`` and ``course.md``, one row
    per student, one column per exercise, with totals -- and ``out/feedback/<student>.md``, what failed and why
    and each lab's headline metrics, ready to send back. Returns the course CSV's path."""
    import shutil

    from . import running

    by_lab = class_submissions(Path(folder))
    out = Path(out).resolve()
    books = {}
    for lab_id in sorted(k for k in by_lab if k != "?"):
        lab = running.find_lab(lab_id)
        staged = out / "labs" / lab_id / "submissions"  # the student's name as the file name; the file is copied
        staged.mkdir(parents=True, exist_ok=True)
        for student, path in by_lab[lab_id].items():
            if not (staged / f"{student}.ipynb").exists():
                shutil.copyfile(path, staged / f"{student}.ipynb")
        echo(f"lab {lab_id} ({lab.name}): {len(by_lab[lab_id])} students")
        books[lab_id] = grade(staged, lab_id, out / "labs" / lab_id, overrides, echo=echo, **kwargs)
    students = sorted({s for subs in by_lab.values() for s in subs})
    return write_course(books, students, by_lab.get("?", {}), out)


def _course_rows(books: dict, students: list) -> tuple:
    """``(exercise columns, {student: {column: verdict}}, {student: {lab: gradebook row}})`` of the labs' books."""
    import csv

    from . import running

    columns, table, entries = [], {s: {} for s in students}, {s: {} for s in students}
    for lab_id, book in books.items():
        rows = list(csv.DictReader(book.open()))
        names = [c for c in (rows[0] if rows else {}) if c not in GRADEBOOK_FIXED + ["metrics"]]
        lab = running.find_lab(lab_id)
        head = f"{lab_id} {lab.headline[0]}" if lab.headline else None  # the lab's headline metric, a column too
        columns += names + ([head] if head else [])
        for r in rows:
            metrics = json.loads(r["metrics"] or "{}")
            entries[r["student"]][lab_id] = r
            table[r["student"]].update({n: r[n] for n in names})
            if head and isinstance(metrics.get(lab.headline[0]), (int, float)):
                table[r["student"]][head] = f"{metrics[lab.headline[0]]:.4g}"
    return columns, table, entries


def write_course(books: dict, students: list, unknown: dict, out: Path) -> Path:
    """The course gradebook and one feedback file per student (see :func:`grade_class`)."""
    import csv

    from . import running

    columns, table, entries = _course_rows(books, students)
    course = out / "course.csv"
    with course.open("w", newline="") as f:
        w = csv.DictWriter(f, ["student", *columns, "passed", "total"])
        w.writeheader()
        exercises = [c for c in columns if " " not in c]
        for s in students:
            verdicts = [table[s].get(c, "not submitted" if c in exercises else "") for c in columns]
            w.writerow({"student": s, **dict(zip(columns, verdicts)),
                        "passed": sum(table[s].get(c) == "pass" for c in exercises), "total": len(exercises)})
    write_markdown(course, out / "course.md")
    (out / "feedback").mkdir(exist_ok=True)
    for s in students:
        lines = [f"# Feedback for {s}", ""]
        for lab_id, book in books.items():
            lab, e = running.find_lab(lab_id), entries[s].get(lab_id)
            if e is None:
                lines += [f"## Lab {lab_id} ({lab.title})", "", "Not submitted.", ""]
                continue
            metrics = json.loads(e["metrics"] or "{}")
            shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in lab.headline if isinstance(metrics.get(k), (int, float)))
            lines += [f"## Lab {lab_id} ({lab.title})", "", f"Run: {e['status']}" + (f" -- {e['message']}" if e["message"]
                                                                                     else ""), ""]
            lines += [f"- {n}: {e[n]}" for n in e if n not in GRADEBOOK_FIXED + ["metrics"]]
            lines += ["", f"Headline metrics: {shown}." if shown else "No metrics (the lab did not finish).", ""]
        lines += [f"Not graded: {p.name} (no single lab in it)." for who, p in unknown.items() if who == s]
        (out / "feedback" / f"{s}.md").write_text("\n".join(lines).rstrip() + "\n")
    return course


if __name__ == "__main__":
    import sys

    sys.exit(_serve(*sys.argv[2:5]) if sys.argv[1] == "--student-side" else _execute(*sys.argv[1:7]))
