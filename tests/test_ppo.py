"""Our PPO: the maths against hand-computed values, and tiny end-to-end steps on a toy world."""
import pytest
import torch
from conftest import WORDS, toy_policy, toy_tokenizer
from omegaconf import OmegaConf

from lablib import config, ppo, rl_setting, schema

# --------------------------------------------------------------------------------------------
# The toy world's PPO
# --------------------------------------------------------------------------------------------
def ppo_cfg(**kw):
    base = OmegaConf.structured(schema.PPOConf)
    return OmegaConf.merge(base, {"batch_size": 32, "minibatch_size": 16, "epochs": 2, "lr": 3e-3,
                                  "max_new_tokens": 4, **kw})


def share_of_b(texts):
    """Toy reward: the share of 'b' among the response's words."""
    return [t.split().count("b") / max(1, len(t.split())) for t in texts]


def toy_ppo(policy=None, reward_fn=None, **kw):
    return ppo.PPO(policy or toy_policy(), toy_tokenizer(), reward_fn or (lambda ex, texts: share_of_b(texts)),
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
    adv, ret = ppo.gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert torch.allclose(adv, torch.tensor([[0.125, 0.25, 0.5, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[0.625, 0.75, 1.0, 0.0]]))
    # lam=1, gamma=1: the return is the sum of future rewards (1 everywhere), advantage = return - value
    adv, ret = ppo.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    # gamma discounts: gamma=0.5, lam=1 -> returns 0.25, 0.5, 1
    _, ret = ppo.gae(rewards, values, mask, gamma=0.5, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[0.25, 0.5, 1.0, 0.0]]))


def test_token_rewards_put_the_score_on_the_last_response_token():
    logp = torch.tensor([[-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-2.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    r = ppo.token_rewards(torch.tensor([3.0]), logp, ref, mask, beta=0.1)
    assert torch.allclose(r, torch.tensor([[-0.1, 3.0, 0.0]]))


def test_clipped_policy_loss():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.5, 0.5]]))  # ratios
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones(1, 4)
    loss, clip_frac = ppo.policy_loss(logp, old, adv, mask, clip=0.2)
    # per token: -min(rA, clip(r)A) = -min(1.5, 1.2), -min(0.5, 0.8), -min(-1.5, -1.2), -min(-0.5, -0.8)
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.5 + 0.8) / 4)
    assert clip_frac.item() == pytest.approx(0.5)  # the clip binds for tokens 1 and 4
    lone, _ = ppo.policy_loss(logp, old, adv, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), clip=0.2)
    assert lone.item() == pytest.approx(-1.2)


def test_value_loss_is_clipped_around_the_old_value():
    v = ppo.value_loss(torch.tensor([[2.0]]), torch.tensor([[0.0]]), torch.tensor([[2.0]]), torch.ones(1, 1), 0.5)
    assert v.item() == pytest.approx(0.5 * (0.5 - 2.0) ** 2)  # the clipped value 0.5 is the worse one


def test_kl_estimators_agree_with_the_exact_kl():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(8, generator=g), 0)
    q = torch.softmax(torch.randn(8, generator=g), 0)
    exact = float((p * (p / q).log()).sum())
    x = torch.multinomial(p, 200_000, replacement=True, generator=g)
    logp, logq = p.log()[x], q.log()[x]
    for kind in ("k1", "k3"):
        assert ppo.kl_estimate(logp, logq, kind).mean().item() == pytest.approx(exact, rel=0.03)
    assert (ppo.kl_estimate(logp, logq, "k3") >= 0).all()
    assert (ppo.kl_estimate(logp, logp, "k1") == 0).all()


def test_adaptive_kl_controller_moves_beta_toward_the_target():
    ctl = ppo.KLController(0.1, adaptive=True, target=6.0, horizon=100)
    assert ctl.update(12.0, 10) == pytest.approx(0.1 * 1.02)  # error clipped to +0.2
    assert ppo.KLController(0.1, adaptive=True, target=6.0, horizon=100).update(3.0, 10) == pytest.approx(0.098)
    assert ppo.KLController(0.1).update(100.0, 10) == 0.1  # fixed


# --------------------------------------------------------------------------------------------
# The trainer on the toy world
# --------------------------------------------------------------------------------------------
def test_kl_penalty_is_zero_when_policy_is_the_reference():
    trainer = toy_ppo()
    ro = trainer.rollout(["a c"] * 8)
    assert torch.equal(ro["logp"] * ro["mask"], ro["ref_logp"] * ro["mask"])
    assert (ppo.kl_estimate(ro["logp"], ro["ref_logp"]) * ro["mask"]).abs().sum() == 0
    assert ro["mask"][:, 0].all() and (ro["mask"].sum(1) >= 1).all()


