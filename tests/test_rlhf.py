"""Reward modelling and our PPO: the maths against hand-computed values, and tiny end-to-end steps."""
import copy
import random

import pytest
import torch
from omegaconf import OmegaConf

from lablib import config, data, reward, rlhf

# --------------------------------------------------------------------------------------------
# A toy world: a 6-word vocabulary and a tiny random Llama
# --------------------------------------------------------------------------------------------
WORDS = ["<pad>", "<eos>", "a", "b", "c", "d"]


def toy_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<pad>"))
    tok.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def toy_policy(seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
                                        pad_token_id=0, eos_token_id=1, bos_token_id=1)).eval()


def ppo_cfg(**kw):
    base = OmegaConf.structured(config.PPOConf)
    return OmegaConf.merge(base, {"batch_size": 32, "minibatch_size": 16, "epochs": 2, "lr": 3e-3,
                                  "max_new_tokens": 4, **kw})


def share_of_b(texts):
    """Toy reward: the share of 'b' among the response's words."""
    return [t.split().count("b") / max(1, len(t.split())) for t in texts]


def toy_ppo(policy=None, reward_fn=None, **kw):
    return rlhf.PPO(policy or toy_policy(), toy_tokenizer(), reward_fn or (lambda ex, texts: share_of_b(texts)),
                    lambda e: e, ppo_cfg(**kw), stop_ids=[1], seed=0)


@torch.no_grad()
def p_first(policy, word="b"):
    tok = toy_tokenizer()
    ids = tok(["a c"], return_tensors="pt")["input_ids"]
    return torch.softmax(policy(input_ids=ids).logits[0, -1], -1)[WORDS.index(word)].item()


# --------------------------------------------------------------------------------------------
# The maths
# --------------------------------------------------------------------------------------------
def test_gae_matches_a_hand_computed_example():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.5, 0.5, 9.0]])  # the 4th position is past the end: masked
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # lam=0.5, gamma=1: delta = [0, 0, 0.5]; A2 = 0.5, A1 = 0 + 0.5*0.5, A0 = 0 + 0.5*0.25
    adv, ret = rlhf.gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert torch.allclose(adv, torch.tensor([[0.125, 0.25, 0.5, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[0.625, 0.75, 1.0, 0.0]]))
    # lam=1, gamma=1: the return is the sum of future rewards (1 everywhere), advantage = return - value
    adv, ret = rlhf.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    # gamma discounts: gamma=0.5, lam=1 -> returns 0.25, 0.5, 1
    _, ret = rlhf.gae(rewards, values, mask, gamma=0.5, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[0.25, 0.5, 1.0, 0.0]]))


def test_token_rewards_put_the_score_on_the_last_response_token():
    logp = torch.tensor([[-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-2.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    r = rlhf.token_rewards(torch.tensor([3.0]), logp, ref, mask, beta=0.1)
    assert torch.allclose(r, torch.tensor([[-0.1, 3.0, 0.0]]))


def test_clipped_policy_loss():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.5, 0.5]]))  # ratios
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones(1, 4)
    loss, clip_frac = rlhf.policy_loss(logp, old, adv, mask, clip=0.2)
    # per token: -min(rA, clip(r)A) = -min(1.5, 1.2), -min(0.5, 0.8), -min(-1.5, -1.2), -min(-0.5, -0.8)
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.5 + 0.8) / 4)
    assert clip_frac.item() == pytest.approx(0.5)  # the clip binds for tokens 1 and 4
    lone, _ = rlhf.policy_loss(logp, old, adv, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), clip=0.2)
    assert lone.item() == pytest.approx(-1.2)


def test_value_loss_is_clipped_around_the_old_value():
    v = rlhf.value_loss(torch.tensor([[2.0]]), torch.tensor([[0.0]]), torch.tensor([[2.0]]), torch.ones(1, 1), 0.5)
    assert v.item() == pytest.approx(0.5 * (0.5 - 2.0) ** 2)  # the clipped value 0.5 is the worse one


