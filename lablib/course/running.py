"""Running the course: the manifest, run folders, and the papermill runner.

``lab run 01 02 profile=smoke`` validates everything first -- lab names, overrides (against the
structured config), upstream artifacts -- and only then starts kernels, one lab at a time in
dependency order. Each lab writes a run folder::

    runs/<profile>/<id>_<name>/
        notebook.ipynb   the executed lab          config.yaml   the resolved config
        metrics.json     what the lab measured     artifacts/    models, datasets (save_pretrained folders)
        fingerprint      hash of config + notebook + lablib + upstream fingerprints

A lab whose fingerprint is unchanged is skipped unless forced. A lab runs in a ``.partial`` folder
that replaces the old run folder only when it succeeds: a failure keeps the previous good run and
leaves the failed notebook beside it, naming the cell that failed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from omegaconf import OmegaConf

from ..core import config as config_mod


class RunError(RuntimeError):
    """A problem found before or while running labs, worded as one line."""


# --------------------------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------------------------
@dataclass
class LabSpec:
    id: str
    name: str
    title: str
    notebook: str
    config: str
    consumes: Dict[str, str] = field(default_factory=dict)  # input name -> "LAB_ID/ARTIFACT"
    produces: List[str] = field(default_factory=list)
    requires: Optional[str] = None  # a config key that must be set, else the lab is skipped (an optional stage)
    headline: List[str] = field(default_factory=list)  # the metrics batches and gradebooks show and sort by
    better: str = "lower"  # which way the first headline metric improves: lower | higher
    track: str = "numbers"

    @property
    def dirname(self) -> str:
        return f"{self.id}_{self.name}"

    @property
    def key(self) -> str:
        """The lab's name across tracks: ``02`` in the numbers track, ``own/02`` in the own-domain track."""
        return self.id if self.track == "numbers" else f"{self.track}/{self.id}"

    @property
    def notebook_path(self) -> Path:
        return config_mod.home() / self.notebook


@dataclass
class Manifest:
    labs: List[LabSpec] = field(default_factory=list)  # the numbers track (labs/)
    own: List[LabSpec] = field(default_factory=list)  # the own-domain track (labs/own/)


TRACKS = ("numbers", "own")
_MANIFESTS: Dict[tuple, Dict[str, List[LabSpec]]] = {}


def manifest(track: str = "numbers") -> List[LabSpec]:
    """The labs of one track of ``conf/course.yaml`` in order, checked: unique ids, upstreams earlier and real.
    Parsed once per version of the file (a structured merge costs ~0.15 s, and `lab list` asks a dozen times)."""
    path = config_mod.conf_dir() / "course.yaml"
    key = (str(path), path.stat().st_mtime_ns if path.exists() else None)
    if key not in _MANIFESTS:
        _MANIFESTS.clear()
        _MANIFESTS[key] = _read_manifest(path)
    return list(_MANIFESTS[key][track])


def all_labs() -> List[LabSpec]:
    """Every lab of every track: the numbers track's, then the own-domain track's."""
    return [lab for track in TRACKS for lab in manifest(track)]


def _read_manifest(path: Path) -> Dict[str, List[LabSpec]]:
    try:
        raw = OmegaConf.merge(OmegaConf.structured(Manifest), OmegaConf.load(path))
    except Exception as exc:
        raise RunError(f"{path}: {config_mod.one_line(exc)}") from None
    return {"numbers": _check_track(path, [LabSpec(**OmegaConf.to_container(lab)) for lab in raw.labs]),
            "own": _check_track(path, [LabSpec(**{**OmegaConf.to_container(lab), "track": "own"}) for lab in raw.own])}


def _check_track(path: Path, labs: List[LabSpec]) -> List[LabSpec]:
    seen: Dict[str, LabSpec] = {}
    for lab in labs:
        if lab.id in seen:
            raise RunError(f"{path}: lab id {lab.id!r} appears twice")
        if lab.better not in ("lower", "higher"):
            raise RunError(f"{path}: lab {lab.id}: better={lab.better!r} must be lower or higher")
        for name, ref in lab.consumes.items():
            up_id, _, artifact = ref.partition("/")
            if up_id not in seen or artifact not in seen[up_id].produces:
                raise RunError(f"{path}: lab {lab.id} consumes {name}={ref!r}, which no earlier lab produces")
        seen[lab.id] = lab
    return labs


def find_lab(key: str, track: str | None = None) -> LabSpec:
    """A lab by id ("01", "1") or name ("pretraining"), of ``track`` (``own/02`` names the own-domain track's)."""
    if key.startswith("own/"):
        key, track = key[4:], "own"
    labs = manifest(track or "numbers")
    for lab in labs:
        if key in (lab.id, lab.name, lab.dirname) or (key.isdigit() and int(key) == int(lab.id)):
            return lab
    raise RunError(f"unknown lab {key!r}; labs: {', '.join(f'{lab.id} ({lab.name})' for lab in labs)}")


