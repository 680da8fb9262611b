"""The grader's own headline metrics (lablib.grading.scores) are the lab's: computed from an honest smoke run's
saved weights with the grader's tokenizer, data and references, they equal what the lab itself logged."""
import json

import pytest

from lablib import running
from lablib.grading import scores

# metric the grader computes -> the lab's own logged value of the saved model (labs 05 and 06 save the first seed)
OWN = {"05": {"gold_reward": lambda m: m["gold_reward_per_seed"][0]},
       "06": {"raft_gold_reward": lambda m: m["raft_gold_per_seed"][0],
              "dpo_gold_reward": lambda m: m["dpo_gold_per_seed"][0]}}


@pytest.mark.parametrize("lab_id", sorted(scores.SCORED))
def test_the_graders_metrics_equal_the_labs_own(lab_id, runs_root):
    lab = running.find_lab(lab_id)
    running.run(running.with_upstream([lab_id]), ["profile=smoke"], runs_root, progress=False, echo=lambda *_: None)
    run = running.run_dir(lab, "smoke", runs_root)
    logged = json.loads((run / "metrics.json").read_text())
    cfg = running.compose(lab, ["profile=smoke"], runs_root)
    got = scores.scorer(lab, cfg)(run)
    assert set(got) == set(scores.SCORED[lab_id])
    for metric, value in got.items():
        want = OWN.get(lab_id, {}).get(metric, lambda m: m[metric])(logged)
        assert value == pytest.approx(want, abs=1e-4), (metric, value, want)


def test_a_lab_whose_headline_cannot_be_recomputed_is_self_reported():
    assert set(scores.WHY_NOT) == {lab.id for lab in running.manifest()} - set(scores.SCORED)