def test_kl_estimators_agree_with_the_exact_kl():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(8, generator=g), 0)
    q = torch.softmax(torch.randn(8, generator=g), 0)
    exact = float((p * (p / q).log()).sum())
    x = torch.multinomial(p, 200_000, replacement=True, generator=g)
    logp, logq = p.log()[x], q.log()[x]
    for kind in ("k1", "k3"):
        assert rlhf.kl_estimate(logp, logq, kind).mean().item() == pytest.approx(exact, rel=0.03)
    assert (rlhf.kl_estimate(logp, logq, "k3") >= 0).all()
    assert (rlhf.kl_estimate(logp, logp, "k1") == 0).all()


def test_adaptive_kl_controller_moves_beta_toward_the_target():
    ctl = rlhf.KLController(0.1, adaptive=True, target=6.0, horizon=100)
    assert ctl.update(12.0, 10) == pytest.approx(0.1 * 1.02)  # error clipped to +0.2
    assert rlhf.KLController(0.1, adaptive=True, target=6.0, horizon=100).update(3.0, 10) == pytest.approx(0.098)
    assert rlhf.KLController(0.1).update(100.0, 10) == 0.1  # fixed


# --------------------------------------------------------------------------------------------
# The trainer on the toy world
# --------------------------------------------------------------------------------------------
def test_kl_penalty_is_zero_when_policy_is_the_reference():
    ppo = toy_ppo()
    ro = ppo.rollout(["a c"] * 8)
    assert torch.equal(ro["logp"] * ro["mask"], ro["ref_logp"] * ro["mask"])
    assert (rlhf.kl_estimate(ro["logp"], ro["ref_logp"]) * ro["mask"]).abs().sum() == 0
    assert ro["mask"][:, 0].all() and (ro["mask"].sum(1) >= 1).all()


def test_kl_is_zero_for_a_fresh_lora_adapter_whose_reference_is_the_adapter_off():
    from omegaconf import OmegaConf as OC

    from lablib import lora

    policy = lora.add_adapter(toy_policy(), OC.structured(config.LoRAConf(r=4, targets="attention")))
    ppo = toy_ppo(policy)
    assert ppo.ref is None and ppo.lora
    ro = ppo.rollout(["a c"] * 8)
    assert torch.allclose(ro["logp"] * ro["mask"], ro["ref_logp"] * ro["mask"])


def test_one_ppo_step_moves_the_policy_toward_the_reward():
    policy = toy_policy()
    before = p_first(policy)
    ppo = toy_ppo(policy)
    stats = ppo.step(["a c"] * 32)
    assert stats["kl"] == pytest.approx(0.0, abs=1e-6)  # the rollout came from the reference itself
    after = p_first(policy)
    assert after > before + 0.02, (before, after)
    ppo.step(["a c"] * 32)
    assert ppo.rollout(["a c"] * 32)["logp"].shape[0] == 32


def test_ppo_is_reproducible_under_a_seed():
    runs = []
    for _ in range(2):
        ppo = toy_ppo()
        runs.append(ppo.train(["a c", "a a", "c d"], steps=2, progress=False))
    assert [r["rm"] for r in runs[0]] == [r["rm"] for r in runs[1]]
    assert [r["kl"] for r in runs[0]] == [r["kl"] for r in runs[1]]


def weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def snapshots(ppo) -> list:
    """The policy's weights at the end of every step that finished (a metric runs only then)."""
    kept = []
    ppo.metrics["snapshot"] = lambda ex, texts: kept.append(weights(ppo.policy)) or [0.0] * len(texts)
    return kept


def test_nan_rewards_stop_training_before_any_update_of_that_step():
    calls = {"n": 0}

    def flaky(ex, texts):
        calls["n"] += 1
        return share_of_b(texts) if calls["n"] == 1 else [float("nan")] * len(texts)

    ppo = toy_ppo(reward_fn=flaky)
    start, kept = weights(ppo.policy), snapshots(ppo)
    history = ppo.train(["a c", "a a", "c d", "b c"], steps=3, progress=False)
    assert len(history) == 1 and len(kept) == 1
    assert "stopped at step 2" in ppo.stopped and "the reward model returned nan" in ppo.stopped
    assert not same(kept[0], start)  # step 1 trained ...
    assert same(weights(ppo.policy), kept[0])  # ... and its weights are what is left


