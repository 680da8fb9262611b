"""RL with verifiable rewards (RLVR): GRPO whose reward is the gold checker's verdict on *correctness* alone (1 for
a right answer, 0 for a wrong one, style not rewarded), as DeepSeek-R1 and Tülu 3 train on checkable answers;
measured by the unbiased pass@k of sampled answers on the held-out prompts, before and after.

The question it asks is Yue et al.'s (2025): RL raises pass@1 -- does it also raise pass@k at large k, or does
the model it started from catch up there, because RL only made the right answers it could already find more
likely? Lab 05's headroom table (pass@1 against pass@K of the SFT policy) is the room it has.
"""
from __future__ import annotations

from typing import Sequence

from ..core import config, domain, models
from . import grpo, leaderboard


def correct_reward(examples: Sequence, responses: Sequence[str]) -> list:
    """1.0 for each right answer (its first line is the reference, chatter or not), 0.0 for a wrong one."""
    return [float(e.correct(r)) for e, r in zip(examples, responses, strict=True)]


def curve(rl, model, label: str) -> dict:
    """pass@k for k = 1 ... ``rlvr.samples`` of ``model``'s answers to the held-out prompts at ``rlvr.temperature``."""
    cfg = rl.cfg
    return leaderboard.sampled_pass_curve(model, rl.tokenizer, rl.val, [rl.prompt(e) for e in rl.val],
                                          cfg.rlvr.samples, cfg.rlvr.temperature, domain.answer_tokens(cfg),
                                          cfg.rlvr.batch_size, cfg.seed, label)


def run(rl, out_dir) -> dict:
    """The SFT policy's curve, then for each seed of ``rlvr.seeds`` GRPO from a fresh SFT policy for
    ``rlvr.steps`` steps at ``rlvr.lr`` with :func:`correct_reward` (``grpo``'s group size and beta), and its
    curve. ``{"before": curve, "after": {seed: curve}, "history": {seed: rows}, "seconds": {seed: s}}``."""
    cfg = rl.cfg
    out = {"before": curve(rl, rl.policy, "SFT"), "after": {}, "history": {}, "seconds": {}}
    for seed in cfg.rlvr.seeds:
        model = models.load_pretrained(cfg.model, cfg.inputs.model)[0]
        seeded = config.with_changes(cfg, seed=seed, grpo={"lr": cfg.rlvr.lr})
        result = grpo.grpo(model, rl.tokenizer, rl.train, correct_reward, seeded, f"{out_dir}/seed{seed}",
                           cfg.rlvr.steps, rl.stops)
        out["after"][seed] = curve(rl, model, f"RLVR seed {seed}")
        out["history"][seed], out["seconds"][seed] = result["history"], result["seconds"]
    return out


def meeting_point(before: dict, after: dict):
    """The smallest k at which ``before``'s pass@k reaches ``after``'s (the curves meet), or None."""
    return next((k for k in sorted(before) if before[k] >= after[k]), None)
