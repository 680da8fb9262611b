"""Parameter-efficient fine-tuning: LoRA adapters (PEFT) on a full-precision or quantized base (QLoRA).

LoRA freezes a weight matrix ``W`` and learns a low-rank update: ``h = W x + (alpha / r) * B A x`` with
``A`` (r x d_in) random and ``B`` (d_out x r) zero at the start, so training starts from the base model
exactly. QLoRA does the same on a base whose linear layers bitsandbytes stores in 8 bits or 4-bit NF4.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..core.config import one_line

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


def add_adapter(model, lora_cfg):
    """Wrap ``model`` with a LoRA adapter (``peft.get_peft_model``); everything else is frozen, including
    the rows added for ChatML's two tokens: they stay fixed random vectors that the adapter learns to use.
    (PEFT's ``trainable_token_indices`` would train them, but TRL 1.16's fused LM-head loss cannot read
    through PEFT's token wrapper.)"""
    from peft import LoraConfig, get_peft_model

    if lora_cfg.r < 1:
        raise LoRAError(f"lora.r={lora_cfg.r}: the rank must be >= 1")
    config = LoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout,
                        target_modules=target_modules(lora_cfg.targets, model), task_type="CAUSAL_LM")
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
        raise LoRAError(f"lora.quantize={bits}: bitsandbytes cannot load {path} in {bits}-bit here "
                        f"({one_line(exc)})") from None
    for module in model.modules():
        # On a CPU with avx512_bf16, a 4-bit layer run in eval mode without gradients (the held-out loss before
        # training) repacks its weights for an inference kernel that has no backward: training after it would
        # then send no gradient through the frozen 4-bit layers to the adapters below them (bitsandbytes warns
        # "gemv_4bit: an autograd kernel was not registered"). A model we train keeps the trainable layout.
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
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



def parse_run(spec: str) -> dict:
    """``full`` | ``lora:R:TARGETS`` | ``qlora4:R:TARGETS`` | ``qlora8:R:TARGETS`` (an entry of ``lora.grid``), each
    optionally ``:STEPS`` (this run's steps instead of ``lora.grid_steps``: e.g. one measured QLoRA step on a CPU,
    where bitsandbytes' 4-bit path is slow)."""
    if spec == "full":
        return {"name": "full SFT", "method": "full", "r": None, "targets": None, "bits": 0, "steps": None}
    parts = spec.split(":")
    kinds = {"lora": 0, "qlora4": 4, "qlora8": 8}
    steps = parts.pop() if len(parts) == 4 else None
    if (len(parts) != 3 or parts[0] not in kinds or not parts[1].isdigit() or int(parts[1]) < 1
            or not (steps is None or steps.isdigit() and int(steps) >= 1)):
        raise LoRAError(f"lora.grid entry {spec!r}: expected full, lora:R:TARGETS, qlora4:R:TARGETS or "
                        "qlora8:R:TARGETS, optionally :STEPS (R, STEPS >= 1, e.g. lora:8:attention or "
                        "qlora4:16:all-linear:1)")
    bits = kinds[parts[0]]
    name = f"{'QLoRA ' + str(bits) + '-bit' if bits else 'LoRA'} r={parts[1]} {parts[2]}"
    return {"name": name, "method": "lora", "r": int(parts[1]), "targets": parts[2], "bits": bits,
            "steps": int(steps) if steps else None}


def param_table(model_factory, ranks: Sequence[int], target_sets: Sequence[str] = ("attention", "all-linear"),
                lora_cfg=None) -> list:
    """Trainable vs total parameters of a LoRA adapter for each rank and target set (no training)."""
    from types import SimpleNamespace

    from ..core import models

    rows = []
    for targets in target_sets:
        for r in ranks:
            cfg = SimpleNamespace(r=r, alpha=2 * r, dropout=0.0, targets=targets)
            counts = models.count_params(add_adapter(model_factory(), cfg))
            rows.append({"targets": targets, "r": r, "trainable": counts["trainable"], "total": counts["total"],
                         "percent": 100 * counts["trainable"] / counts["total"]})
    return rows


def load_for_run(cfg, base_path, bits: int = 0):
    """(model, tokenizer) for one run, with the chat template set up."""
    from ..core import generation, models

    if bits:
        model, tokenizer = load_quantized(base_path, bits), models.load_tokenizer(base_path)
    else:
        model, tokenizer = models.load_pretrained(cfg.model, base_path)
    if cfg.sft.format == "chatml":
        generation.use_chatml(model, tokenizer)
    return model, tokenizer


def prepare(cfg, base_path: str | Path, spec: str = "full"):
    """``(model, tokenizer, run)`` for one entry ``spec`` of ``lora.grid``: the base (quantized for QLoRA) with the
    chat template and, for LoRA and QLoRA, the adapter (rank ``r``, ``alpha = 2r``: the update's scale
    ``alpha / r`` stays 2 whatever the rank)."""
    from omegaconf import OmegaConf

    run = parse_run(spec)
    model, tokenizer = load_for_run(cfg, base_path, run["bits"])
    if run["method"] == "lora":
        lcfg = OmegaConf.merge(cfg.lora, {"r": run["r"], "alpha": 2 * run["r"], "targets": run["targets"]})
        model = add_adapter(model, lcfg)
    return model, tokenizer, run


def grown_embeddings(peft_model) -> bool:
    """Whether the base's embedding matrix has more rows than the base it was loaded from (ChatML's tokens)."""
    from transformers import AutoConfig

    base = peft_model.peft_config["default"].base_model_name_or_path
    return peft_model.get_input_embeddings().num_embeddings != AutoConfig.from_pretrained(base).vocab_size