def upstream_keys(lab: LabSpec) -> List[str]:
    """The keys (:attr:`LabSpec.key`) of every lab ``lab`` consumes from, transitively, in course order."""
    prefix = "" if lab.track == "numbers" else f"{lab.track}/"
    return [prefix + k for k in with_upstream([lab.id], lab.track) if k != lab.id]


def with_upstream(keys: Sequence[str], track: str = "numbers") -> List[str]:
    """The ids of the labs ``keys`` and of every lab they consume from, transitively, in course order."""
    labs = manifest(track)
    ids, frontier = set(), {find_lab(k, track).id for k in keys}
    while frontier:
        lab_id = frontier.pop()
        ids.add(lab_id)
        lab = next(x for x in labs if x.id == lab_id)
        frontier |= {ref.partition("/")[0] for ref in lab.consumes.values()} - ids
    return [lab.id for lab in labs if lab.id in ids]


# --------------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------------
def worker_env(workers: int) -> Dict[str, str]:
    """Environment for one of ``workers`` labs run side by side: the cores split between them (each kernel's torch
    would start a thread per core: 2 at once on 2 cores ran slower than one after the other). A user's own
    OMP_NUM_THREADS wins."""
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    n = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def runs_root(root: str | Path | None = None) -> Path:
    if root is not None:
        return Path(root).resolve()
    return Path(os.environ.get("LABLIB_RUNS", config_mod.home() / "runs")).resolve()


def run_dir(lab: LabSpec, profile: str, root: str | Path | None = None, domain_key: str = "") -> Path:
    """``<runs>/<profile>/<lab>``; the own-domain track adds the domain's key (``example``, ``own-<hash>``)."""
    return runs_root(root) / profile / domain_key / lab.dirname


def folder(lab: LabSpec, cfg, root: str | Path | None = None) -> Path:
    """The run folder of ``lab`` under its composed ``cfg``."""
    from ..core import domain

    return run_dir(lab, cfg.profile, root, domain.key(cfg))


PARTIAL = ".partial-"  # a run in progress writes to ``.<dirname>.partial-<pid>`` beside its final folder


def partial_dir(final: Path) -> Path:
    return final.parent / f".{final.name}{PARTIAL}{os.getpid()}"


def checkpoint_dir(folder: Path) -> Path:
    """Where a lab writing to ``folder`` keeps its training checkpoints: beside the run folder, so that they
    survive a killed run (whose partial folder is discarded) and the re-run resumes from them."""
    name = folder.name
    if name.startswith(".") and PARTIAL in name:
        name = name[1:].rsplit(PARTIAL, 1)[0]
    return folder.parent / f".{name}.checkpoints"


