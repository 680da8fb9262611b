"""The notebook side of a lab: config, seeds, run folder, artifacts and metrics.

A lab's first code cell is ``lab = lablib.start("01", overrides, run_dir, runs_root)``. Run by the runner,
the three values come from papermill; opened in Jupyter, the defaults find the config, the upstream
artifacts under ``runs/<profile>/`` and write this lab's folder there.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from . import running

TMP = ":tmp:"  # run_dir value meaning "a fresh temporary folder" (the golden-output tests use it)


class Lab:
    def __init__(self, spec: running.LabSpec, cfg, folder: Path):
        self.spec, self.cfg, self.dir = spec, cfg, folder
        self.metrics: dict = {}

    def checkpoints(self) -> Path:
        """The folder for this run's training checkpoints. It outlives a killed run, so the re-run resumes
        where that one stopped; it is emptied when the config changed, and removed by :meth:`finish`."""
        folder = running.checkpoint_dir(self.dir)
        stamp = running._sha(OmegaConf.to_yaml(self.cfg))
        if folder.exists() and (folder / "config.sha").exists() and (folder / "config.sha").read_text() != stamp:
            shutil.rmtree(folder)  # checkpoints of another config must not be resumed
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.sha").write_text(stamp)
        return folder

    def artifact(self, name: str) -> Path:
        return self.dir / "artifacts" / name

    def save_model(self, model, tokenizer, name: str = "model") -> Path:
        """``save_pretrained`` model and tokenizer into ``artifacts/<name>``, atomically."""
        final = self.artifact(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{name}-"))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        readable_by_all(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        return final

    def save_text(self, name: str, text: str) -> Path:
        """``artifacts/<name>`` with ``text`` (e.g. a CSV), written atomically."""
        final = self.artifact(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{name}.tmp")
        tmp.write_text(text)
        tmp.replace(final)  # atomic: readers see the old file or the new one, never half of one
        return final

    def save_json(self, name: str, obj) -> Path:
        """``artifacts/<name>`` as JSON, written atomically."""
        return self.save_text(name, json.dumps(obj, indent=2, sort_keys=True) + "\n")

    def save_jsonl(self, name: str, rows) -> Path:
        """``artifacts/<name>``: one JSON object per line (a data set later labs can load), written atomically."""
        return self.save_text(name, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    def log(self, **metrics) -> dict:
        for key, value in metrics.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"lab {self.spec.id}: metric {key} is {value}")
            self.metrics[key] = value
        return self.metrics

    def finish(self) -> dict:
        """Write ``metrics.json`` (the runner treats a lab without it as failed); the checkpoints have done
        their job and are removed."""
        (self.dir / "metrics.json").write_text(json.dumps(self.metrics, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(running.checkpoint_dir(self.dir), ignore_errors=True)
        return self.metrics


def start(lab_key: str, overrides: Sequence[str] = (), run_dir: str | None = None,
          runs_root: str | None = None) -> Lab:
    """Compose and validate the lab's config, check its inputs exist, seed everything, open its run folder.

    It imports no more than it needs (config, torch for the seed): the libraries a lab uses are imported by the
    cells that use them, and are quieted by ``lablib/__init__`` before they load."""
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecations inside the libraries, not ours
    warnings.filterwarnings("ignore", message=".*save_embedding_layers.*")  # PEFT: "resized, saving them too"
    if "transformers" in sys.modules:  # imported before lablib: the environment variables came too late
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()

    spec = running.find_lab(lab_key)  # the notebook's own lab: "02" (labs/) or "own/02" (labs/own/)
    cfg = running.compose(spec, overrides or [], runs_root)
    for name, path in cfg.inputs.items():
        if not Path(path).exists():
            raise running.RunError(f"lab {spec.id} needs {name} from an earlier lab: {path} does not exist "
                                   f"(run `lab run {spec.consumes[name].split('/')[0]} profile={cfg.profile}`)")
    if run_dir == TMP:
        folder = Path(tempfile.mkdtemp(prefix=f"lab{spec.id}-"))
    else:
        folder = Path(run_dir) if run_dir else running.folder(spec, cfg, runs_root)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    seed_everything(cfg.seed)
    return Lab(spec, cfg, folder)


def readable_by_all(folder: Path) -> None:
    """Folders 0755 and files 0644 under ``folder`` (within the umask): ``mkdtemp`` makes a folder 0700 and
    safetensors writes its file 0600, and the grader's sandbox user must read a lab's artifacts."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o755 if path.is_dir() else 0o644) & ~umask)


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's generators (what ``transformers.set_seed`` does, without importing it)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