def save_adapter(model, tokenizer, out_dir: str | Path) -> Path:
    """Save a LoRA adapter with its tokenizer. Where the base's embeddings were grown for ChatML's two tokens
    (lab 01's model), their new rows are random vectors the adapter was trained against, so the embedding
    matrix is saved with the adapter (PEFT would decide so too, with a warning): for lab 01's model that is
    477 x 128 numbers; a base that has the tokens (SmolLM2) saves the adapter alone."""
    out = Path(out_dir)
    model.save_pretrained(out, save_embedding_layers=grown_embeddings(model))
    tokenizer.save_pretrained(out)
    return out


def finetune(cfg, base_path: str | Path, train_examples: Sequence, eval_examples: Sequence, out_dir: str | Path,
             spec: str = "full", max_steps: int | None = None, score: bool = True) -> dict:
    """One run of ``lora.grid`` from start to finish -- load the base (quantized for QLoRA), add the adapter,
    SFT with TRL, score the held-out examples -- returning its numbers. LoRA adapters are saved to
    ``out_dir/adapter``. Module-level and self-contained, so :func:`lablib.methods.workers.isolated` can run it in a
    fresh process."""
    from transformers import set_seed

    from ..core import config, domain, generation, models
    from . import sft

    import datasets

    datasets.disable_progress_bars()  # in a worker process the kernel's settings do not apply
    steps = max_steps or parse_run(spec)["steps"] or cfg.lora.grid_steps
    cfg = config.with_changes(cfg, train={"max_steps": steps, "progress": False})
    set_seed(cfg.seed)
    model, tokenizer, run = prepare(cfg, base_path, spec)
    counts = models.count_params(model)
    trainer = sft.make_trainer(model, tokenizer, train_examples, eval_examples, cfg, out_dir)
    loss_before = trainer.evaluate()["eval_loss"] if score else None
    result = sft.fit(trainer)
    row = {"run": run["name"], "spec": spec, "trainable": counts["trainable"], "total": counts["total"],
           "steps": result["steps"], "seconds": result["seconds"], "tokens_per_s": result["tokens_per_s"]}
    if score:
        row.update(val_loss_before=loss_before, val_loss=trainer.evaluate()["eval_loss"])
    if score and domain.of(cfg).gold:  # code-checked answers (a domain without a gold checker has none)
        responses = generation.respond(model, tokenizer, eval_examples, cfg.sft.format, cfg.sft.max_new_tokens)
        scores = domain.of(cfg).answer_scores(eval_examples, responses)
        row.update(correct=scores["correct"], exact_match=scores["exact_match"], gold_reward=scores["gold_reward"])
    if run["method"] == "lora":
        save_adapter(model, tokenizer, Path(out_dir) / "adapter")
    return row


def run_grid(cfg, base_path, train_examples: Sequence, eval_examples: Sequence, out_dir: str | Path,
             echo=print) -> list:
    """Lab 03's comparison: every run of ``lora.grid`` on the same data and steps, each in a fresh process where
    ``lora.isolate`` (its peak memory is then its own, ``peak_mb``), one line each through ``echo``. A domain with
    a gold checker adds the share of right answers."""
    from . import workers

    rows = []
    for spec in cfg.lora.grid:
        out = Path(out_dir) / spec.replace(":", "_")
        if cfg.lora.isolate:
            row, peak = workers.isolated(finetune, cfg, base_path, train_examples, eval_examples, out, spec)
        else:
            row, peak = finetune(cfg, base_path, train_examples, eval_examples, out, spec), None
        rows.append({**row, "peak_mb": peak / 2**20 if peak else None})
        echo(f"{row['run']:>28}: {row['trainable']:>10,} trainable ({row['trainable'] / row['total']:.2%}), "
             + (f"correct {row['correct']:4.0%}, " if "correct" in row else "")
             + f"response loss {row['val_loss_before']:.2f} -> {row['val_loss']:.2f}, {row['seconds']:5.1f} s"
             + (f", peak {rows[-1]['peak_mb']:,.0f} MB" if peak else ""))
    return rows


ORIGIN = "origin.json"  # in a saved model's folder: which run it is and why it was chosen (lab 07 prints it)


def best(rows: Sequence[dict], quantized: bool) -> dict:
    """The LoRA (``quantized`` false) or QLoRA run of :func:`run_grid`'s ``rows`` with the lowest held-out response
    loss: the adapter lab 03 saves on purpose, not whichever came first in the grid."""
    runs = [r for r in rows if r["spec"].startswith("qlora" if quantized else "lora:")]
    if not runs:
        raise LoRAError(f"lora.grid has no {'qlora4|qlora8' if quantized else 'lora'}:R:TARGETS run to save")
    return min(runs, key=lambda r: r["val_loss"])


def write_origin(folder: str | Path, row: dict, why: str) -> None:
    """Record in a saved model's folder which run of lab 03 it is (:data:`ORIGIN`)."""
    import json

    Path(folder, ORIGIN).write_text(json.dumps({"run": row["run"], "spec": row["spec"], "why": why}) + "\n")


def adapter_dir(out_dir: str | Path, spec: str) -> Path:
    """Where :func:`run_grid` saved the adapter of the run ``spec`` (under its ``out_dir``)."""
    return Path(out_dir) / spec.replace(":", "_") / "adapter"


def load_adapter(cfg, base_path, adapter_dir):
    """Base + a saved adapter (the base's embeddings grown to the adapter's tokenizer first)."""
    from peft import PeftModel

    from ..core import models

    model, _ = models.load_pretrained(cfg.model, base_path)
    tokenizer = models.load_tokenizer(adapter_dir)
    if len(tokenizer) != model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return PeftModel.from_pretrained(model, str(adapter_dir)), tokenizer
