"""Training: every stage's trainer is built and run here, and causal-LM (pre)training on packed blocks.

The Hugging Face ``Trainer`` (and TRL's trainers, its subclasses) brings what a hand-written loop would have to
re-implement: AdamW with warm-up and cosine decay, gradient clipping and accumulation, bf16 autocast, periodic
evaluation, checkpoints that resume exactly, and a progress bar. :func:`build` configures any of them from
``cfg.train`` plus a stage's own arguments; :func:`fit` runs one and returns the same small result for every
stage. Their overhead over a bare PyTorch loop is measured in ``bench/``.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch
from transformers import PrinterCallback, Trainer, TrainingArguments


class Blocks(torch.utils.data.Dataset):
    """Packed token blocks as causal-LM examples (labels = inputs; the model shifts them)."""

    def __init__(self, blocks: torch.Tensor):
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


def training_kwargs(train_cfg, seed: int, out_dir: str | Path) -> dict:
    """Keyword arguments for ``TrainingArguments`` (or a TRL config, its subclass) from ``cfg.train``.

    CPU-safe: ``use_cpu`` when there is no GPU (TRL configs default to bf16, which fails on CPU without it).
    """
    save = train_cfg.save_every > 0
    return dict(
        output_dir=str(out_dir), max_steps=train_cfg.max_steps,
        per_device_train_batch_size=train_cfg.batch_size, per_device_eval_batch_size=train_cfg.batch_size,
        gradient_accumulation_steps=train_cfg.grad_accum, learning_rate=train_cfg.lr,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": train_cfg.min_lr_ratio},
        warmup_steps=train_cfg.warmup_steps, weight_decay=train_cfg.weight_decay,
        max_grad_norm=train_cfg.grad_clip, bf16=train_cfg.bf16, use_cpu=not torch.cuda.is_available(),
        eval_strategy="steps", eval_steps=train_cfg.eval_every,
        logging_steps=max(1, train_cfg.eval_every // 5), logging_first_step=True,
        save_strategy="steps" if save else "no", save_steps=train_cfg.save_every if save else 500,
        save_total_limit=2 if save else None, seed=seed, data_seed=seed,
        dataloader_num_workers=0, report_to="none", disable_tqdm=not train_cfg.progress,
        ddp_find_unused_parameters=False)  # under torchrun: every parameter gets a gradient


def build(trainer_cls, args_cls, train_cfg, seed: int, out_dir: str | Path, args: Optional[dict] = None,
          **trainer_kwargs):
    """A ``trainer_cls`` (the HF ``Trainer`` or a TRL trainer) whose ``args_cls`` arguments come from ``cfg.train``
    (:func:`training_kwargs`) updated with the stage's own ``args``; its per-step printing is off unless
    ``train.progress``."""
    with warnings.catch_warnings():  # TRL passes deprecated argument names on to transformers
        warnings.simplefilter("ignore", FutureWarning)
        arguments = args_cls(**{**training_kwargs(train_cfg, seed, out_dir), **(args or {})})
        trainer = trainer_cls(args=arguments, **trainer_kwargs)
    if not train_cfg.progress:
        trainer.remove_callback(PrinterCallback)
    return trainer


def loss_row(entry: dict) -> Optional[dict]:
    """A row of the loss history from one log entry: ``{step, train_loss}`` or ``{step, val_loss}`` (with
    ``val_accuracy`` when the trainer reports one); None for other entries."""
    if "loss" in entry:
        return {"step": entry["step"], "train_loss": float(entry["loss"])}
    if "eval_loss" in entry:
        row = {"step": entry["step"], "val_loss": float(entry["eval_loss"])}
        return {**row, "val_accuracy": float(entry["eval_accuracy"])} if "eval_accuracy" in entry else row
    return None


def history(trainer: Trainer, row: Callable[[dict], Optional[dict]] = loss_row) -> list:
    """The rows ``row`` makes of the trainer's log entries, in step order."""
    return [r for r in map(row, trainer.state.log_history) if r is not None]


def fit(trainer, resume: bool = False, row: Callable[[dict], Optional[dict]] = loss_row,
        tokens: Optional[Callable] = None) -> dict:
    """Train (from the newest checkpoint in its output folder when ``resume`` and a killed run left one). Returns
    what every stage reports: the ``history`` (rows made by ``row`` from the log), ``steps``, ``seconds``, the step
    it ``resumed_from`` (0: the start) and, where ``tokens(trainer)`` counts them, ``tokens`` and
    ``tokens_per_s``. The model is left in eval mode."""
    start = time.perf_counter()
    resumed_from = run(trainer, resume)
    seconds = time.perf_counter() - start
    trainer.model.eval()
    result = {"history": history(trainer, row), "steps": trainer.state.global_step, "seconds": seconds,
              "resumed_from": resumed_from}
    if tokens is not None:
        result["tokens"] = n = int(tokens(trainer))
        result["tokens_per_s"] = n / seconds
    return result


def last_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest *complete* ``checkpoint-N`` folder in ``out_dir`` (the Trainer writes ``trainer_state.json``
    last, so a run killed while saving leaves a folder without a readable one, which is skipped)."""
    found = []
    for folder in Path(out_dir).glob("checkpoint-*"):
        try:
            found.append((json.loads((folder / "trainer_state.json").read_text())["global_step"], folder))
        except (OSError, ValueError, KeyError):
            continue
    return max(found)[1] if found else None


def run(trainer: Trainer, resume: bool = True) -> int:
    """``trainer.train()``, from the newest complete checkpoint in its output folder when ``resume`` and
    there is one. Returns the step it resumed from (0: from the start)."""
    checkpoint = last_checkpoint(trainer.args.output_dir) if resume else None
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return int(checkpoint.name.split("-")[-1]) if checkpoint else 0


def pretrain(model, train_blocks: torch.Tensor, val_blocks: torch.Tensor, train_cfg, seed: int,
             out_dir: str | Path, resume: bool = True) -> dict:
    """Train ``model`` in place on packed blocks. Returns its loss history and throughput.

    With ``train.save_every > 0`` checkpoints go to ``out_dir``; a re-run with ``resume`` continues
    from the newest one (same data order, optimizer and RNG state: the same final numbers on CPU).
    """
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    trainer = build(Trainer, TrainingArguments, train_cfg, seed, out_dir, model=model,
                    train_dataset=Blocks(train_blocks), eval_dataset=Blocks(val_blocks[: train_cfg.eval_items]))
    per_step = train_cfg.batch_size * train_cfg.grad_accum * train_blocks.shape[1]
    return fit(trainer, resume, tokens=lambda t: t.state.global_step * per_step)


def compute_cost(model, tokens: int, seconds: float) -> dict:
    """Training compute by the rule C = 6 N D (Kaplan et al. 2020: about 2 N FLOPs per token forward and 4 N
    backward, attention's share ignored), with N the parameters outside the embeddings (which are looked up, not
    multiplied) and D the tokens trained on; and the FLOP/s this run achieved."""
    from .models import count_params

    n = count_params(model)["total"] - model.get_input_embeddings().weight.numel()
    flops = 6 * n * tokens
    return {"non_embedding_params": n, "tokens": tokens, "flops": flops, "seconds": seconds,
            "flops_per_s": flops / seconds if seconds else float("nan")}
