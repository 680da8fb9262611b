"""`lab batch`: Hydra multirun grids, runs in parallel (a local pool, submitit's local executor), one summary."""
import csv

import pytest

from lablib import batch, running


def test_the_grid_is_every_combination_of_the_sweeps():
    grid = batch.expand(["lora.r=4,8,16", "seed=0,1", "profile=smoke"])
    assert len(grid) == 6
    assert grid[0] == ["lora.r=4", "seed=0", "profile=smoke"] and grid[-1] == ["lora.r=16", "seed=1", "profile=smoke"]
    assert batch.expand(["seed=range(0,3)"]) == [["seed=0"], ["seed=1"], ["seed=2"]]
    with pytest.raises(running.RunError, match="bad override"):
        batch.expand(["seed=0,"])


def test_bad_grid_points_and_launchers_fail_before_anything_runs(tmp_path):
    with pytest.raises(Exception, match=r"train.max_steps=0"):
        batch.batch(["01"], ["train.max_steps=0,5", "profile=smoke"], tmp_path)
    with pytest.raises(running.RunError, match="--launcher ray: must be one of"):
        batch.batch(["01"], ["profile=smoke"], tmp_path, launcher="ray")
    assert not (tmp_path / "runs").exists()


def test_the_grid_varies_the_named_labs_and_links_their_upstream(tmp_path, runs_root):
    running.run(["01"], ["profile=smoke"], runs_root, progress=False, echo=lambda *_: None)
    assert batch.fixed_overrides(["sft.max_new_tokens=8,12", "profile=smoke"]) == ["profile=smoke"]
    batch._link(["01"], ["profile=smoke"], tmp_path, runs_root)
    assert (tmp_path / "smoke" / "01_pretraining").resolve() == (runs_root / "smoke" / "01_pretraining").resolve()
    assert running.with_upstream(["05"]) == ["01", "02", "04", "05"]
    with pytest.raises(running.RunError, match="sweeps profile"):
        batch.batch(["01"], ["profile=smoke,cpu"], tmp_path)


@pytest.mark.parametrize("launcher", ["local", "submitit-local"])
def test_a_failed_run_is_named_with_its_cell_and_the_others_finish(tmp_path, runs_root, launcher):
    out = tmp_path / "batch"
    rows = batch.batch(["01"], ["data.n_docs=1,400", "profile=smoke"],
                       out, workers=2, launcher=launcher, base_root=runs_root, metric="val_loss", echo=lambda *_: None)
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert "failed in cell" in rows[0]["message"] and "need at least 2 examples" in rows[0]["message"]
    assert rows[1]["metrics"]["val_loss"] > 0
    table = list(csv.DictReader((out / "summary.csv").open()))
    assert [t["overrides"] for t in table] == ["data.n_docs=400 profile=smoke", "data.n_docs=1 profile=smoke"]
    assert float(table[0]["val_loss"]) > 0 and table[1]["val_loss"] == ""  # best first; no metric, last
    assert (out / "summary.md").exists() and (out / "summary.png").exists()


@pytest.mark.parametrize("lab_id,worse,better", [("01", {"val_loss": 2.0}, {"val_loss": 1.0}),
                                                 ("05", {"gold_reward": 0.4}, {"gold_reward": 0.9})])
def test_a_summary_shows_and_sorts_by_the_labs_headline_metric(lab_id, worse, better, tmp_path):
    """Not by the first metric alphabetically (`params`, the same at every point of a learning-rate grid)."""
    lab = running.find_lab(lab_id)
    rows = [{"run": i, "overrides": f"train.lr={lr}", "status": "ok", "message": "", "seconds": 1.0,
             "metrics": {"params": 123, "aaa": 0.5, **m}} for i, (lr, m) in enumerate([(1e-3, worse), (3e-3, better)])]
    batch.write_summary(rows, tmp_path, lab=lab)
    table = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert list(table[0])[5] == lab.headline[0] and table[0]["overrides"] == "train.lr=0.003"
    assert batch.ranked(rows, lab, key=lambda r: r["metrics"])[0] == lab.headline[0]
