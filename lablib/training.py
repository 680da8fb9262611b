"""Training: causal-LM (pre)training on packed blocks with the Hugging Face ``Trainer``.

The Trainer brings what a hand-written loop would have to re-implement: AdamW with warm-up and cosine
decay, gradient clipping and accumulation, bf16 autocast, periodic evaluation, checkpoints that resume
exactly, and a progress bar. Its overhead over a bare PyTorch loop is measured in ``bench/``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

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


def training_args(train_cfg, seed: int, out_dir: str | Path, **extra) -> TrainingArguments:
    """``TrainingArguments`` from ``cfg.train``."""
    return TrainingArguments(**{**training_kwargs(train_cfg, seed, out_dir), **extra})


def history(trainer: Trainer) -> list:
    """``[{step, train_loss | val_loss}]`` from the Trainer's log, in step order."""
    rows = []
    for entry in trainer.state.log_history:
        if "loss" in entry:
            rows.append({"step": entry["step"], "train_loss": float(entry["loss"])})
        elif "eval_loss" in entry:
            rows.append({"step": entry["step"], "val_loss": float(entry["eval_loss"])})
    return rows


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
    args = training_args(train_cfg, seed, out_dir)
    trainer = Trainer(model=model, args=args, train_dataset=Blocks(train_blocks),
                      eval_dataset=Blocks(val_blocks[: train_cfg.eval_blocks]))
    if not train_cfg.progress:
        trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    resumed_from = run(trainer, resume)
    seconds = time.perf_counter() - start
    steps = trainer.state.global_step
    tokens = steps * train_cfg.batch_size * train_cfg.grad_accum * train_blocks.shape[1]
    model.eval()
    return {"history": history(trainer), "steps": steps, "tokens": tokens, "seconds": seconds,
            "tokens_per_s": tokens / seconds, "resumed_from": resumed_from}
