"""``lab batch``: one lab (or several) over a grid of Hydra overrides, in parallel, with one summary table.

The grid is written in Hydra's multirun syntax -- ``lora.r=4,8,16 seed=0,1`` is six runs -- and expanded by
Hydra's own override parser. The grid varies the labs it names: their upstream labs run once, with the
fixed (non-sweep) overrides, in the main runs folder, and are linked into each run's own folder
(``OUT/runs/<i>/``). To sweep an upstream lab too, name it (``lab batch 01 02 seed=0,1``). A failed run does
not stop the others; the summary names it with its failing cell.

Runs go to a launcher: ``local`` (a pool of processes on this machine), or submitit's executors --
``submitit-local`` (local subprocesses, what CI tests) and ``slurm`` (a SLURM cluster, same code path).
"""
from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Sequence

from ..core import config, domain
from . import running

LAUNCHERS = ("local", "submitit-local", "slurm")


def ranked(rows: Sequence[dict], lab: running.LabSpec, metric: str | None = None, key=lambda r: r) -> tuple:
    """``(metric, rows best first)``: ``metric`` or else the lab's first headline metric that the rows have
    (``key(row)`` gives a row's metrics), sorted the way the lab's ``better`` says; rows without it come last.
    The metric is None when no row has one."""
    have = {k for r in rows for k, v in key(r).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    chosen = metric if metric in have else next((m for m in lab.headline if m in have), None)
    if chosen is None:
        return None, list(rows)
    sign = 1 if lab.better == "lower" else -1
    scored = [r for r in rows if isinstance(key(r).get(chosen), (int, float))]
    return chosen, sorted(scored, key=lambda r: sign * key(r)[chosen]) + [r for r in rows if r not in scored]


def expand(overrides: Sequence[str]) -> List[List[str]]:
    """The grid: every combination of the sweep overrides (``key=a,b``, ``key=range(0,3)``), each with the
    fixed overrides, in Hydra's order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:  # Hydra's parser raises OverrideParseException with a multi-line message
        raise running.RunError(f"bad override in {list(overrides)}: {config.one_line(exc)}") from None
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
            else [o.input_line] for o in parsed]
    return [list(point) for point in itertools.product(*axes)]


def fixed_overrides(overrides: Sequence[str]) -> List[str]:
    """The overrides that are not sweeps (they apply to every run, and to the upstream labs)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [o.input_line for o in parsed if not o.is_sweep_override()]


def _link(upstream: Sequence[str], fixed: Sequence[str], root: Path, base_root: Path) -> None:
    """Link the base runs of the ``upstream`` labs (run with the ``fixed`` overrides) into ``root``."""
    for key in upstream:
        lab = running.find_lab(key)
        cfg = running.compose(lab, list(fixed), base_root)
        target = running.folder(lab, cfg, root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(running.folder(lab, cfg, base_root), target_is_directory=True)


def run_point(keys: Sequence[str], point: Sequence[str], root: str, workers: int = 1) -> dict:
    """Run ``keys`` with the overrides ``point`` into the runs folder ``root`` (a child ``lab run`` process).
    Module-level, so submitit can pickle it."""
    start = time.perf_counter()
    env = {**os.environ, "MPLBACKEND": "Agg", **running.worker_env(workers)}
    proc = subprocess.run([sys.executable, "-m", "lablib.course.cli", "--runs", str(root), "run", *keys, *point, "--quiet"],
                          capture_output=True, text=True, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("lab: error:")]
    last = running.find_lab(keys[-1])
    metrics = {}
    if proc.returncode == 0:
        path = running.folder(last, running.compose(last, list(point), root), root) / "metrics.json"
        metrics = json.loads(path.read_text()) if path.exists() else {}
    return {"overrides": " ".join(point), "status": "ok" if proc.returncode == 0 else "failed",
            "message": lines[-1][len("lab: error: "):] if lines else ("" if proc.returncode == 0 else
                                                                      (proc.stderr.strip().splitlines() or ["?"])[-1]),
            "seconds": round(time.perf_counter() - start, 1), "metrics": metrics}


def batch(keys: Sequence[str], overrides: Sequence[str], out: str | Path, workers: int = 2, launcher: str = "local",
          base_root: str | Path | None = None, metric: str | None = None, slurm: dict | None = None,
          echo=print) -> List[dict]:
    """Run the grid and write ``OUT/summary.csv``, ``OUT/summary.md`` and ``OUT/summary.png`` (``metric`` per
    run; default: the first metric); returns the rows."""
    if launcher not in LAUNCHERS:
        raise running.RunError(f"--launcher {launcher}: must be one of {', '.join(LAUNCHERS)}")
    if not keys:
        raise running.RunError("lab batch needs a lab, e.g. `lab batch 01 train.lr=1e-3,3e-3 profile=smoke`")
    points, fixed = expand(overrides), fixed_overrides(overrides)
    if any(o.split("=", 1)[0].lstrip("+~") == "profile" for o in overrides if o not in fixed):
        raise running.RunError("the grid sweeps profile: run one batch per profile")
    out = Path(out).resolve()
    base = running.runs_root(base_root)
    track = domain.track_of(overrides, keys)  # the domain's: domain=example batches the own-domain track
    keys = [running.find_lab(k, track).key for k in keys]
    for point in points:  # every point's config is checked before anything runs
        for key in keys:
            running.compose(running.find_lab(key), point, base)
    prefix = "" if track == "numbers" else f"{track}/"
    upstream = [prefix + k for k in running.with_upstream(keys, track) if prefix + k not in keys]
    if upstream:  # once, with the fixed overrides; the grid varies only the labs it names
        echo(f"upstream labs {', '.join(upstream)} with {' '.join(fixed) or 'no overrides'} (cached when up to date)")
        running.run(upstream, fixed, base, progress=False, echo=lambda *_: None)
    roots = [out / "runs" / str(i) for i in range(len(points))]
    for root in roots:
        _link(upstream, fixed, root, base)
    echo(f"{len(points)} runs of lab(s) {', '.join(keys)} on {launcher}, {workers} at a time -> {out}")
    if launcher == "local":
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # each run is its own process
            rows = list(pool.map(lambda pr: run_point(keys, *pr, workers), zip(points, [str(r) for r in roots])))
    else:
        rows = _submitit(keys, points, roots, out, workers, launcher, slurm or {})
    for i, r in enumerate(rows):
        r["run"] = i
        echo(f"  [{i}] {r['overrides']}: {r['status']} {r['message']}".rstrip())
    write_summary(rows, out, metric, running.find_lab(keys[-1]))
    return rows


def submit(fn, calls: Sequence[tuple], folder: Path, launcher: str, workers: int, params: dict | None = None):
    """``fn(*args)`` for each ``args`` of ``calls`` as submitit jobs (``submitit-local``: processes here; ``slurm``:
    a cluster), at most ``workers`` at a time (the local executor has no limit of its own); yields each result as
    its chunk finishes. ``params`` are the executor's (``timeout_min``, ``mem_gb``, ``slurm_partition`` ...)."""
    import submitit

    if launcher not in LAUNCHERS[1:]:
        raise running.RunError(f"--launcher {launcher}: must be one of {', '.join(LAUNCHERS)}")
    executor = submitit.AutoExecutor(folder=str(folder), cluster="local" if launcher == "submitit-local" else "slurm")
    params = dict(params or {})
    executor.update_parameters(timeout_min=int(params.pop("timeout_min", 60)), **params)
    calls = list(calls)
    for i in range(0, len(calls), max(1, workers)):
        jobs = [executor.submit(fn, *args) for args in calls[i:i + max(1, workers)]]
        yield from (job.result() for job in jobs)


def _submitit(keys, points, roots, out: Path, workers: int, launcher: str, slurm: dict) -> List[dict]:
    per_run = 1 if launcher == "slurm" else workers
    return list(submit(run_point, [(list(keys), point, str(root), per_run) for point, root in zip(points, roots)],
                       out / "submitit", launcher, workers, slurm))


def write_summary(rows: Sequence[dict], out: Path, metric: str | None = None,
                  lab: running.LabSpec | None = None) -> None:
    """One table of every run: its overrides, status, failing cell and numeric metrics (CSV, Markdown, plot),
    best first by ``metric`` or the lab's headline metric; the headline metrics are the first columns."""
    numeric = {k for r in rows for k, v in r["metrics"].items() if isinstance(v, (int, float))}
    if lab is not None:
        metric, rows = ranked(rows, lab, metric, key=lambda r: r["metrics"])
    first = ([metric] if metric in numeric else []) + [m for m in (lab.headline if lab else []) if m in numeric]
    metric_keys = list(dict.fromkeys(first)) + sorted(numeric - set(first))
    cols = ["run", "overrides", "status", "message", "seconds", *metric_keys]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "summary.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for r in rows:
            w.writerow({**{c: r.get(c, "") for c in cols[:5]}, **{k: r["metrics"].get(k, "") for k in metric_keys}})
    shown = cols[:5] + metric_keys[:6]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for r in rows:
        cells = [r.get(c, "") if c in cols[:5] else r["metrics"].get(c, "") for c in shown]
        lines.append("| " + " | ".join(f"{c:.4g}" if isinstance(c, float) else str(c).replace("|", "\\|")
                                       for c in cells) + " |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    ok = [r for r in rows if r["status"] == "ok" and r["metrics"]]
    if ok and metric_keys:
        import matplotlib

        matplotlib.use("Agg")
        from ..core import plots

        key = metric if metric in metric_keys else metric_keys[0]
        fig = plots.bars({r["overrides"] or f"run {r['run']}": r["metrics"].get(key, 0.0) for r in ok}, key,
                         f"lab batch: {key} per run")
        fig.savefig(out / "summary.png", dpi=100)
