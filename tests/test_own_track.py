"""The shipped example domain (houseplant care) through all seven labs of the own-domain track under `smoke`:
SmolLM2 cut to 2 layers, so it checks the plumbing and each lab's checks, not the quality (the cpu profile's
figures are in the README)."""
import csv
import json

from lablib import running


def test_the_example_domain_runs_through_all_seven_labs(runs_root):
    """In the session's runs folder: the own track's goldens and the book reuse these runs."""
    rows = running.run([], ["profile=smoke", "domain=example"], runs_root, progress=False, echo=lambda *_: None)
    assert [r["status"] in ("ran", "cached") for r in rows] == [True] * 7
    runs = runs_root / "smoke" / "example"

    def metrics(lab):
        return json.loads((runs / lab / "metrics.json").read_text())

    assert metrics("01_pretraining")["bits_per_byte"] < metrics("01_pretraining")["bits_per_byte_before"]
    assert metrics("02_sft")["nll"] < metrics("02_sft")["nll_before"]
    lab04 = metrics("04_reward")
    assert lab04["pairs_rm"] > 0 and lab04["pairs_judge"] > 0 and 0 <= lab04["judge_accuracy"] <= 1
    assert 0 <= metrics("05_ppo")["win_rate"] <= 1 and 0 <= metrics("06_raft")["dpo_win_rate"] <= 1
    with open(runs / "07_evaluation" / "artifacts" / "leaderboard.csv") as f:
        board = list(csv.DictReader(f))
    assert {"rm", "judge", "win_rate", "bits_per_byte"} <= set(board[0]) and "gold_reward" not in board[0]
    assert sorted(r["checkpoint"] for r in board) == ["dpo", "lora", "ppo", "pretrained", "qlora", "raft", "sft"]
    assert next(r for r in board if r["checkpoint"] == "sft")["win_rate"] == "0.5"  # SFT against itself: a tie


def test_the_own_track_is_batched_over_a_grid(tmp_path, runs_root):
    from lablib import batch

    rows = batch.batch(["02"], ["profile=smoke", "domain=example", "train.lr=1e-4,3e-4"], tmp_path / "batch",
                       workers=1, base_root=runs_root, echo=lambda *_: None)
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
    assert all(r["metrics"]["nll"] < r["metrics"]["nll_before"] for r in rows)
    assert rows[0]["metrics"]["nll"] != rows[1]["metrics"]["nll"]  # the grid really varied the run
    assert "nll" in (tmp_path / "batch" / "summary.md").read_text()


def test_an_own_track_submission_is_graded_with_its_exercise(tmp_path, runs_root):
    import shutil

    from lablib import grading
    from test_grading import SANDBOX

    lab = running.find_lab("own/04")
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copyfile(lab.notebook_path, subs / "ada.ipynb")  # the solution itself: every exercise passes
    grading.release(lab.notebook_path, subs / "bob.ipynb")  # the released notebook: the exercise is a stub
    book = grading.grade(subs, "own/04", tmp_path / "grades", ["profile=smoke"], workers=1, timeout_s=300,
                         runs_root=runs_root, sandbox=SANDBOX, echo=lambda *_: None)
    rows = {r["student"]: r for r in csv.DictReader(book.open())}
    assert rows["ada"]["status"] == "ok" and rows["ada"]["04.bt_loss"] == "pass", rows["ada"]
    assert rows["bob"]["04.bt_loss"] not in ("", "pass")
    assert "rm_accuracy" in rows["ada"]["self_reported"]  # the own track's metrics: self-reported, never ranked