def test_kl_is_zero_for_a_fresh_lora_adapter_whose_reference_is_the_adapter_off():
    from omegaconf import OmegaConf as OC

    from lablib import lora

    policy = lora.add_adapter(toy_policy(), OC.structured(schema.LoRAConf(r=4, targets="attention")))
    trainer = toy_ppo(policy)
    assert trainer.ref is None and trainer.lora
    ro = trainer.rollout(["a c"] * 8)
    assert torch.allclose(ro["logp"] * ro["mask"], ro["ref_logp"] * ro["mask"])


def test_one_ppo_step_moves_the_policy_toward_the_reward():
    policy = toy_policy()
    before = p_first(policy)
    trainer = toy_ppo(policy)
    stats = trainer.step(["a c"] * 32)
    assert stats["kl"] == pytest.approx(0.0, abs=1e-6)  # the rollout came from the reference itself
    after = p_first(policy)
    assert after > before + 0.02, (before, after)
    trainer.step(["a c"] * 32)
    assert trainer.rollout(["a c"] * 32)["logp"].shape[0] == 32


def test_ppo_is_reproducible_under_a_seed():
    runs = []
    for _ in range(2):
        trainer = toy_ppo()
        runs.append(trainer.train(["a c", "a a", "c d"], steps=2, progress=False))
    assert [r["rm"] for r in runs[0]] == [r["rm"] for r in runs[1]]
    assert [r["kl"] for r in runs[0]] == [r["kl"] for r in runs[1]]


def weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def snapshots(trainer) -> list:
    """The policy's weights at the end of every step that finished (a metric runs only then)."""
    kept = []
    trainer.metrics["snapshot"] = lambda ex, texts: kept.append(weights(trainer.policy)) or [0.0] * len(texts)
    return kept


def test_nan_rewards_stop_training_before_any_update_of_that_step():
    calls = {"n": 0}

    def flaky(ex, texts):
        calls["n"] += 1
        return share_of_b(texts) if calls["n"] == 1 else [float("nan")] * len(texts)

    trainer = toy_ppo(reward_fn=flaky)
    start, kept = weights(trainer.policy), snapshots(trainer)
    history = trainer.train(["a c", "a a", "c d", "b c"], steps=3, progress=False)
    assert len(history) == 1 and len(kept) == 1
    assert "stopped at step 2" in trainer.stopped and "the reward model returned nan" in trainer.stopped
    assert not same(kept[0], start)  # step 1 trained ...
    assert same(weights(trainer.policy), kept[0])  # ... and its weights are what is left


def test_a_nan_loss_mid_step_restores_the_weights_of_the_last_good_step():
    """Step 2 updates the policy on two minibatches, then its loss turns NaN: step 1's weights come back."""
    trainer = toy_ppo(epochs=2, batch_size=32, minibatch_size=8)
    kept, updates = snapshots(trainer), {"step 2": 0}
    optimizer_step = trainer.optimizer.step

    def counted_step(*args, **kwargs):
        out = optimizer_step(*args, **kwargs)
        updates["step 2"] += len(kept) == 1
        return out

    def poison(module, args, output):  # after two updates of step 2, the policy's logits turn NaN
        if updates["step 2"] >= 2:
            output.logits = output.logits * float("nan")
        return output

    trainer.optimizer.step = counted_step
    trainer.policy.register_forward_hook(poison)
    history = trainer.train(["a c", "a a", "c d", "b c"] * 8, steps=3, progress=False)  # 4 minibatches x 2 epochs
    assert len(history) == 1 and updates["step 2"] == 2 and "the PPO loss became nan" in trainer.stopped
    assert same(weights(trainer.policy), kept[0])


def test_a_diverging_kl_stops_training_and_restores_the_last_good_weights():
    trainer = toy_ppo(lr=0.3, kl_stop=0.05, kl_coef=0.0, epochs=4)
    start, kept = weights(trainer.policy), snapshots(trainer)
    history = trainer.train(["a c"] * 4, steps=5, progress=False)
    assert trainer.stopped and "ppo.kl_stop=0.05" in trainer.stopped
    assert len(history) == len(kept) < 5
    assert same(weights(trainer.policy), kept[-1] if kept else start)  # the step that overshot was undone


