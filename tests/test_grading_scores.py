"""The grader's own headline metrics (lablib.grading.scores) are the lab's: computed from an honest smoke run's
saved weights with the grader's tokenizer, data and references, they equal what the lab itself logged."""
import json

import pytest

from lablib import running
from lablib.grading import scores

# metric the grader computes -> the lab's own logged value of the saved model (labs 05 and 06 save the first seed)
OWN = {"05": {"gold_reward": lambda m: m["gold_reward_per_seed"][0]},
       "06": {"raft_gold_reward": lambda m: m["raft_gold_per_seed"][0],
              "dpo_gold_reward": lambda m: m["dpo_gold_per_seed"][0]},
       "own/05": {"win_rate": lambda m: m["win_rate_per_seed"][0]}}


@pytest.mark.parametrize("key", sorted(scores.SCORED))
def test_the_graders_metrics_equal_the_labs_own(key, runs_root):
    """Both tracks; the own track's labs on the example domain, its default."""
    lab = running.find_lab(key)
    running.run([*running.upstream_keys(lab), lab.key], ["profile=smoke"], runs_root, progress=False,
                echo=lambda *_: None)
    cfg = running.compose(lab, ["profile=smoke"], runs_root)
    run = running.folder(lab, cfg, runs_root)
    logged = json.loads((run / "metrics.json").read_text())
    got = scores.scorer(lab, cfg)(run)
    assert set(got) == set(scores.SCORED[key])
    for metric, value in got.items():
        want = OWN.get(key, {}).get(metric, lambda m: m[metric])(logged)
        assert value == pytest.approx(want, abs=1e-4), (metric, value, want)


def test_a_lab_whose_headline_cannot_be_recomputed_is_self_reported():
    assert set(scores.WHY_NOT) == {lab.key for lab in running.all_labs()} - set(scores.SCORED)
