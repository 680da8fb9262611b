"""RAFT: reward-ranked fine-tuning (Dong et al., 2023, from the LMFlow team).

No maintained library implements it, so it is ours, and short. Each iteration:

1. take a batch of ``raft.batch_size`` prompts;
2. sample ``raft.k`` responses per prompt from the current policy (at ``raft.temperature``);
3. score every sample with the reward model;
4. keep the best sample of each prompt (``raft.mode=per_prompt``), or the best 1/K of the whole batch
   (``raft.mode=global``), discarding empty responses and non-finite scores;
5. fine-tune the policy on the kept samples with TRL's ``SFTTrainer`` (response-only loss).

It is supervised learning on the policy's own best samples: no value head, no KL term, no importance ratios.
"""
from __future__ import annotations

import math
import random
import time
from typing import Callable, List, Sequence, Tuple

import torch

from ..core import data, generation
from . import sft
from ..core.config import with_changes

MODES = ("per_prompt", "global")


class RAFTError(ValueError):
    """RAFT cannot learn from this input; the message says why."""


def check_scores(scores: Sequence[float]) -> None:
    """Refuse rewards RAFT cannot rank by: NaN or infinite ones, or the same score for every sample."""
    bad = [s for s in scores if not math.isfinite(s)]
    if len(bad) == len(scores):
        raise RAFTError(f"the reward model returned no finite score ({len(scores)} samples, e.g. {bad[0]})")
    finite = [s for s in scores if math.isfinite(s)]
    if len(finite) > 1 and max(finite) - min(finite) < 1e-6:
        raise RAFTError(f"the reward model gave all {len(finite)} samples the same score ({finite[0]:.4g}): "
                        "ranking them is arbitrary, so RAFT would learn nothing")