@pytest.mark.parametrize("override, key", [
    ("ppo.minibatch_size=64", "ppo.minibatch_size"), ("ppo.temperature=0", "ppo.temperature"),
    ("ppo.seeds=[]", "ppo.seeds"), ("grpo.generations=5", "grpo.generations"),
    ("reward.sampled_share=1.5", "reward.sampled_share"), ("rl.best_of_n=48", "rl.best_of_n"),
    ("data.kinds=[median]", "data.kinds"), ("data.preferred_share=2", "data.preferred_share")])
def test_bad_rl_config_names_the_key(override, key):
    with pytest.raises(config.ConfigError, match=rf"^{key}="):
        config.load("lab05", ["profile=smoke", override])


@pytest.mark.parametrize("old, new", [("ppo.grpo_steps", "grpo.steps"), ("ppo.weak_steps", "rl.weak_steps"),
                                      ("reward.min_accuracy_gain", "reward.min_accuracy"), ("lora.memory_steps", "memory.steps"),
                                      ("data.max_val_docs", "data.val_docs"), ("data.n_tasks", "domain.split")])
def test_a_renamed_key_fails_in_one_line_naming_the_new_one(old, new):
    with pytest.raises(config.ConfigError, match=rf"{old} is gone; use {new}") as err:
        config.load("lab05", ["profile=smoke", f"{old}=3"])
    assert "\n" not in str(err.value)


def test_a_lora_policy_trains_only_the_adapter_and_merges_for_saving():
    from omegaconf import OmegaConf as OC

    from lablib import lora

    policy = lora.add_adapter(toy_policy(), OC.structured(schema.LoRAConf(r=4, targets="attention")))
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
    adapter = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    assert adapter and all("lora_" in n for n in adapter)
    trainer = toy_ppo(policy)
    assert trainer.ref is None  # the reference is the same model with its adapter off: no copy
    trainer.step(["a c"] * 32)
    assert all(torch.equal(frozen[n], p) for n, p in policy.named_parameters() if n in frozen)
    assert any(not torch.equal(adapter[n], p) for n, p in policy.named_parameters() if n in adapter)
    ro = trainer.rollout(["a c"] * 4)
    with torch.no_grad(), policy.disable_adapter():  # the reference log-probs are the adapter-off model's
        assert torch.allclose(ro["ref_logp"], trainer._forward(policy, ro["ids"], ro["attention"], ro["n_prompt"], False)[0])
    assert not torch.allclose(ro["logp"] * ro["mask"], ro["ref_logp"] * ro["mask"])  # and the adapter moved it
    merged = rl_setting.for_saving(policy)
    assert not hasattr(merged, "peft_config") and type(merged).__name__ == "LlamaForCausalLM"


def test_rlvr_rewards_correctness_alone_and_finds_where_the_curves_meet():
    from lablib import data, rlvr

    ex = data.make_tasks(3, seed=0, kinds=["max"])
    right = [e.output for e in ex]
    assert rlvr.correct_reward(ex, [right[0], right[1] + "\nI hope this helps!", "nonsense"]) == [1.0, 1.0, 0.0]
    before, after = {1: 0.5, 2: 0.7, 4: 0.9}, {1: 0.7, 2: 0.8, 4: 0.85}
    assert rlvr.meeting_point(before, after) == 4  # the base reaches the RL policy at k = 4
    assert rlvr.meeting_point(before, {1: 0.6, 2: 0.8, 4: 0.95}) is None  # RL stays above at every k


# --------------------------------------------------------------------------------------------
# PPO-ptx, a step taken apart, and RLOO
# --------------------------------------------------------------------------------------------
PTX_TEXTS = ["a b c d", "d c b a", "a a b b", "c d c d"]