def test_a_nan_loss_mid_step_restores_the_weights_of_the_last_good_step():
    """Step 2 updates the policy on two minibatches, then its loss turns NaN: step 1's weights come back."""
    ppo = toy_ppo(epochs=2, batch_size=32, minibatch_size=8)
    kept, updates = snapshots(ppo), {"step 2": 0}
    optimizer_step = ppo.optimizer.step

    def counted_step(*args, **kwargs):
        out = optimizer_step(*args, **kwargs)
        updates["step 2"] += len(kept) == 1
        return out

    def poison(module, args, output):  # after two updates of step 2, the policy's logits turn NaN
        if updates["step 2"] >= 2:
            output.logits = output.logits * float("nan")
        return output

    ppo.optimizer.step = counted_step
    ppo.policy.register_forward_hook(poison)
    history = ppo.train(["a c", "a a", "c d", "b c"] * 8, steps=3, progress=False)  # 4 minibatches x 2 epochs
    assert len(history) == 1 and updates["step 2"] == 2 and "the PPO loss became nan" in ppo.stopped
    assert same(weights(ppo.policy), kept[0])


def test_a_diverging_kl_stops_training_and_restores_the_last_good_weights():
    ppo = toy_ppo(lr=0.3, kl_stop=0.05, kl_coef=0.0, epochs=4)
    start, kept = weights(ppo.policy), snapshots(ppo)
    history = ppo.train(["a c"] * 4, steps=5, progress=False)
    assert ppo.stopped and "ppo.kl_stop=0.05" in ppo.stopped
    assert len(history) == len(kept) < 5
    assert same(weights(ppo.policy), kept[-1] if kept else start)  # the step that overshot was undone


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
    train, val = data.preference_splits(cfg.data, cfg.seed)
    sft_train, sft_val = data.instruction_examples(cfg.data, cfg.seed)
    assert [p.example for p in val] == sft_val and [p.example for p in train] == sft_train


def test_preference_file_errors_name_the_line(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"prompt": "p", "chosen": "x", "rejected": "y"}\n{"prompt": "p", "chosen": "x", "rejected": "x"}\n')
    with pytest.raises(data.DataError, match=r"pairs.jsonl:2: 'chosen' and 'rejected' are identical"):
        data.pair_records(f)
    f.write_text('{"prompt": "p", "chosen": "", "rejected": "y"}\n')
    with pytest.raises(data.DataError, match=r"pairs.jsonl:1: field 'chosen' is empty"):
        data.pair_records(f)


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


@pytest.mark.parametrize("override, key", [
    ("ppo.minibatch_size=64", "ppo.minibatch_size"), ("ppo.temperature=0", "ppo.temperature"),
    ("ppo.seeds=[]", "ppo.seeds"), ("ppo.grpo_generations=5", "ppo.grpo_generations"),
    ("reward.sampled_share=1.5", "reward.sampled_share")])
def test_bad_rl_config_names_the_key(override, key):
    with pytest.raises(config.ConfigError, match=rf"^{key}="):
        config.load("lab05", ["profile=smoke", override])


def test_a_lora_policy_trains_only_the_adapter_and_merges_for_saving():
    from omegaconf import OmegaConf as OC

    from lablib import lora

    policy = lora.add_adapter(toy_policy(), OC.structured(config.LoRAConf(r=4, targets="attention")))
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
    adapter = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    assert adapter and all("lora_" in n for n in adapter)
    ppo = toy_ppo(policy)
    assert ppo.ref is None  # the reference is the same model with its adapter off: no copy
    ppo.step(["a c"] * 32)
    assert all(torch.equal(frozen[n], p) for n, p in policy.named_parameters() if n in frozen)
    assert any(not torch.equal(adapter[n], p) for n, p in policy.named_parameters() if n in adapter)
    ro = ppo.rollout(["a c"] * 4)
    with torch.no_grad(), policy.disable_adapter():  # the reference log-probs are the adapter-off model's
        assert torch.allclose(ro["ref_logp"], ppo._forward(policy, ro["ids"], ro["attention"], ro["n_prompt"], False)[0])
    assert not torch.allclose(ro["logp"] * ro["mask"], ro["ref_logp"] * ro["mask"])  # and the adapter moved it
    merged = rlhf.for_saving(policy)
    assert not hasattr(merged, "peft_config") and type(merged).__name__ == "LlamaForCausalLM"