def select(responses: Sequence[str], scores: Sequence[float], k: int, mode: str = "per_prompt") -> List[int]:
    """Indices of the kept samples. ``responses``/``scores`` hold ``k`` consecutive samples per prompt.

    Empty responses and non-finite scores are discarded first. ``per_prompt`` keeps each prompt's best valid
    sample (a prompt with none keeps nothing); ``global`` keeps the best ``len/k`` valid samples of the batch,
    whatever their prompts. Ties go to the earlier sample, so the choice is deterministic.
    """
    if k < 1:
        raise RAFTError(f"raft.k={k}: need at least one sample per prompt")
    if mode not in MODES:
        raise RAFTError(f"raft.mode={mode!r}: must be one of {', '.join(MODES)}")
    if len(responses) != len(scores) or len(responses) % k:
        raise RAFTError(f"{len(responses)} responses and {len(scores)} scores are not {k} per prompt")
    valid = [i for i, (r, s) in enumerate(zip(responses, scores)) if r.strip() and math.isfinite(s)]
    if mode == "global":
        ranked = sorted(valid, key=lambda i: (-scores[i], i))
        return sorted(ranked[: len(responses) // k])
    kept = []
    for start in range(0, len(responses), k):
        group = [i for i in valid if start <= i < start + k]
        if group:
            kept.append(min(group, key=lambda i: (-scores[i], i)))
    return kept


def best_mean(responses: Sequence[str], scores: Sequence[float], k: int, mode: str = "per_prompt") -> float:
    """What the kept samples' mean score must be, worked out without :func:`select`: the mean of each prompt's
    highest valid score (``per_prompt``), or of the batch's ``len/k`` highest (``global``)."""
    valid = [s if r.strip() and math.isfinite(s) else None for r, s in zip(responses, scores)]
    if mode == "global":
        top = sorted((s for s in valid if s is not None), reverse=True)[: len(valid) // k]
    else:
        groups = [[s for s in valid[i:i + k] if s is not None] for i in range(0, len(valid), k)]
        top = [max(g) for g in groups if g]
    return sum(top) / len(top) if top else float("nan")


def as_example(example, response: str) -> data.Example:
    """An SFT example whose reference answer is the policy's own (kept) response."""
    return data.Example(example.instruction, example.input, response, example.kind)


class RAFT:
    """RAFT on a causal LM. ``reward_fn(examples, responses) -> list[float]``; ``metrics`` are logged per
    iteration on the samples and on the kept set (e.g. the gold reward). ``cfg`` is the lab's config: the
    sampling and selection settings come from ``cfg.raft``, the fine-tuning ones from ``cfg.train``."""

    def __init__(self, policy, tokenizer, reward_fn: Callable, cfg, out_dir, metrics: dict | None = None,
                 seed: int = 0):
        self.policy, self.tokenizer, self.reward_fn, self.cfg = policy, tokenizer, reward_fn, cfg
        self.out_dir, self.metrics, self.seed = out_dir, dict(metrics or {}), seed
        self.rng = random.Random(seed)
        self.history: List[dict] = []
        select([], [], cfg.raft.k, cfg.raft.mode)  # fail fast on a bad k or mode

    def sample(self, examples: Sequence) -> Tuple[list, list, list]:
        """``k`` responses per example at ``raft.temperature``, and their scores."""
        k = self.cfg.raft.k
        many = [e for e in examples for _ in range(k)]
        torch.manual_seed(self.rng.randrange(2 ** 31))
        responses = generation.respond(self.policy, self.tokenizer, many, self.cfg.sft.format, self.cfg.raft.max_new_tokens,
                                batch_size=64, temperature=self.cfg.raft.temperature)
        scores = [float(s) for s in self.reward_fn(many, responses)]
        check_scores(scores)
        return many, responses, scores

    def finetune(self, kept: Sequence, iteration: int) -> dict:
        """Supervised fine-tuning on the kept samples: ``raft.epochs`` passes, a fresh optimiser each time."""
        steps = max(1, math.ceil(len(kept) * self.cfg.raft.epochs / self.cfg.train.batch_size))
        cfg = with_changes(self.cfg, train={"max_steps": steps, "lr": self.cfg.raft.lr, "eval_every": 5,
                                            "warmup_steps": 0, "progress": False}, seed=self.seed + iteration)
        trainer = sft.make_trainer(self.policy, self.tokenizer, kept, kept[:1], cfg,
                                   f"{self.out_dir}/iteration-{iteration}")
        return sft.fit(trainer)

    def iteration(self, examples: Sequence, iteration: int = 0) -> dict:
        start = time.perf_counter()
        many, responses, scores = self.sample(examples)
        keep = select(responses, scores, self.cfg.raft.k, self.cfg.raft.mode)
        if not keep:
            raise RAFTError("no valid sample to keep (every response empty or unscored)")
        stats = {"samples_rm": sum(s for s in scores if math.isfinite(s)) / len(scores),
                 "kept_rm": sum(scores[i] for i in keep) / len(keep), "kept": len(keep),
                 "best_rm": best_mean(responses, scores, self.cfg.raft.k, self.cfg.raft.mode)}
        for name, fn in self.metrics.items():
            values = fn(many, responses)
            stats[f"samples_{name}"] = sum(values) / len(values)
            stats[f"kept_{name}"] = sum(values[i] for i in keep) / len(keep)
            stats[f"best_{name}_is_1"] = sum(values[i] >= 1.0 for i in keep) / len(examples)
        fit = self.finetune([as_example(many[i], responses[i]) for i in keep], iteration)
        losses = [r["train_loss"] for r in fit["history"] if "train_loss" in r]
        stats.update(sft_loss=losses[-1], sft_steps=fit["steps"], seconds=time.perf_counter() - start)
        return stats

    def train(self, examples: Sequence, iterations: int, progress: bool = True) -> List[dict]:
        """``iterations`` RAFT iterations on batches drawn (seeded) from ``examples``."""
        from tqdm.auto import tqdm

        for i in tqdm(range(iterations), desc="RAFT", disable=not progress):
            batch = self.rng.sample(list(examples), min(self.cfg.raft.batch_size, len(examples)))
            stats = self.iteration(batch, i)
            stats["iteration"] = stats["step"] = i + 1
            self.history.append(stats)
        self.policy.eval()
        return self.history
