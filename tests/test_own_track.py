"""The shipped example domain (houseplant care) through all seven labs of the own-domain track under `smoke`:
SmolLM2 cut to 2 layers, so it checks the plumbing and each lab's checks, not the quality (the cpu profile's
figures are in the README)."""
import json

from lablib import running


def test_the_example_domain_runs_through_all_seven_labs(tmp_path):
    rows = running.run([], ["profile=smoke", "domain=example"], tmp_path, progress=False, echo=lambda *_: None)
    assert [r["status"] for r in rows] == ["ran"] * 7
    runs = tmp_path / "smoke" / "example"

    def metrics(lab):
        return json.loads((runs / lab / "metrics.json").read_text())

    assert metrics("01_pretraining")["bits_per_byte"] < metrics("01_pretraining")["bits_per_byte_before"]
    assert metrics("02_sft")["nll"] < metrics("02_sft")["nll_before"]
    lab04 = metrics("04_reward")
    assert lab04["pairs_rm"] > 0 and lab04["pairs_judge"] > 0 and 0 <= lab04["judge_accuracy"] <= 1
    assert 0 <= metrics("05_ppo")["win_rate"] <= 1 and 0 <= metrics("06_raft")["dpo_win_rate"] <= 1
    board = (runs / "07_evaluation" / "artifacts" / "leaderboard.csv").read_text().splitlines()
    assert board[0] == "checkpoint,nll,bits_per_byte,length,rm,judge,win_rate"
    assert sorted(line.split(",")[0] for line in board[1:]) == ["dpo", "lora", "ppo", "pretrained", "qlora", "raft", "sft"]
    sft = next(line for line in board[1:] if line.startswith("sft,"))
    assert sft.endswith(",0.5")  # SFT against itself: every answer the same, a tie