def _remove_dead_partials(final: Path) -> None:
    """Partial folders left by runs that were killed (their process is gone)."""
    for stale in final.parent.glob(f".{final.name}{PARTIAL}*"):
        try:
            os.kill(int(stale.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def skipped(lab: LabSpec, cfg) -> Optional[str]:
    """Why an optional lab does not run under ``cfg`` (its ``requires`` key is not set), or None."""
    if lab.requires and not OmegaConf.select(cfg, lab.requires):
        return f"{lab.requires} is not set"
    return None


def upstream_paths(lab: LabSpec, cfg, root: str | Path | None = None) -> Dict[str, Path]:
    """Where each of ``lab``'s inputs lives: ``<runs>/<profile>/<upstream>/artifacts/<artifact>``; the inputs of
    upstream labs that ``cfg`` skips are left out."""
    out = {}
    for name, ref in lab.consumes.items():
        up_id, _, artifact = ref.partition("/")
        up = find_lab(up_id, lab.track)
        if not skipped(up, cfg):
            out[name] = folder(up, cfg, root) / "artifacts" / artifact
    return out


def compose(lab: LabSpec, overrides: Sequence[str], root: str | Path | None = None):
    """The lab's validated config with its upstream artifacts filled into ``cfg.inputs``."""
    from ..core import domain

    cfg = config_mod.load(lab.config, overrides)
    ran = domain.of(cfg)
    if ran.track != lab.track:
        raise config_mod.ConfigError(
            f"domain={cfg.domain.name}: lab {lab.key} is in the {lab.track} track, and domain={cfg.domain.name} runs "
            f"the {ran.track} track's labs: `lab run {lab.id} domain={cfg.domain.name} ...` picks them")
    inputs = {k: str(v) for k, v in upstream_paths(lab, cfg, root).items()}
    OmegaConf.set_readonly(cfg, False)
    cfg.inputs = inputs
    OmegaConf.set_readonly(cfg, True)
    return cfg


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def notebook_code(path: Path) -> str:
    """The code of a notebook's cells (what decides its results; prose and outputs do not). Read as plain JSON:
    nbformat's validation costs ~2 s of imports that `lab list` need not pay."""
    cells = json.loads(Path(path).read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def lablib_code() -> str:
    pkg = Path(__file__).resolve().parent.parent  # all of lablib
    return "".join(p.read_text() for p in sorted(pkg.rglob("*.py")))


def read_fingerprint(folder: Path) -> Optional[str]:
    f = folder / "fingerprint"
    return f.read_text().strip() if f.exists() else None


# --------------------------------------------------------------------------------------------
# Planning and running
@dataclass
class Step:
    lab: LabSpec
    cfg: object
    folder: Path
    fingerprint: str
    fresh: bool  # an up-to-date run folder exists
    skip: Optional[str] = None  # why an optional lab does not run
    why: str = ""  # why a lab that was not asked for runs: a lab asked for needs its artifacts


def _compose_checked(lab: LabSpec, overrides: Sequence[str], root) -> object:
    if not lab.notebook_path.exists():
        raise RunError(f"lab {lab.id}: notebook {lab.notebook} not found")
    try:
        return compose(lab, overrides, root)
    except config_mod.ConfigError as exc:
        raise RunError(f"lab {lab.id}: {exc}") from None


def _with_missing_upstream(labs: List[LabSpec], wanted: Dict[str, str], cfgs: dict, overrides, root) -> None:
    """Add to ``wanted`` (id -> why) every upstream lab whose artifact a wanted lab needs and does not find;
    consumers come after their producers, so one backward pass over the course finds them all."""
    for lab in reversed(labs):
        if lab.id not in wanted:
            continue
        cfgs[lab.id] = cfg = cfgs.get(lab.id) or _compose_checked(lab, overrides, root)
        for name, path in cfg.inputs.items():
            up_id = lab.consumes[name].partition("/")[0]
            if up_id not in wanted and not Path(path).exists():
                wanted[up_id] = f"lab {lab.id} needs its {lab.consumes[name].partition('/')[2]}"


def plan(keys: Sequence[str], overrides: Sequence[str] = (), root: str | Path | None = None,
         upstream: bool = True) -> List[Step]:
    """Check everything a run needs, start nothing. Raises :class:`RunError` on the first problem. With
    ``upstream``, the labs whose artifacts are missing run first; without, a missing artifact is an error."""
    from ..core import domain

    track = domain.track_of(overrides, keys)
    labs = manifest(track)
    wanted = {find_lab(k, track).id: "" for k in keys} if keys else {lab.id: "" for lab in labs}
    cfgs: dict = {}
    if upstream:
        _with_missing_upstream(labs, wanted, cfgs, overrides, root)
    steps: Dict[str, Step] = {}
    for lab in labs:  # manifest order is a dependency order (checked in manifest())
        if lab.id not in wanted:
            continue
        cfg = cfgs.get(lab.id) or _compose_checked(lab, overrides, root)
        try:  # a bad row, or a split that leaves nothing to train on: one line, before any lab starts
            domain.check_files(cfg) if not steps else None
        except ValueError as exc:  # lablib.data.DataError
            raise RunError(str(exc)) from None
        upstream_prints = []
        for name, path in cfg.inputs.items():
            up_id = lab.consumes[name].partition("/")[0]
            if up_id in steps:
                upstream_prints.append(steps[up_id].fingerprint)
            elif Path(path).exists():
                upstream_prints.append(read_fingerprint(Path(path).parent.parent) or "unknown")
            else:
                raise RunError(f"lab {lab.id} needs {name} from lab {up_id}: {path} does not exist "
                               f"(run `lab run {up_id} profile={cfg.profile}` first, or both together)")
        conf_text = config_mod.summary(cfg)
        fp = _sha(conf_text, notebook_code(lab.notebook_path), lablib_code(), domain.fingerprint(cfg), *upstream_prints)
        where = folder(lab, cfg, root)
        fresh = read_fingerprint(where) == fp and (where / "metrics.json").exists()
        steps[lab.id] = Step(lab, cfg, where, fp, fresh, skipped(lab, cfg), wanted[lab.id])
    return list(steps.values())


# The kernel's start-up notices (it listens on 127.0.0.1 only) are not the lab's output; the lab's warnings show.
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


def execute_notebook(src: Path, dst: Path, parameters: dict, cwd: Path, progress: bool = False, **kwargs):
    """papermill with the course's kernel settings: every lab, golden, graded or batched notebook runs here."""
    import papermill

    return papermill.execute_notebook(str(src), str(dst), kernel_name="python3", progress_bar=progress,
                                      parameters=parameters, cwd=str(cwd), extra_arguments=KERNEL_ARGS, **kwargs)


def execute(step: Step, overrides: Sequence[str], root: str | Path | None = None, progress: bool = True) -> Path:
    """Run one lab's notebook with papermill into a partial folder, then swap it in atomically."""
    import papermill
    from filelock import FileLock

    final = step.folder
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.parent / f".{final.name}.lock")):
        if read_fingerprint(final) == step.fingerprint and (final / "metrics.json").exists():
            return final  # another process finished it while we waited
        _remove_dead_partials(final)
        partial = partial_dir(final)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        out_nb = partial / "notebook.ipynb"
        try:
            execute_notebook(step.lab.notebook_path, out_nb, {"overrides": list(overrides), "run_dir": str(partial),
                                                              "runs_root": str(runs_root(root))}, partial, progress)
        except papermill.PapermillExecutionError as exc:
            failed = final.parent / f"{final.name}.failed.ipynb"
            if out_nb.exists():
                shutil.copyfile(out_nb, failed)
            shutil.rmtree(partial, ignore_errors=True)
            kept = "the previous run is kept" if final.exists() else "nothing was kept"
            raise RunError(f"lab {step.lab.id} ({step.lab.name}) failed in cell {exc.exec_count}: "
                           f"{exc.ename}: {exc.evalue} -- see {failed}; {kept}") from None
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        expected = ["metrics.json"] + [f"artifacts/{a}" for a in step.lab.produces]
        missing = [name for name in expected if not (partial / name).exists()]
        if missing:
            shutil.rmtree(partial, ignore_errors=True)
            raise RunError(f"lab {step.lab.id} ran but did not write {', '.join(missing)}; nothing was replaced")
        (partial / "fingerprint").write_text(step.fingerprint + "\n")
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        partial.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    return final


def stderr_lines(notebook: Path) -> int:
    """Lines an executed notebook's cells wrote to stderr (warnings, library notices): a lab should write none."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    return sum(len("".join(o.get("text", "")).splitlines()) for c in cells for o in c.get("outputs", [])
               if o.get("output_type") == "stream" and o.get("name") == "stderr")


def run(keys: Sequence[str] = (), overrides: Sequence[str] = (), root: str | Path | None = None,
        force: bool = False, progress: bool = True, echo=print, upstream: bool = True, claim=None) -> List[dict]:
    """Plan, then execute each lab that is not fresh (or all with ``force``); labs whose artifacts the asked-for
    labs need run first (unless ``upstream`` is false). Returns one row per lab."""
    overrides = config_mod.absolute_paths(overrides)
    steps = plan(keys, overrides, root, upstream)
    claim and claim()  # take the cores (``lablib.course.cores``) once everything has been checked
    rows = []
    for step in steps:
        name = f"{step.lab.id} {step.lab.name}"
        if step.skip:
            echo(f"[{name}] skipped: {step.skip} (an optional stage)")
            rows.append({"lab": step.lab.id, "status": "skipped", "why": step.skip})
            continue
        if step.why:
            echo(f"[{name}] runs first: {step.why} (--no-upstream to stop instead)")
        if step.fresh and not force:
            echo(f"[{name}] up to date: {step.folder}")
            rows.append({"lab": step.lab.id, "status": "cached", "folder": str(step.folder)})
            continue
        echo(f"[{name}] running ({step.cfg.profile} profile) ...")
        start = time.perf_counter()
        folder = execute(step, overrides, root, progress)
        seconds = time.perf_counter() - start
        noise = stderr_lines(folder / "notebook.ipynb")
        echo(f"[{name}] done in {seconds:.1f} s, {noise} line{'' if noise == 1 else 's'} on stderr: {folder}")
        rows.append({"lab": step.lab.id, "status": "ran", "seconds": seconds, "folder": str(folder),
                     "stderr_lines": noise})
    return rows


def status(overrides: Sequence[str] = (), root: str | Path | None = None) -> List[dict]:
    """Every lab of the overrides' track with its state for the given profile: not run, done, stale or failed.
    One plan of the whole course (each lab's config composed once) decides which runs are current."""
    rows = []
    for step in plan([], overrides, root):
        lab, folder = step.lab, step.folder
        if step.skip:
            state = "skipped"
        elif (folder.parent / f"{folder.name}.failed.ipynb").exists() and not folder.exists():
            state = "failed"
        elif not (folder / "metrics.json").exists():
            state = "not run"
        else:
            state = "done" if step.fresh else "stale"
        metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
        rows.append({"id": lab.id, "name": lab.name, "profile": step.cfg.profile, "status": state,
                     "consumes": ", ".join(lab.consumes.values()) or "-", "produces": ", ".join(lab.produces) or "-",
                     "metrics": metrics})
    return rows
