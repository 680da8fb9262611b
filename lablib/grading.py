"""Exercises, student releases and autograding.

In a solution notebook an exercise is a code cell tagged ``exercise``: the student's part sits between
``### BEGIN SOLUTION`` and ``### END SOLUTION``. The cell after it calls :func:`check`, which tests the
student's function against lablib's own on fresh inputs and prints ``PASS name`` or ``FAIL name: why``.
A failed check never stops the notebook, so a grader sees every exercise.

``lab release`` (:func:`release`) writes the student notebooks: each solution block replaced by a stub that
raises ``NotImplementedError``, every output cleared, the checks kept.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
from pathlib import Path
from typing import Callable, Dict, List

import torch

from .running import RunError

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE_TAG = "exercise"
STUB = 'raise NotImplementedError("exercise: write this part")'
RESULTS_ENV = "LABLIB_CHECKS"  # set by the grader: check results are appended to this JSONL file


class GradingError(RunError):
    """A notebook or folder that cannot be released or graded, worded as one line."""


# --------------------------------------------------------------------------------------------
# Checks: the student's function against lablib's on fresh inputs
# --------------------------------------------------------------------------------------------
CHECKS: Dict[str, Callable] = {}


def _registered(name: str):
    def wrap(fn):
        CHECKS[name] = fn
        return fn
    return wrap


def _close(got, want, what: str, atol: float = 1e-5) -> None:
    got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if not torch.isfinite(got).all():
        raise AssertionError(f"{what}: got a NaN or inf (compute it in a numerically stable way)")
    if not torch.allclose(got, want, atol=atol, rtol=1e-4):
        i = int((got - want).abs().argmax())
        raise AssertionError(f"{what}: got {got.flatten()[i].item():.6g}, expected {want.flatten()[i].item():.6g}")


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(random.randrange(2 ** 31))  # fresh inputs each time: no hard-coding


@_registered("01.next_token_loss")
def _check_next_token_loss(fn) -> None:
    F = torch.nn.functional
    g = _generator()
    for b, t, v, scale in ((1, 5, 7, 1.0), (3, 9, 11, 2.0), (2, 6, 5, 80.0)):  # the last needs log-softmax
        logits, ids = torch.randn(b, t, v, generator=g) * scale, torch.randint(0, v, (b, t), generator=g)
        want = F.cross_entropy(logits[:, :-1].reshape(-1, v).double(), ids[:, 1:].reshape(-1))
        got = torch.as_tensor(fn(logits.clone(), ids.clone()), dtype=torch.float64)
        unshifted = F.cross_entropy(logits.reshape(-1, v).double(), ids.reshape(-1))
        if got.shape == () and torch.isclose(got, unshifted) and not torch.isclose(got, want):
            raise AssertionError("the logits at position t must predict the token at t + 1: shift by one")
        _close(got, want, f"loss on a batch of {b} x {t} tokens, vocabulary {v}, logits of scale {scale:g}")


@_registered("02.mask_prompt")
def _check_mask_prompt(fn) -> None:
    g = _generator()
    ids = torch.randint(5, 50, (3, 8), generator=g)
    prompt_lens = torch.tensor([2, 5, 1])
    attention = torch.tensor([[1] * 8, [1] * 7 + [0], [1] * 4 + [0] * 4])  # rows 2 and 3 end in padding
    want = ids.clone()
    want[torch.arange(8)[None, :] < prompt_lens[:, None]] = -100
    want[attention == 0] = -100
    before = ids.clone()
    got = torch.as_tensor(fn(ids, prompt_lens, attention))
    if not torch.equal(ids, before):
        raise AssertionError("input_ids were changed in place: build the labels in a copy (.clone())")
    if got.shape != want.shape:
        raise AssertionError(f"labels of shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    bad = (got != want).nonzero()
    if len(bad):
        i, j = bad[0].tolist()
        why = ("a prompt token" if j < prompt_lens[i] else "padding" if attention[i, j] == 0 else "a response token")
        raise AssertionError(f"row {i}, position {j} ({why}): label {got[i, j].item()}, expected {want[i, j].item()}")


@_registered("03.lora_forward")
def _check_lora_forward(fn) -> None:
    g = _generator()
    for shape, d_in, d_out, r, alpha in (((4,), 6, 5, 2, 4.0), ((2, 3), 8, 8, 4, 16.0), ((1,), 5, 3, 1, 1.0)):
        x, w = torch.randn(*shape, d_in, generator=g), torch.randn(d_out, d_in, generator=g)
        a, b = torch.randn(r, d_in, generator=g), torch.randn(d_out, r, generator=g)
        want = x @ w.T + (alpha / r) * (x @ a.T) @ b.T
        got = torch.as_tensor(fn(x, w, a, b, alpha))
        if got.shape == want.shape and r > 1 and torch.allclose(got, x @ w.T + (x @ a.T) @ b.T, atol=1e-4):
            raise AssertionError("the update is not scaled: multiply B(Ax) by alpha / r")
        if got.shape == want.shape and r > 1 and torch.allclose(got, x @ w.T + alpha * (x @ a.T) @ b.T, atol=1e-4):
            raise AssertionError("the update is scaled by alpha: the scale is alpha / r")
        _close(got, want, f"x of shape {tuple(x.shape)}, rank {r}, alpha {alpha:g}", atol=1e-4)
    # The same numbers as PEFT's own LoRA layer (random A and B, so the update is not zero).
    import peft

    base = torch.nn.Sequential(torch.nn.Linear(6, 4, bias=False))
    model = peft.get_peft_model(base, peft.LoraConfig(r=2, lora_alpha=8, target_modules=["0"],
                                                      init_lora_weights=False))
    layer = model.base_model.model[0]
    x = torch.randn(3, 6, generator=g)
    with torch.no_grad():
        _close(fn(x, layer.base_layer.weight, layer.lora_A["default"].weight, layer.lora_B["default"].weight, 8.0),
               layer(x), "against PEFT's LoRA layer (r=2, alpha=8)", atol=1e-4)


@_registered("04.bt_loss")
def _check_bt_loss(fn) -> None:
    from .reward import bt_loss

    if fn is bt_loss:
        raise AssertionError("this is lablib's own bt_loss: write yours")

    g = _generator()
    for n, scale in ((1, 1.0), (8, 3.0), (5, 60.0)):  # the last needs a stable log-sigmoid
        chosen, rejected = torch.randn(n, generator=g) * scale, torch.randn(n, generator=g) * scale
        want = -torch.nn.functional.logsigmoid(chosen.double() - rejected.double()).mean()
        _close(fn(chosen, rejected), want, f"bt_loss on {n} pairs with rewards of scale {scale:g}")
    same = torch.zeros(3)
    _close(fn(same, same), math.log(2), "bt_loss when chosen and rejected score the same (should be log 2)")
    chosen, rejected = torch.tensor([-100.0, 3.0]), torch.tensor([100.0, 1.0])  # a margin of -200
    want = -torch.nn.functional.logsigmoid(chosen.double() - rejected.double()).mean()
    _close(fn(chosen, rejected), want, "bt_loss with a margin of -200 (rejected far ahead)")


@_registered("05.gae")
def _check_gae(fn) -> None:
    from .ppo import gae

    if fn is gae:
        raise AssertionError("this is lablib's own gae: write yours")

    g = _generator()
    rewards, values = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    mask = torch.tensor([[1.0] * 6, [1.0] * 4 + [0.0] * 2, [1.0] + [0.0] * 5])
    for gamma, lam in ((1.0, 1.0), (1.0, 0.95), (0.9, 0.0)):
        adv, ret = gae(rewards, values, mask, gamma, lam)
        got = fn(rewards.clone(), values.clone(), mask, gamma, lam)
        if not isinstance(got, tuple) or len(got) != 2:
            raise AssertionError("gae must return (advantages, returns)")
        _close(got[0], adv, f"advantages with gamma={gamma}, lam={lam}")
        _close(got[1], ret, f"returns with gamma={gamma}, lam={lam}")


@_registered("06.select")
def _check_select(fn) -> None:
    from .raft import select

    if fn is select:
        raise AssertionError("this is lablib's own select: write yours")

    rng = random.Random()
    cases = [(["a", "b", "c", "d"], [0.1, 0.9, 0.5, 0.5], 2),  # a tie: the earlier sample wins
             (["a", "", "c", "d", "e", "f"], [5.0, 9.0, float("nan"), 1.0, 2.0, 3.0], 3)]  # invalid samples
    scores = [rng.gauss(0, 1) for _ in range(12)]
    cases.append(([f"r{i}" for i in range(12)], scores, 4))
    for responses, sc, k in cases:
        want = select(responses, sc, k, "per_prompt")
        got = fn(responses, sc, k)
        if list(got) != want:
            raise AssertionError(f"for scores {[round(s, 2) for s in sc]} and k={k}: kept {list(got)}, expected {want}")


@_registered("07.response_nll")
def _check_response_nll(fn) -> None:
    g = _generator()
    for t, v, n_prompt, scale in ((6, 7, 2, 1.0), (9, 5, 4, 3.0), (5, 11, 1, 80.0)):  # the last: log-softmax
        logits, ids = torch.randn(t, v, generator=g) * scale, torch.randint(0, v, (t,), generator=g)
        logp = torch.log_softmax(logits.double(), -1)
        want = -logp[n_prompt - 1:-1].gather(1, ids[n_prompt:, None]).sum()
        got = torch.as_tensor(fn(logits.clone(), ids.clone(), n_prompt), dtype=torch.float64)
        if got.shape == () and torch.isclose(got, want / (t - n_prompt)) and t - n_prompt > 1:
            raise AssertionError("that is the mean per token: the leaderboard sums over the response's tokens")
        unshifted = -logp[n_prompt:].gather(1, ids[n_prompt:, None]).sum()
        if got.shape == () and torch.isclose(got, unshifted) and not torch.isclose(got, want):
            raise AssertionError("the token at position t is predicted by the logits at t - 1: shift by one")
        _close(got, want, f"{t} tokens of which {n_prompt} prompt, vocabulary {v}, logits of scale {scale:g}",
               atol=1e-4)


def check(name: str, fn: Callable) -> bool:
    """Run exercise ``name``'s check on the student's ``fn``; print PASS or FAIL with the reason; never raise."""
    if name not in CHECKS:
        raise GradingError(f"no exercise called {name!r}; known: {', '.join(sorted(CHECKS))}")
    try:
        CHECKS[name](fn)
        ok, why = True, ""
    except NotImplementedError:
        ok, why = False, "not implemented yet"
    except Exception as exc:  # the student's code may raise anything; report it, do not stop the notebook
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        ok, why = False, f"{type(exc).__name__}: {first}" if not isinstance(exc, AssertionError) else first
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    if os.environ.get(RESULTS_ENV):
        with open(os.environ[RESULTS_ENV], "a") as f:
            f.write(json.dumps({"exercise": name, "passed": ok, "message": why}) + "\n")
    return ok


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


def exercises(nb) -> List[str]:
    """The exercise names a notebook checks, in order (from its ``check("NAME", ...)`` calls)."""
    return [m for c in nb.cells if c.cell_type == "code"
            for m in re.findall(r"grading\.check\(\s*[\"']([^\"']+)[\"']", c.source)]


def release(src: str | Path, dst: str | Path) -> dict:
    """Write the student version of the notebook ``src`` to ``dst``: solutions stubbed, outputs cleared.
    Returns the number of exercises and stubbed blocks."""
    import nbformat  # here, not at the top: its import costs ~2 s that a lab calling check() need not pay

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
    return {"exercises": len(exercises(nb)), "blocks": blocks}


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
    folder = Path(submissions)
    if not folder.is_dir():
        raise GradingError(f"{folder}: not a folder of submissions")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise GradingError(f"{folder}: no submissions in it")
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        raise GradingError(f"{folder}: two submissions share a name ({sorted({s for s in stems if stems.count(s) > 1})})")
    from .config import absolute_paths

    overrides = absolute_paths(list(overrides) or ["profile=smoke"])  # the kernels run in their own folders
    root = running.runs_root(runs_root)
    if lab.consumes:  # the upstream labs once, for everyone (cached when already run)
        ups = [k for k in running.with_upstream([lab.id]) if k != lab.id]
        running.run(ups, overrides, root, progress=False, echo=lambda *_: None)
    import nbformat

    names = exercises(nbformat.read(str(solution or lab.notebook_path), as_version=4))
    out = Path(out).resolve()  # each submission runs with its own folder as working directory
    out.mkdir(parents=True, exist_ok=True)
    book = out / "gradebook.csv"
    columns = GRADEBOOK_FIXED + names + ["metrics"]
    done = set()
    if book.exists():
        with book.open() as f:
            rows = list(csv.DictReader(f))
        if rows and list(rows[0]) != columns:
            raise GradingError(f"{book}: written for other exercises ({list(rows[0])}); use another output folder")
        done = {r["student"] for r in rows}
    else:
        book.write_text(",".join(columns) + "\n")
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
