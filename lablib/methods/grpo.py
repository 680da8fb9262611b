"""GRPO (Shao et al., 2024) and RLOO (Ahmadian et al., 2024), as TRL maintains them: PPO's siblings with no
value head.

Each prompt gets ``cfg.grpo.generations`` samples, and a sample's advantage is its reward against the others of
its prompt. GRPO subtracts the group's mean and divides by its spread; RLOO subtracts the mean of the *other*
samples (leave one out, so a sample is never its own baseline) and does not divide. A KL term keeps the policy
near the reference. The labs run both on the same prompts, rewards and held-out evaluation as our PPO
(``lablib.rl_setting``), beside DPO (``lablib.dpo``).
"""
from __future__ import annotations

from typing import Callable, Sequence

from ..core import generation, training
from ..core.config import with_changes


def grpo(policy, tokenizer, examples: Sequence, reward_fn: Callable, cfg, out_dir, steps: int,
         stop_ids: Sequence[int], method: str = "grpo") -> dict:
    """Train ``policy`` in place with TRL's ``GRPOTrainer`` (or, with ``method="rloo"``, its ``RLOOTrainer``):
    ``cfg.grpo.generations`` samples per prompt, each scored by ``reward_fn(examples, responses)`` and compared
    with the others of its prompt (no value head). Uses ``cfg.grpo``'s learning rate and beta, and ``cfg.ppo``'s
    batch size (in samples), temperature and response length."""
    import trl
    from datasets import Dataset

    if method not in ("grpo", "rloo"):
        raise ValueError(f"method={method!r}: expected 'grpo' or 'rloo'")
    Trainer, Config = {"grpo": (trl.GRPOTrainer, trl.GRPOConfig), "rloo": (trl.RLOOTrainer, trl.RLOOConfig)}[method]

    dataset = Dataset.from_list([{"prompt": [generation.chat_turn(e)], "idx": i} for i, e in enumerate(examples)])

    def rewards(prompts, completions, idx, **_):
        return reward_fn([examples[i] for i in idx], [c[0]["content"] for c in completions])

    rewards.__name__ = getattr(reward_fn, "__name__", "reward")
    policy.generation_config.eos_token_id = list(stop_ids)  # GRPO masks completions after these
    train_cfg = with_changes(cfg.train, max_steps=steps, batch_size=cfg.ppo.batch_size, lr=cfg.grpo.lr,
                             warmup_steps=0, eval_every=10 ** 6)
    trainer = training.build(Trainer, Config, train_cfg, cfg.seed, out_dir, args=dict(
        eval_strategy="no", logging_steps=1, lr_scheduler_type="constant", lr_scheduler_kwargs=None,
        num_generations=cfg.grpo.generations, max_completion_length=cfg.ppo.max_new_tokens,
        beta=cfg.grpo.beta, temperature=cfg.ppo.temperature, top_k=0, gradient_checkpointing=False),
        model=policy, reward_funcs=rewards, train_dataset=dataset, processing_class=tokenizer)
    result = training.fit(trainer, row=grpo_row)
    return {**result, "samples": steps * cfg.ppo.batch_size}


def grpo_row(entry: dict):
    """A row of GRPO's (or RLOO's) history: mean reward of the step's samples, KL to the reference, completion length."""
    if "reward" not in entry:
        return None
    return {"step": entry["step"], "reward": entry["reward"], "kl": entry.get("kl", 0.0),
            "length": entry.get("completions/mean_length", float("nan"))}
