"""DPO (Rafailov et al., 2023): learn from preference pairs directly, with no reward model and no sampling.

The policy's implicit reward of a response is ``beta * (log pi(y|x) - log pi_ref(y|x))``; DPO fits it to the
pairs with the Bradley-Terry loss of lab 04. TRL maintains it (``DPOTrainer``); this module configures it from
``cfg`` and writes the loss out so the lab can check the trainer against it.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..core import config, training
from . import reward


def dpo_loss(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """The DPO loss from summed response log-probabilities of policy and reference, averaged over pairs:
    ``-log sigmoid(beta * [(log pi - log pi_ref)(chosen) - (log pi - log pi_ref)(rejected)])``.
    Equal to ``log 2`` while the policy is still the reference."""
    margin = (logp_chosen - ref_chosen) - (logp_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


def make_trainer(policy, tokenizer, pairs: Sequence, cfg, out_dir, seed: int | None = None):
    """TRL's ``DPOTrainer`` on conversational prompt/chosen/rejected pairs: ``cfg.dpo`` sets steps, batch, lr
    and beta; the reference is a frozen copy of ``policy`` made by the trainer."""
    from trl import DPOConfig, DPOTrainer

    reward.check_pairs(pairs, "DPO")
    train_cfg = config.with_changes(cfg.train, max_steps=cfg.dpo.steps, batch_size=cfg.dpo.batch_size,
                                    lr=cfg.dpo.lr, warmup_steps=0, eval_every=10 ** 6)
    return training.build(DPOTrainer, DPOConfig, train_cfg, cfg.seed if seed is None else seed, out_dir, args=dict(
        eval_strategy="no", logging_steps=1, lr_scheduler_type="constant", lr_scheduler_kwargs=None,
        beta=cfg.dpo.beta, max_length=cfg.reward.max_length, gradient_checkpointing=False),
        model=policy, train_dataset=reward.to_dataset(pairs), processing_class=tokenizer)


@torch.no_grad()
def check_loss(trainer, beta: float, n_pairs: int = 8) -> dict:
    """The trainer's loss and :func:`dpo_loss` on the same batch of ``n_pairs`` training pairs, the
    log-probabilities summed over response tokens by our own loop over the logits."""
    rows = [trainer.train_dataset[i] for i in range(min(n_pairs, len(trainer.train_dataset)))]
    batch = trainer.data_collator(rows)
    trainer.model.eval()
    theirs = float(trainer.compute_loss(trainer.model, dict(batch)))

    def logps(model) -> torch.Tensor:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
        token_logp = torch.log_softmax(logits, -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
        return (token_logp * batch["completion_mask"][:, 1:]).sum(-1)

    policy = logps(trainer.model)
    if trainer.ref_model is None:  # a LoRA policy: the reference is the same model with its adapter off
        with trainer.model.disable_adapter():
            ref = logps(trainer.model)
    else:
        ref = logps(trainer.ref_model)
    n = len(rows)
    ours = float(dpo_loss(policy[:n], policy[n:], ref[:n], ref[n:], beta))
    return {"trainer": theirs, "ours": ours, "pairs": n}


def log_row(entry: dict):
    """A row of DPO's history (for :func:`lablib.training.fit`): the loss, the implicit-reward margin of chosen
    over rejected and the share of pairs ranked right, per logged step."""
    if "loss" not in entry:
        return None
    return {"step": entry["step"], "loss": entry["loss"], "margin": entry.get("rewards/margins", float("nan")),
            "accuracy": entry.get("rewards/accuracies", float("nan"))}
