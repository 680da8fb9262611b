"""RAFT: the selection step, bad rewards, and one real iteration on a tiny model."""
import math

import pytest

from lablib import raft


def test_per_prompt_keeps_each_prompts_best_and_breaks_ties_by_order():
    responses = ["a", "b", "c", "d", "e", "f"]
    scores = [0.1, 0.9, 0.9, 0.5, 0.2, 0.5]  # prompt 0: tie between samples 1 and 2; prompt 1: tie 3 and 5
    assert raft.select(responses, scores, k=3) == [1, 3]


def test_global_keeps_the_top_one_over_k_whatever_the_prompt():
    responses = ["a", "b", "c", "d", "e", "f"]
    scores = [0.1, 0.9, 0.8, 0.5, 0.2, 0.3]
    assert raft.select(responses, scores, k=3, mode="global") == [1, 2]  # both from prompt 0
    assert raft.select(responses, scores, k=2, mode="global") == [1, 2, 3]


def test_invalid_samples_are_discarded_before_selection():
    responses = ["  ", "b", "c", "d"]
    scores = [5.0, float("nan"), 0.1, 0.2]
    assert raft.select(responses, scores, k=2) == [3]  # prompt 0 has no valid sample
    assert raft.select(responses, scores, k=2, mode="global") == [2, 3]


def test_k_one_keeps_everything_valid():
    assert raft.select(["a", "b", ""], [1.0, 2.0, 3.0], k=1) == [0, 1]


@pytest.mark.parametrize("k, mode, msg", [(0, "per_prompt", "raft.k=0"), (2, "best", "raft.mode='best'")])
def test_bad_k_or_mode(k, mode, msg):
    with pytest.raises(raft.RAFTError, match=msg):
        raft.select(["a", "b"], [1.0, 2.0], k=k, mode=mode)


def test_rewards_raft_cannot_rank_by_are_refused():
    with pytest.raises(raft.RAFTError, match="same score .* RAFT would learn nothing"):
        raft.check_scores([0.5, 0.5, 0.5])
    with pytest.raises(raft.RAFTError, match="no finite score"):
        raft.check_scores([math.nan, math.nan])
    raft.check_scores([0.5, math.nan, 0.7])


def test_one_raft_iteration_on_a_tiny_model_fine_tunes_on_the_kept_samples(tmp_path):
    """A real iteration: sample K per prompt, keep the best by a toy reward, SFT on them; deterministic."""
    import torch

    from lablib import config, data, generation, models, tokenization

    cfg = config.load("lab02", ["profile=smoke", "raft.k=3", "raft.batch_size=6", "raft.max_new_tokens=6",
                                "raft.lr=1e-2", "train.batch_size=2"])
    tasks = data.make_tasks(12, seed=0)
    results = []
    for _ in range(2):
        tok = tokenization.train_bpe(data.make_corpus(50, 0), 400)
        torch.manual_seed(0)
        model = models.build_scratch(cfg.model, len(tok), tok)
        generation.use_chatml(model, tok)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}

        def longest(examples, responses):  # toy reward: longer responses are better
            return [float(len(r)) for r in responses]

        run = raft.RAFT(model, tok, longest, cfg, tmp_path, metrics={"gold": lambda ex, rs: [e.gold_reward(r)
                                                                                        for e, r in zip(ex, rs)]})
        history = run.train(tasks, iterations=1, progress=False)
        results.append(history[0])
        assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    stats = results[0]
    assert stats["kept"] == 6 and stats["kept_rm"] >= stats["samples_rm"]
    assert 0.0 <= stats["best_gold_is_1"] <= 1.0
    assert {k: v for k, v in results[0].items() if k != "seconds"} == \
        {k: v for k, v in results[1].items() if k != "seconds"}


def test_bad_raft_config_names_the_key():
    from lablib import config

    with pytest.raises(config.ConfigError, match=r"^raft.k=0"):
        config.load("lab02", ["profile=smoke", "raft.k=0"])
    with pytest.raises(config.ConfigError, match=r"^raft.mode='best'"):
        config.load("lab02", ["profile=smoke", "raft.mode=best"])
    with pytest.raises(config.ConfigError, match=r"^raft.ablation=.*entry '4' must be K:TEMPERATURE"):
        config.load("lab06", ["profile=smoke", "raft.ablation=[4]"])


def test_distinct_n_counts_unique_word_ngrams():
    from lablib import evaluation

    assert evaluation.distinct_n(["a b a b", "a b"], 2) == pytest.approx(2 / 4)  # (a b), (b a), (a b), (a b)
    assert evaluation.distinct_n(["a b c"], 1) == 1.0
    assert evaluation.distinct_n(["one"], 2) == 0.0


def test_best_mean_is_what_the_kept_samples_must_average():
    responses = ["a", "b", "", "c", "d", "e"]
    scores = [1.0, 3.0, 9.0, float("nan"), 2.0, 0.5]  # the empty response and the NaN score are not eligible
    assert raft.best_mean(responses, scores, 3, "per_prompt") == pytest.approx((3.0 + 2.0) / 2)
    assert raft.best_mean(responses, scores, 3, "global") == pytest.approx((3.0 + 2.0) / 2)
    for mode in raft.MODES:
        kept = raft.select(responses, scores, 3, mode)
        assert sum(scores[i] for i in kept) / len(kept) == pytest.approx(raft.best_mean(responses, scores, 3, mode))
    first_of_each = [0, 4]  # a selection that ignores the scores gets caught
    assert sum(scores[i] for i in first_of_each) / 2 != pytest.approx(raft.best_mean(responses, scores, 3))