def test_lm_loss_is_the_mean_next_token_nll_of_the_texts():
    policy, tok = toy_policy(), toy_tokenizer()
    ids = tok(["a b c d"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(policy(input_ids=ids).logits[0], -1)
        by_hand = -sum(logp[t, ids[0, t + 1]].item() for t in range(ids.shape[1] - 1)) / (ids.shape[1] - 1)
        assert ppo.lm_loss(policy, tok, ["a b c d"], 16).item() == pytest.approx(by_hand, rel=1e-5)
        # padding joins no loss: a short text beside a long one counts its own tokens only
        both = ppo.lm_loss(policy, tok, ["a b c d", "a b"], 16).item()
        assert both != pytest.approx(by_hand, rel=1e-3)
        assert ppo.lm_loss(policy, tok, ["a b c d"], 2).item() != pytest.approx(by_hand, rel=1e-3)  # cut at 2 tokens


def test_ptx_without_texts_fails_before_any_work():
    with pytest.raises(ValueError, match="ptx_coef=1.0 .* no ptx_texts"):
        toy_ppo(ptx_coef=1.0)


def test_ppo_ptx_keeps_the_policy_closer_to_the_pretraining_text_than_plain_ppo():
    tok = toy_tokenizer()
    losses = {}
    for coef in (0.0, 5.0):
        policy = toy_policy()
        trainer = ppo.PPO(policy, tok, lambda ex, texts: share_of_b(texts), lambda e: e,
                          ppo_cfg(ptx_coef=coef, ptx_batch_size=2), stop_ids=[1], seed=0,
                          ptx_texts=PTX_TEXTS if coef else ())
        for _ in range(3):
            stats = trainer.step(["a c"] * 32)
        assert ("ptx_loss" in stats) == bool(coef)
        with torch.no_grad():
            losses[coef] = ppo.lm_loss(policy, tok, PTX_TEXTS, 16).item()
    assert losses[5.0] < losses[0.0] - 0.05, losses


def test_ppo_ptx_draws_its_own_batches_so_the_prompt_batches_are_plain_ppos():
    plain = toy_ppo()
    mixed = ppo.PPO(toy_policy(), toy_tokenizer(), lambda ex, texts: share_of_b(texts), lambda e: e,
                    ppo_cfg(ptx_coef=1.0, batch_size=4, minibatch_size=4), stop_ids=[1], seed=0, ptx_texts=PTX_TEXTS)
    prompts = [f"a {w}" for w in "abcd" * 4]
    assert [plain.rng.sample(prompts, 4) for _ in range(3)] == [mixed.rng.sample(prompts, 4) for _ in range(3)]


def test_explain_takes_a_rollout_apart_as_the_step_credits_it():
    trainer = toy_ppo()
    seen = trainer.explain(["a c"] * 6)
    assert len(seen["tokens"]) == len(seen["kl"]) == len(seen["advantage"]) == 6
    for toks, kl, reward, score, adv, value in zip(seen["tokens"], seen["kl"], seen["reward"], seen["scores"],
                                                   seen["advantage"], seen["value"]):
        assert len(toks) == len(kl) == len(reward) == len(adv) >= 1
        assert all(k == 0.0 for k in kl)  # the policy is still its reference
        assert reward[-1] == pytest.approx(score) and all(r == 0.0 for r in reward[:-1])
        # gamma 1, a zero value head: every token's advantage is the return still to come (lambda-discounted)
        assert value == [0.0] * len(toks)
        lam = trainer.cfg.lam
        assert adv == pytest.approx([score * lam ** (len(toks) - 1 - t) for t in range(len(toks))], abs=1e-6)


def test_a_group_trainer_other_than_grpo_and_rloo_is_named():
    from lablib import grpo

    with pytest.raises(ValueError, match="method='ppo': expected 'grpo' or 'rloo'"):
        grpo.grpo(None, None, [], None, None, "/tmp/x", 1, [], method="ppo")


@pytest.mark.parametrize("override, key", [("rl.ptx_coef=0", "rl.ptx_coef"), ("ppo.ptx_coef=-1", "ppo.ptx_coef"),
                                           ("ppo.ptx_batch_size=0", "ppo.ptx_batch_size"),
                                           ("ppo.ptx_tokens=1", "ppo.ptx_tokens")])
def test_bad_ptx_config_names_the_key(override, key):
    with pytest.raises(config.ConfigError, match=rf"^{key}="):
        config.load("lab05", ["profile=smoke", override])


def test_ppo_ptx_trains_on_lab_01s_documents_never_on_lab_07s():
    from lablib import domain, leaderboard

    lab05, lab01, lab07 = (config.load(name, ["profile=smoke"]) for name in ("lab05", "lab01", "lab07"))
    pretraining = rl_setting.pretraining_texts(lab05)
    assert pretraining == domain.corpus(lab01)[0]  # lab 01's own training documents
    scored = leaderboard.plain_texts(lab07)
    assert scored == leaderboard.plain_texts(lab05)  # lab 05 scores forgetting on lab 07's documents
    assert not set(scored) & set(pretraining)


def test_texts_without_a_ptx_coefficient_are_plain_ppo():
    trainer = ppo.PPO(toy_policy(), toy_tokenizer(), lambda ex, texts: share_of_b(texts), lambda e: e, ppo_cfg(),
                      stop_ids=[1], seed=0, ptx_texts=PTX_TEXTS)
    assert "ptx_loss" not in trainer.step(["a c"] * 32)
