"""Reward modelling: flawed responses, preference splits and files, the Bradley-Terry loss, rank agreement."""
import copy
import random

import pytest
import torch
from conftest import toy_tokenizer

from lablib import config, data, domain, files, reward

# --------------------------------------------------------------------------------------------
# Reward modelling
# --------------------------------------------------------------------------------------------
def test_flawed_responses_are_worse_by_the_gold_reward():
    rng = random.Random(0)
    for task in data.make_tasks(70, seed=3):
        flawed = data.flawed_responses(task, rng)
        assert "rambling" in flawed
        assert all(task.gold_reward(t) < task.gold_reward(task.output) and t.strip() for t in flawed.values())


def test_preference_splits_follow_the_sft_split():
    cfg = config.load("lab04", ["profile=smoke"])
    pairs, sft = domain.pairs(cfg), domain.instructions(cfg)
    assert [p.example for p in pairs.val] == sft.val and [p.example for p in pairs.rm] == sft.train
    assert pairs.judge == []  # a domain with a gold checker needs no judge


def test_policy_pairs_rank_the_policys_samples_by_gold(monkeypatch):
    from lablib import generation

    tasks = data.make_tasks(3, seed=0, kinds=["max"])
    hand = data.preference_pairs(tasks, seed=0)
    best = [t.output for t in tasks]
    scripted = [best[0], best[0] + "\nI hope this helps!", "0", "0",  # three gold levels: three pairs
                best[1], best[1], best[1], best[1],  # all tie: the hand-made pair stays
                "0", "", "0", best[2] + "\nHi"]  # an empty sample is no response; one pair
    monkeypatch.setattr(generation, "respond", lambda *a, **k: scripted)
    pairs = reward.policy_pairs(hand, None, None, share=1.0, samples=4, temperature=1.0, max_new_tokens=8, seed=0)
    sampled = [p for p in pairs if p.how == "sampled"]
    assert [p for p in pairs if p.how != "sampled"] == [hand[1]]
    assert len(sampled) == 4 and all(p.example.gold_reward(p.chosen) > p.example.gold_reward(p.rejected)
                                     for p in sampled)
    assert {(p.chosen, p.rejected) for p in sampled if p.example == tasks[2]} == {(best[2] + "\nHi", "0")}
    reward.check_pairs(pairs)


def test_preference_file_errors_name_the_line(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"prompt": "p", "chosen": "x", "rejected": "y"}\n{"prompt": "p", "chosen": "x", "rejected": "x"}\n')
    with pytest.raises(data.DataError, match=r"pairs.jsonl:2: 'chosen' and 'rejected' are identical"):
        files.pair_records(f)
    f.write_text('{"prompt": "p", "chosen": "", "rejected": "y"}\n')
    with pytest.raises(data.DataError, match=r"pairs.jsonl:1: field 'chosen' is empty"):
        files.pair_records(f)


def test_check_pairs_rejects_identical_and_empty_responses():
    ex = data.make_tasks(1, seed=0)[0]
    with pytest.raises(reward.RewardError, match="pair 0 .*identical"):
        reward.check_pairs([data.Pair(ex, "1", " 1 ", "x")])
    with pytest.raises(reward.RewardError, match="empty rejected"):
        reward.check_pairs([data.Pair(ex, "1", "  ", "x")])
    with pytest.raises(reward.RewardError, match="held-out pairs are empty"):
        reward.check_pairs([], "held-out")


def test_bt_loss_written_out():
    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    assert reward.bt_loss(rc, rr).item() == pytest.approx((-torch.log(torch.sigmoid(torch.tensor(2.0))).item()
                                                           + torch.log(torch.tensor(2.0)).item()) / 2)
    assert torch.allclose(reward.bt_loss(rc, rr), -torch.nn.functional.logsigmoid(rc - rr).mean())


def test_rank_correlation_with_ties():
    assert reward.ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert reward.rank_correlation([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert reward.rank_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert reward.rank_correlation([0.1, 0.9, 0.5, 0.7], [0, 1, 0, 1]) == pytest.approx(0.8944, abs=1e-4)
    assert reward.rank_correlation([1, 2], [5, 5]) != reward.rank_correlation([1, 2], [5, 5])  # NaN: constant


def test_a_reward_model_with_another_tokenizer_is_refused():
    a, b = toy_tokenizer(), toy_tokenizer()
    b.chat_template = "{{ messages }}"
    a.chat_template = "{{ messages }}"
    reward.check_tokenizers(a, b)
    b.add_tokens(["e"])
    with pytest.raises(reward.RewardError, match="tokenizer does not match the policy's .7 vs 6 tokens"):
        reward.check_tokenizers(a, b)
    c = copy.deepcopy(a)
    c.chat_template = "other"
    with pytest.raises(reward.RewardError, match="chat template differs"):
        reward.check_tokenizers(a, c)


def test_within_prompt_accuracy_compares_samples_of_the_same_prompt_only():
    a, b = object(), object()
    out = reward.within_prompt_accuracy([a, a, a, b, b], [1.0, 2.0, 0.0, 9.0, 5.0], [0, 1, 0, 1, 1])
    assert out == {"accuracy": 1.0, "pairs": 2}  # b's two samples tie on gold: not a pair
    assert reward.within_prompt_accuracy([a, a], [2.0, 1.0], [0, 1])["accuracy"] == 0.0
