"""The ``lab`` command.

    lab list [overrides]              labs, what they consume and produce, and their state
    lab show LAB [overrides]          a lab's resolved config
    lab show LAB --explain KEY [overrides]
                                      every file and line that sets KEY, in the order applied (the last wins)
    lab run [LAB ...] [overrides]     run labs (all by default) in dependency order with papermill; labs whose
                                      artifacts they need run first (--no-upstream: stop instead)
    lab chat RUN_OR_CHECKPOINT [overrides] [--tokens N] [--temperature T]
                                      talk to a checkpoint in the terminal (a model folder, a lab's run folder,
                                      or a lab: `lab chat 06 domain=example`); /reset, /exit
    lab goldens [LAB ...]             re-execute labs under `smoke` and store them as nbval goldens
    lab book [overrides]              build the course website from executed labs (the kept cpu runs)
    lab release [LAB ...] [--out DIR] student notebooks: solutions stubbed, outputs cleared (default release/)
    lab grade LAB SUBMISSIONS [overrides] [--out DIR] [--workers N] [--timeout S] [--memory GB] [--disk GB]
              [--processes N] [--launcher L] [--no-sandbox]
                                      run every submitted notebook headlessly and write a gradebook
    lab grade CLASS [overrides] [...] a class folder (one sub-folder per student, any labs): every lab's
                                      gradebook, the course gradebook and one feedback file per student
    lab batch LAB ... GRID [--out DIR] [--workers N] [--launcher local|submitit-local|slurm] [--metric KEY]
                                      run labs over a grid (Hydra multirun: lora.r=4,8,16 seed=0,1), one table

Overrides are Hydra's: ``profile=smoke``, ``train.max_steps=100``, ``model=smollm2``, ``seed=1``.
``domain=own domain.instructions=F.jsonl`` (or ``domain=example``) runs the own-domain track (labs/own/).
Errors are one line on stderr and exit status 2; nothing runs before everything has been checked.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core import config as config_mod
from ..core import domain
from . import running


def _split(items):
    overrides = [i for i in items if "=" in i]
    labs = [i for i in items if "=" not in i]
    return labs, overrides


def cmd_list(args) -> None:
    _, overrides = _split(args.items)
    rows = running.status(overrides, args.runs)
    print(f"{'lab':<4} {'name':<14} {'status':<8} {'consumes':<12} {'produces':<12} headline metrics  "
          f"(profile {rows[0]['profile']})")
    track = domain.track_of(overrides)
    for r in rows:
        m = r["metrics"]
        keys = [k for k in running.find_lab(r["id"], track).headline if isinstance(m.get(k), (int, float))]
        shown = "  ".join(f"{k}={m[k]:.3g}" for k in keys)
        print(f"{r['id']:<4} {r['name']:<14} {r['status']:<8} {r['consumes']:<12} {r['produces']:<12} {shown}")


def cmd_show(args) -> None:
    labs, overrides = _split(args.items)
    if len(labs) != 1:
        raise running.RunError("lab show takes exactly one lab, e.g. `lab show 01 profile=smoke`")
    lab = running.find_lab(labs[0], domain.track_of(overrides, labs))
    cfg = running.compose(lab, overrides, args.runs)
    if not args.explain:
        print(config_mod.summary(cfg))
        return
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, args.explain, default=KeyError)
    if value is KeyError:
        raise config_mod.ConfigError(f"--explain {args.explain}: lab {lab.key} has no such key")
    places = config_mod.explain(lab.config, overrides, args.explain)
    shown = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    print(f"{args.explain} = {shown!r}  (lab {lab.key}, profile {cfg.profile})")
    width = max(len(w) for w, _ in places) if places else 0
    for i, (where, v) in enumerate(places):
        print(f"  {where:<{width}}  {v}" + ("   <- sets it" if i == len(places) - 1 else ""))
    if args.explain.startswith("domain.split") or args.explain in ("data.val_fraction",):
        print("  (every lab of this domain and profile reads the same split)")


def _claim_cores(command: str, items) -> None:
    from . import cores

    busy = cores.claim(" ".join(["lab", command, *items]))
    if busy:
        print(busy, file=sys.stderr)


def cmd_run(args) -> None:
    labs, overrides = _split(args.items)
    rows = running.run(labs, overrides, args.runs, force=args.force, progress=not args.quiet,
                       upstream=not args.no_upstream, claim=lambda: _claim_cores("run", args.items))
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ran", "cached", "skipped")}
    print(f"{len(rows)} lab(s): {counts['ran']} ran, {counts['cached']} up to date"
          + (f", {counts['skipped']} skipped" if counts["skipped"] else ""))


def cmd_chat(args) -> None:
    from . import chat

    targets, overrides = _split(args.items)
    if len(targets) != 1:
        raise running.RunError("lab chat takes one model folder, run folder or lab, e.g. `lab chat 06 domain=example`")
    where = chat.resolve(targets[0], overrides, args.runs)
    print(f"chatting with {where}")
    chat.terminal(chat.bot(where, args.tokens, args.temperature))


def cmd_goldens(args) -> None:
    from . import goldens

    labs, _ = _split(args.items)
    for path in goldens.regenerate(labs):
        print(f"wrote {path}")


def cmd_book(args) -> None:
    from . import book

    _, overrides = _split(args.items)
    book.build(overrides, args.runs)  # no profile: the kept `cpu` outputs, else `smoke` with a banner


def cmd_release(args) -> None:
    from pathlib import Path

    from .. import grading

    labs, _ = _split(args.items)
    for lab in [running.find_lab(k) for k in labs] or running.all_labs():
        dst = Path(args.out) / lab.notebook  # labs/02_sft.ipynb, labs/own/02_sft.ipynb
        info = grading.release(lab.notebook_path, dst)
        print(f"wrote {dst} ({info['exercises']} exercises)")


def cmd_grade(args) -> None:
    from .. import grading

    labs, overrides = _split(args.items)
    _claim_cores("grade", args.items)
    limits = dict(workers=args.workers, timeout_s=args.timeout, memory_gb=args.memory, runs_root=args.runs,
                  sandbox=False if args.no_sandbox else None, launcher=args.launcher, disk_gb=args.disk,
                  processes=args.processes)
    if len(labs) == 1 and Path(labs[0]).is_dir():  # a class folder: one sub-folder per student, any labs
        book = grading.grade_class(labs[0], args.out, overrides, **limits)
        print(f"course gradebook: {book} and {book.with_suffix('.md')}; feedback: {Path(args.out) / 'feedback'}/")
        return
    if len(labs) != 2:
        raise running.RunError("lab grade takes a lab and a folder of submissions, e.g. `lab grade 04 submissions/`, "
                               "or a class folder with one sub-folder per student, e.g. `lab grade class/`")
    book = grading.grade(labs[1], labs[0], args.out, overrides, **limits)
    print(f"gradebook: {book} and {book.with_suffix('.md')}")


def cmd_batch(args) -> None:
    from . import batch

    labs, overrides = _split(args.items)
    _claim_cores("batch", args.items)
    rows = batch.batch(labs, overrides, args.out, workers=args.workers, launcher=args.launcher,
                       base_root=args.runs, metric=args.metric)
    failed = [r for r in rows if r["status"] != "ok"]
    print(f"{len(rows)} runs, {len(failed)} failed; summary: {args.out}/summary.csv, summary.md, summary.png")
    if failed:
        raise running.RunError(f"{len(failed)} of {len(rows)} runs failed (see {args.out}/summary.md)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=None, help="runs folder (default: $LABLIB_RUNS or ./runs)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, help_ in (("list", cmd_list, "labs and their state"), ("show", cmd_show, "a lab's resolved config"),
                            ("run", cmd_run, "run labs with papermill"), ("goldens", cmd_goldens, "regenerate nbval goldens"),
                            ("chat", cmd_chat, "talk to a checkpoint in the terminal"),
                            ("book", cmd_book, "build the course website"),
                            ("release", cmd_release, "student versions of the labs"),
                            ("grade", cmd_grade, "grade a folder of student notebooks"),
                            ("batch", cmd_batch, "run labs over a grid of overrides")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("items", nargs="*", metavar="LAB|key=value")
        p.set_defaults(fn=fn)
        if name == "show":
            p.add_argument("--explain", metavar="KEY", default=None,
                           help="name every file and line that sets KEY (e.g. train.max_steps), the last wins")
        if name == "chat":
            p.add_argument("--tokens", type=int, default=96, help="new tokens per reply at most (default 96)")
            p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); > 0: sampled")
        if name == "release":
            p.add_argument("--out", default="release", help="output folder (default: release/)")
        if name == "grade":
            p.add_argument("--out", default="grades", help="gradebook folder (default: grades/)")
            p.add_argument("--workers", type=int, default=2, help="submissions run at once (default 2)")
            p.add_argument("--timeout", type=float, default=600, help="seconds per submission (default 600)")
            p.add_argument("--memory", type=float, default=6.0, help="GB of memory per submission (default 6)")
            p.add_argument("--launcher", default="local",
                           help="local | submitit-local | slurm: each submission a job (default local)")
            p.add_argument("--disk", type=float, default=4.0, help="GB a submission's folder may hold (default 4)")
            p.add_argument("--processes", type=int, default=512,
                           help="processes and threads per submission (default 512)")
            p.add_argument("--no-sandbox", action="store_true",
                           help="run submissions without bubblewrap (default: refuse to grade when it cannot start)")
        if name == "batch":
            p.add_argument("--out", default="batch", help="output folder (default: batch/)")
            p.add_argument("--workers", type=int, default=2, help="runs at once (default 2)")
            p.add_argument("--launcher", default="local", help="local | submitit-local | slurm (default local)")
            p.add_argument("--metric", default=None, help="the metric plotted per run (default: the first)")
        if name == "run":
            p.add_argument("--force", action="store_true", help="re-run labs that are up to date")
            p.add_argument("--quiet", action="store_true", help="no progress bars")
            p.add_argument("--no-upstream", action="store_true",
                           help="stop, instead of running them first, when upstream labs' artifacts are missing")
    args, extra = parser.parse_known_args(argv)  # labs and overrides may also follow an option
    if any(e.startswith("-") for e in extra):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.items += extra
    try:
        args.fn(args)
    except (running.RunError, config_mod.ConfigError) as exc:  # grading.GradingError is a RunError
        print(f"lab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lab: interrupted; finished labs are kept, the running one left nothing behind", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
