"""The setting the RL labs share (labs 05 and 06, and the bench): the prompts (the SFT lab's split), the SFT
policy and its tokenizer, the reward model (checked to read the policy's tokens), the two rewards -- the RM's
score and the code-checked gold reward -- and the held-out evaluation every method is measured by, plus the
headroom RL has before it starts (what the policy sometimes samples and the RM recognises).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .ppo import PPO, _is_peft


def evaluate_policy(model, tokenizer, examples: Sequence, reward_fn: Callable, max_new_tokens: int,
                    fmt: str = "chatml", gold: bool = True) -> dict:
    """Greedy responses to ``examples`` in prompt format ``fmt``: with ``gold``, gold reward and exact match
    (overall and per kind); the mean of ``reward_fn`` (e.g. the reward model's score), the perplexity of the
    reference responses (response tokens and the token that ends them), distinct-2 of the responses, and their
    length in tokens (each, and the mean)."""
    from ..core import evaluation, generation

    responses = generation.respond(model, tokenizer, examples, fmt, max_new_tokens, batch_size=64)
    prompts = [generation.prompt_text(e, fmt, tokenizer) for e in examples]
    end = "<|im_end|>" if fmt == "chatml" else tokenizer.eos_token
    nll = evaluation.response_nll(model, tokenizer, prompts, [e.output + end for e in examples])
    scores = reward_fn(examples, responses)
    lengths = [len(tokenizer(r)["input_ids"]) for r in responses]
    return {**(evaluation.task_scores(examples, responses) if gold else {}), "rm": sum(scores) / len(examples),
            "rm_scores": scores, "ppl": math.exp(nll["nll_per_token"]), "distinct_2": evaluation.distinct_n(responses, 2),
            "length": sum(lengths) / len(responses), "lengths": lengths, "responses": responses}


def hacked(examples: Sequence, before: dict, after: dict) -> list:
    """Reward hacking, answer by answer: the indices of ``examples`` whose answer in ``after`` the RM scores higher
    and the gold checker lower than in ``before`` (both :func:`evaluate_policy` results on ``examples``)."""
    return [i for i, e in enumerate(examples)
            if after["rm_scores"][i] > before["rm_scores"][i]
            and e.gold_reward(after["responses"][i]) < e.gold_reward(before["responses"][i])]


@torch.no_grad()
def headroom(policy, tokenizer, examples: Sequence, reward_fn: Callable, samples: int, temperature: float,
             max_new_tokens: int, seed: int, fmt: str = "chatml") -> dict:
    """Per task kind and ``all``: what RL can take. ``samples`` responses per prompt; ``sampled_gold`` is their
    mean gold reward, ``pass@1`` the share of samples with the full gold reward and ``pass@K`` the share of
    prompts with at least one, ``mixed`` the share of prompts whose samples differ in gold reward (a group with
    one reward gives RL nothing to prefer), and ``ordered`` how often ``reward_fn`` orders two samples of the same
    prompt as the gold reward does. RL can only reinforce what the policy sometimes does *and* the reward
    recognises."""
    from ..core import generation
    from . import reward

    torch.manual_seed(seed)
    many = [e for e in examples for _ in range(samples)]
    responses = generation.respond(policy, tokenizer, many, fmt, max_new_tokens, batch_size=64, temperature=temperature)
    gold = [e.gold_reward(r) for e, r in zip(many, responses)]
    scores = reward_fn(many, responses)
    out = {}
    for kind in sorted({e.kind for e in many}) + ["all"]:
        idx = [i for i, e in enumerate(many) if kind in ("all", e.kind)]
        groups = [idx[j:j + samples] for j in range(0, len(idx), samples)]
        order = reward.within_prompt_accuracy([many[i] for i in idx], [scores[i] for i in idx], [gold[i] for i in idx])
        out[kind] = {"sampled_gold": sum(gold[i] for i in idx) / len(idx),
                     "pass@1": sum(gold[i] >= 1.0 for i in idx) / len(idx),
                     "pass@K": sum(any(gold[i] >= 1.0 for i in g) for g in groups) / len(groups),
                     "mixed": sum(len({gold[i] for i in g}) > 1 for g in groups) / len(groups),
                     "ordered": order["accuracy"], "pairs": order["pairs"]}
    return out


def load_policy(cfg):
    """A fresh policy from the SFT model (``cfg.inputs.model``); with ``ppo.lora`` a LoRA adapter (``cfg.lora``)
    on it, so only the adapter trains and the reference is the same model with the adapter switched off."""
    from . import lora
    from ..core import models

    model = models.load_pretrained(cfg.model, cfg.inputs.model)[0]
    return lora.add_adapter(model, cfg.lora) if cfg.ppo.lora else model


def for_saving(model):
    """The plain model to save: a LoRA policy's adapter merged into its weights."""
    return model.merge_and_unload() if _is_peft(model) else model


class Setting:
    """What the RL labs share: the prompts (the SFT lab's split, in its prompt format ``cfg.sft.format``), the SFT
    policy and its tokenizer, the reward model (checked to read the policy's tokens), the rewards and the
    held-out evaluation.

    A domain without a gold checker (your own files) has no gold reward; a **judge** (``cfg.inputs.judge``, an RM
    trained on pairs the optimisers never see) scores the held-out evaluation's win rate against the SFT
    policy."""

    def __init__(self, cfg):
        from ..core import domain, generation, models
        from . import reward

        self.cfg, self.fmt, self.gold = cfg, cfg.sft.format, domain.of(cfg).gold
        split = domain.instructions(cfg)
        self.train, self.val = split.train, split.val
        self.rm, self.rm_tokenizer = reward.load_backbone(cfg.inputs.reward_model, cfg.seed)
        self.policy, self.tokenizer = models.load_pretrained(cfg.model, cfg.inputs.model)
        reward.check_tokenizers(self.tokenizer, self.rm_tokenizer)
        self.stops = generation.stop_ids(self.tokenizer)
        # the judge's score of each response (own-domain track)
        self.judge_reward = reward.scorer(cfg.inputs.judge, cfg.seed) if "judge" in cfg.inputs else None
        self.baseline: dict | None = None  # the SFT policy's held-out evaluation, once asked for

    def prompt(self, example) -> str:
        from ..core import generation

        return generation.prompt_text(example, self.fmt, self.tokenizer)

    def rm_reward(self, examples, responses) -> list:
        """The reward model's score of each response."""
        from . import reward

        return reward.score(self.rm, self.rm_tokenizer, examples, responses).tolist()

    @staticmethod
    def gold_reward(examples, responses) -> list:
        """The code-checked reward of each response (1 bare and right, 0.5 right with chatter, 0 wrong)."""
        return [e.gold_reward(r) for e, r in zip(examples, responses, strict=True)]

    def evaluate(self, model) -> dict:
        """:func:`evaluate_policy` on the held-out prompts at the domain's one answer length
        (:func:`lablib.domain.answer_tokens`), with the RM as the reward; with a judge, also its mean score and the
        win rate against the SFT policy's responses (:func:`lablib.evaluation.win_rate`: interval, equal length)."""
        from ..core import domain, evaluation

        out = evaluate_policy(model, self.tokenizer, self.val, self.rm_reward, domain.answer_tokens(self.cfg), self.fmt,
                              gold=self.gold)
        if self.judge_reward is not None:
            if self.baseline is None:
                self.baseline = out if model is self.policy else self.evaluate(self.policy)
            out["judge_scores"] = self.judge_reward(self.val, out["responses"])
            out["judge"] = sum(out["judge_scores"]) / len(self.val)
            out["win"] = evaluation.win_rate(out["judge_scores"], self.baseline["judge_scores"], out["responses"],
                                             self.baseline["responses"], out["lengths"], self.baseline["lengths"])
        return out

    @property
    def metrics(self) -> dict:
        """What the trainers log per step besides the RM: the gold reward, where the domain has a gold checker."""
        return {"gold": self.gold_reward} if self.gold else {}

    def ppo(self, model, ppo_cfg=None, seed: int | None = None) -> PPO:
        """A PPO trainer for ``model`` against the RM, logging :attr:`metrics` per step; with ``ppo_cfg.ptx_coef``
        > 0, PPO-ptx on lab 01's training documents (:func:`pretraining_texts`)."""
        ppo_cfg = ppo_cfg or self.cfg.ppo
        return PPO(model, self.tokenizer, self.rm_reward, self.prompt, ppo_cfg, self.stops, metrics=self.metrics,
                   seed=self.cfg.seed if seed is None else seed,
                   ptx_texts=pretraining_texts(self.cfg) if ppo_cfg.ptx_coef > 0 else ())


def pretraining_texts(cfg) -> list:
    """What PPO-ptx keeps the policy able to predict: lab 01's training documents (the domain's corpus)."""
    from ..core import domain

    corpus = domain.corpus(cfg)
    if corpus is None:
        raise ValueError("ppo.ptx_coef > 0 mixes in the pretraining loss, but this domain has no corpus "
                         "(domain.corpus): set ppo.ptx_coef=0")
    return corpus[0]


def ppo_runs(rl: Setting, seeds: Sequence[int], ppo_cfg=None) -> dict:
    """Lab 05's main runs: for each seed, PPO (``ppo_cfg``, default ``cfg.ppo``) from a fresh SFT policy on the
    training prompts for ``ppo.steps``, then the held-out evaluation. ``{seed: {"model", "trainer", "history",
    "after", "stopped"}}``."""
    runs = {}
    for seed in seeds:
        model = load_policy(rl.cfg)  # the SFT model, with a LoRA adapter if ppo.lora=true
        trainer = rl.ppo(model, ppo_cfg, seed=seed)
        history = trainer.train(rl.train, rl.cfg.ppo.steps, progress=rl.cfg.train.progress)
        runs[seed] = {"model": model, "trainer": trainer, "history": history, "after": rl.evaluate(model),
                      "stopped": trainer.stopped}
    return runs


def raft_runs(rl: Setting, seeds: Sequence[int], out_dir) -> dict:
    """Lab 06's main runs: for each seed, RAFT from a fresh SFT policy for ``raft.iterations``, ranking by the RM,
    then the held-out evaluation. ``{seed: {"model", "history", "after", "seconds"}}``."""
    from pathlib import Path

    from . import raft

    runs = {}
    for seed in seeds:
        model = load_policy(rl.cfg)
        run = raft.RAFT(model, rl.tokenizer, rl.rm_reward, rl.cfg, Path(out_dir) / f"raft-{seed}", metrics=rl.metrics,
                        seed=seed)
        history = run.train(rl.train, rl.cfg.raft.iterations, progress=rl.cfg.train.progress)
        runs[seed] = {"model": model, "history": history, "after": rl.evaluate(model),
                      "seconds": sum(h["seconds"] for h in history)}
    return runs


METHODS = ("PPO", "DPO", "GRPO (gold)")  # lab 06's alternatives to RAFT; GRPO trains on the gold reward


def alternatives(rl: Setting, pairs, out_dir, methods: Sequence[str] = METHODS) -> tuple:
    """Lab 06's comparison with RAFT: for each of ``raft.seeds``, from a fresh SFT policy each, the ``methods``
    among PPO against the RM, DPO on ``pairs`` and GRPO on the gold reward (a domain with a gold checker only),
    each evaluated on the held-out prompts. Returns ``({method: {seed: {"after", "seconds", ...}}}, DPO's loss
    before training checked against ours, or None without DPO)``."""
    from pathlib import Path

    from ..core import config, training
    from . import dpo, grpo

    unknown = [m for m in methods if m not in METHODS or (m == "GRPO (gold)" and not rl.gold)]
    if unknown:
        raise ValueError(f"alternatives: {unknown} not among {[m for m in METHODS if rl.gold or 'gold' not in m]}")
    cfg, out_dir = rl.cfg, Path(out_dir)
    runs: dict = {m: {} for m in methods}
    start = None
    for seed in cfg.raft.seeds:
        if "PPO" in runs:
            model = load_policy(cfg)
            history = rl.ppo(model, seed=seed).train(rl.train, cfg.ppo.steps, progress=cfg.train.progress)
            runs["PPO"][seed] = {"after": rl.evaluate(model), "seconds": sum(h["seconds"] for h in history)}
        if "DPO" in runs:
            model = load_policy(cfg)
            trainer = dpo.make_trainer(model, rl.tokenizer, pairs, cfg, out_dir / f"dpo-{seed}", seed=seed)
            start = start or dpo.check_loss(trainer, cfg.dpo.beta)
            result = training.fit(trainer, row=dpo.log_row)
            runs["DPO"][seed] = {"model": model, "after": rl.evaluate(model), "seconds": result["seconds"],
                                 "history": result["history"]}
        if "GRPO (gold)" in runs:
            model = load_policy(cfg)
            result = grpo.grpo(model, rl.tokenizer, rl.train, rl.gold_reward, config.with_changes(cfg, seed=seed),
                               out_dir / f"grpo-{seed}", cfg.grpo.steps, rl.stops)
            runs["GRPO (gold)"][seed] = {"model": model, "after": rl.evaluate(model), "seconds": result["seconds"]}
    return runs, start
