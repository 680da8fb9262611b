"""Parameter-efficient fine-tuning: LoRA adapters (PEFT) on a full-precision or quantized base (QLoRA).

LoRA freezes a weight matrix ``W`` and learns a low-rank update: ``h = W x + (alpha / r) * B A x`` with
``A`` (r x d_in) random and ``B`` (d_out x r) zero at the start, so training starts from the base model
exactly. QLoRA does the same on a base whose linear layers bitsandbytes stores in 8 bits or 4-bit NF4.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import torch

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]


class LoRAError(ValueError):
    """A LoRA / quantization setting that cannot work, worded as one line naming the config key."""


def linear_module_names(model) -> list:
    """Short names of the decoder's linear layers (what LoRA can target), lm_head excluded."""
    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) or type(m).__name__.startswith("Linear")}
    return sorted(names - {"lm_head"})


def target_modules(targets: str, model) -> list:
    """``attention`` | ``all-linear`` | a comma-separated list of module names; checked against the model."""
    available = linear_module_names(model)
    if targets == "attention":
        wanted = ATTENTION
    elif targets == "all-linear":
        return available
    else:
        wanted = [t.strip() for t in targets.split(",") if t.strip()]
    missing = [t for t in wanted if t not in available]
    if missing or not wanted:
        raise LoRAError(f"lora.targets={targets!r}: no module {missing or wanted} in this model; "
                        f"its linear layers are {available}")
    return wanted


def add_adapter(model, lora_cfg, new_token_ids: Sequence[int] = ()):
    """Wrap ``model`` with a LoRA adapter (``peft.get_peft_model``). Token rows added for the chat template
    (``new_token_ids``) are trained too, through PEFT's ``trainable_token_indices``: a frozen, freshly
    initialised ``<|im_end|>`` could never learn to end a response."""
    from peft import LoraConfig, get_peft_model

    if lora_cfg.r < 1:
        raise LoRAError(f"lora.r={lora_cfg.r}: the rank must be >= 1")
    config = LoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout,
                        target_modules=target_modules(lora_cfg.targets, model), task_type="CAUSAL_LM",
                        trainable_token_indices=list(new_token_ids) or None)
    return get_peft_model(model, config)


def quantization_config(bits: int):
    """bitsandbytes settings: 8-bit (LLM.int8) or 4-bit NF4 with double quantisation, bf16 compute."""
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    raise LoRAError(f"lora.quantize={bits}: must be 0 (none), 4 or 8")


def load_quantized(path: str | Path, bits: int):
    """The model at ``path`` with its linear layers quantized by bitsandbytes, ready for k-bit training."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    qconfig = quantization_config(bits)
    try:
        import bitsandbytes  # noqa: F401
        model = AutoModelForCausalLM.from_pretrained(str(path), quantization_config=qconfig, device_map="cpu",
                                                     dtype=torch.bfloat16)
    except Exception as exc:  # bitsandbytes raises many kinds; all mean "cannot quantize here"
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoRAError(f"lora.quantize={bits}: bitsandbytes cannot load {path} in {bits}-bit here ({msg})") from None
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


@torch.no_grad()
def merge_check(peft_model, tokenizer, texts: Sequence[str], out_dir: str | Path) -> dict:
    """Merge the adapter into the base weights (``merge_and_unload``), save, reload, and compare the reloaded
    model's logits with base + adapter on ``texts``. Returns the largest absolute difference and the folder."""
    from transformers import AutoModelForCausalLM

    peft_model.eval()
    enc = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    with_adapter = peft_model(**enc).logits
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    reloaded = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=merged.dtype).eval()
    after = reloaded(**enc).logits
    mask = enc["attention_mask"].bool()
    diff = (with_adapter - after).abs()[mask].max().item()
    return {"max_abs_diff": diff, "logit_scale": with_adapter[mask].abs().max().item(), "path": str(out_dir),
            "model": reloaded}


def finetune(cfg, base_path: str | Path, train_examples: Sequence, eval_examples: Sequence, out_dir: str | Path,
             method: str = "lora", r: int | None = None, targets: str | None = None, bits: int = 0,
             max_steps: int | None = None) -> dict:
    """One fine-tuning run from start to finish -- load the base (quantized when ``bits``), add a LoRA adapter
    (unless ``method="full"``), SFT with TRL, score the held-out examples -- returning its numbers.

    Module-level and self-contained so :func:`lablib.memory.isolated` can run it in a fresh process.
    """
    from omegaconf import OmegaConf
    from transformers import set_seed

    from . import evaluation, models, sft

    overrides = {"lora": {"r": r or cfg.lora.r, "targets": targets or cfg.lora.targets},
                 "train": {"max_steps": max_steps or cfg.train.max_steps}}
    cfg = OmegaConf.merge(OmegaConf.to_container(cfg, resolve=True), overrides)
    set_seed(cfg.seed)
    if bits:
        model = load_quantized(base_path, bits)
        tokenizer = models.load_pretrained(cfg.model, base_path)[1]
    else:
        model, tokenizer = models.load_pretrained(cfg.model, base_path)
    added = sft.use_chatml(model, tokenizer) if cfg.sft.format == "chatml" else 0
    new_ids = list(range(len(tokenizer) - added, len(tokenizer)))
    if method == "lora":
        model = add_adapter(model, cfg.lora, new_ids)
    counts = models.count_params(model)
    trainer = sft.make_trainer(model, tokenizer, train_examples, eval_examples, cfg, out_dir)
    result = sft.train(trainer)
    responses = sft.respond(model, tokenizer, eval_examples, cfg.sft.format, cfg.sft.max_new_tokens)
    scores = evaluation.task_scores(eval_examples, responses)
    label = "full SFT" if method == "full" else f"{'Q' if bits else ''}LoRA r={cfg.lora.r} {cfg.lora.targets}"
    return {"run": label + (f" {bits}-bit" if bits else ""), "method": method, "r": cfg.lora.r if method == "lora" else None,
            "targets": cfg.lora.targets if method == "lora" else None, "bits": bits,
            "trainable": counts["trainable"], "total": counts["total"], "steps": result["steps"],
            "seconds": result["seconds"], "tokens_per_s": result["tokens_per_s"],
            "exact_match": scores["exact_match"], "gold_reward": scores["gold_reward"],
            "final_val_loss": next((h["val_loss"] for h in reversed(result["history"]) if "val_loss" in h), None)}
