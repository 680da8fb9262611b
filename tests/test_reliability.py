"""Reliability of a real training lab (lab 01, smoke): the same seed gives the same numbers, and a run killed
mid-training resumes from its last checkpoint and ends with the numbers of a run that was never stopped."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# 360 steps, a checkpoint every 30: after checkpoint 60 appears, ~300 steps (seconds) remain to kill the run in,
# even on a loaded machine (with smoke's 120 steps the poll could see step 60 only after the last checkpoint).
STEPS = 360
ARGS = ["run", "01", "profile=smoke", "train.save_every=30", f"train.max_steps={STEPS}", "--quiet"]
TIMING = {"tokens_per_s", "train_seconds"}  # wall-clock figures: the only numbers allowed to differ


def lab(root: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lablib.course.cli", "--runs", str(root), *ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def finished(root: Path) -> dict:
    proc = lab(root)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return json.loads((root / "smoke" / "01_pretraining" / "metrics.json").read_text())


def numbers(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING | {"resumed_from_step"}}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    return finished(tmp_path_factory.mktemp("a"))


def test_same_config_and_seed_give_identical_metrics(uninterrupted, tmp_path):
    again = finished(tmp_path)
    assert numbers(again) == numbers(uninterrupted)  # exactly: not approximately
    assert uninterrupted["resumed_from_step"] == 0 and uninterrupted["val_loss"] < uninterrupted["val_loss_before"]


def test_a_killed_lab_resumes_from_its_checkpoint_with_the_same_metrics(uninterrupted, tmp_path):
    ckpts = tmp_path / "smoke" / ".01_pretraining.checkpoints"
    proc = lab(tmp_path, start_new_session=True)  # its own process group: the kernel goes down with it
    deadline = time.time() + 300
    while not (ckpts / "checkpoint-60" / "trainer_state.json").exists():
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stdout.read()
        assert time.time() < deadline, "no checkpoint at step 60"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # kernel and runner, mid-training, with no chance to clean up
    proc.wait()
    assert not (tmp_path / "smoke" / "01_pretraining").exists()  # nothing half-written where results go

    resumed = finished(tmp_path)
    assert 60 <= resumed["resumed_from_step"] < STEPS
    assert numbers(resumed) == numbers(uninterrupted)
    left = [p.name for p in (tmp_path / "smoke").iterdir()]
    assert not ckpts.exists() and not [n for n in left if ".partial-" in n], left  # cleaned up after success
