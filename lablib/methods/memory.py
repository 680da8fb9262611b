"""Memory: how much a fine-tuning method needs, predicted by rule and measured.

Rules of thumb (bytes per parameter), computed from a model's own parameter counts; activations come on top:

* full fine-tuning, fp32 AdamW: 4 (weights) + 4 (gradients) + 8 (two Adam moments) = 16
* full fine-tuning, mixed-precision AdamW: 2 (bf16 weights) + 2 (bf16 gradients) + 4 (fp32 master weights)
  + 8 (fp32 moments) = 16 as well (ZeRO, Rajbhandari et al. 2020): mixed precision saves activations and time,
  not optimizer memory. StackLLaMA's "(2 + 8) bytes" leaves out the gradients and the master copy: a floor.
* LoRA: the frozen base at its storage width, plus 16 bytes per *adapter* parameter
* LLM.int8 + LoRA ("8-bit"): the base's linear layers in 1 byte; QLoRA: in 4-bit NF4 with double quantisation
  (0.5 byte + about 0.127 bits of constants). Everything else (embeddings, norms) is kept in fp32 by PEFT's
  ``prepare_model_for_kbit_training``, so it costs 4 bytes, and the adapters 16 bytes each.

Measured (:func:`train_peak`): each run trains in a fresh worker process forked from a server that has already
imported the stack. Its *baseline* is the worker's resident memory once the libraries are imported, before any
model; the run's peak (``VmHWM``) is reported above that baseline, so it is the model's and the training's own,
not the Python runtime's and not an earlier run's. The worker's C allocator is steadied first
(:func:`lablib.methods.workers.steady_allocator`), so that the peak is live data, not which arena kept what.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .workers import isolated, release_freed, reset_peak, rss_field, steady_allocator

GB = 1024 ** 3


def param_groups(model) -> dict:
    """Parameter counts: ``linear`` (the decoder's weight matrices, what quantisation shrinks),
    ``other`` (embeddings, norms, biases) and ``lora`` (adapter weights); tied weights counted once."""
    seen, counts = set(), {"linear": 0, "other": 0, "lora": 0}
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{module_name}.{name}"
            if "lora_" in full:
                counts["lora"] += p.numel()
            elif name == "weight" and isinstance(module, torch.nn.Linear) and "lm_head" not in module_name:
                counts["linear"] += p.numel()
            else:
                counts["other"] += p.numel()
    return counts


def predict(counts: dict, method: str, lora_params: int = 0) -> float:
    """Predicted bytes for weights + gradients + optimizer state (activations not included)."""
    n = counts["linear"] + counts["other"]
    lora = lora_params or counts.get("lora", 0)
    rules = {
        "full fp32": 16 * n,
        "full mixed": 16 * n,  # bf16 weights and gradients, fp32 master weights and moments
        "LoRA fp32": 4 * n + 16 * lora,
        "LoRA bf16": 2 * n + 16 * lora,
        "QLoRA 8-bit": 1 * counts["linear"] + 4 * counts["other"] + 16 * lora,
        # NF4 with double quantisation: 4 bits + ~0.127 bits of constants per weight
        "QLoRA 4-bit": (4.127 / 8) * counts["linear"] + 4 * counts["other"] + 16 * lora,
    }
    if method not in rules:
        raise ValueError(f"unknown method {method!r}; known: {sorted(rules)}")
    return float(rules[method])


METHODS = ("full fp32", "full mixed", "LoRA fp32", "LoRA bf16", "QLoRA 8-bit", "QLoRA 4-bit")


def llama_7b_counts() -> dict:
    """Parameter groups of a Llama-2-7B-shaped model, built on the meta device (no memory used)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False)
    with torch.device("meta"):
        return param_groups(LlamaForCausalLM(config))


# The runs of the memory lesson, largest predicted memory first, with the rule each is predicted by.
RUNS = {"full": "full fp32", "lora:16:all-linear": "LoRA fp32", "qlora8:16:all-linear": "QLoRA 8-bit",
        "qlora4:16:all-linear": "QLoRA 4-bit"}


def train_peak(cfg, base_path, examples: Sequence, spec: str, out_dir) -> dict:
    """One run of the memory lesson, meant for :func:`isolated`: ``memory.steps`` steps of ``spec`` (an entry of
    ``lora.grid``) at batch ``memory.batch_size``. Returns the worker's ``baseline_gb`` (resident memory with the
    libraries imported, before any model), and above it the model's resident ``weights_gb`` once loaded and the
    ``peak_gb`` while training. Loading is not part of the peak: a quantized load reads the full-width file
    first, which is a cost of loading, not of training."""
    import datasets
    import peft  # noqa: F401  (imported before the baseline: the libraries are the runtime, not the run)
    import trl  # noqa: F401
    from transformers import set_seed

    from ..core import config
    from . import lora, sft

    datasets.disable_progress_bars()
    cfg = config.with_changes(cfg, train={"max_steps": cfg.memory.steps, "batch_size": cfg.memory.batch_size,
                                          "progress": False, "eval_every": 10 ** 6})
    set_seed(cfg.seed)
    if lora.parse_run(spec)["bits"]:
        import bitsandbytes.nn  # noqa: F401 -- loads it now (lablib defers it), not inside the measurement
    steady_allocator()
    release_freed()
    baseline = rss_field("VmRSS")
    model, tokenizer, run = lora.prepare(cfg, base_path, spec)
    trainer = sft.make_trainer(model, tokenizer, examples, examples[:1], cfg, out_dir)
    release_freed()
    weights = rss_field("VmRSS")
    reset_peak()
    sft.fit(trainer, resume=False)
    return {"run": run["name"], "spec": spec, "baseline_gb": baseline / GB, "weights_gb": (weights - baseline) / GB,
            "peak_gb": (rss_field("VmHWM") - baseline) / GB, "adapter_params": param_groups(model)["lora"]}


def lesson(cfg, examples: Sequence, out_dir) -> list:
    """Lab 03's measured memory: every run of :data:`RUNS` on SmolLM2-135M (``memory.model``), each by
    :func:`train_peak` in its own process, with the prediction of its rule (:func:`predict`, from the model's
    parameter counts) beside it. (A smaller model does not show the lesson: below about 100 M parameters the
    difference between 8 and 4 bits is inside the allocator's noise.)"""
    from ..core import models

    out_dir = Path(out_dir)
    path = models.smollm2_dir()
    counts = counts_for(path)
    rows = []
    for spec, rule in RUNS.items():
        row = isolated(train_peak, cfg, str(path), examples, spec, out_dir / spec.replace(":", "_"))[0]
        rows.append({**row, "rule": rule, "predicted_gb": predict(counts, rule, row["adapter_params"]) / GB})
    return rows


# What a training peak cannot resolve between machines: with the steady allocator a peak repeats to a few MiB on
# one machine, but kernels differ between CPUs (bitsandbytes' int8 matmul takes torch._int_mm only with AVX-512;
# CI's CPU saw lab 03's 4-bit peak 0.02 GiB above 8-bit's, before the allocator was steadied). A saving the
# rules predict below this is checked on the loaded weights instead.
NOISE_GB = 0.1


def check_order(rows: Sequence[dict], share: float = 0.5, noise_gb: float = NOISE_GB) -> list:
    """The memory lesson, checked: each run (``rows`` in :data:`RUNS` order) needs less than the one before it by at
    least ``share`` of what the rules predict it saves. The saving, not a ratio, is what the rules predict. Where
    the predicted saving is at least ``noise_gb`` the training peaks are compared; below it (4-bit over 8-bit on
    a small model: a few tens of MiB, inside a peak's run-to-run spread) the resident weights once loaded, which
    the same rules predict and which do not move between runs. Returns one line per pair saying what was
    compared; raises with one line naming the pair that broke it."""
    lines = []
    for bigger, smaller in zip(rows, rows[1:]):
        predicted = bigger["predicted_gb"] - smaller["predicted_gb"]
        key, what = ("peak_gb", "peaked at") if predicted >= noise_gb else ("weights_gb", "holds its weights in")
        saved = bigger[key] - smaller[key]
        said = (f"{smaller['run']} {what} {smaller[key]:.3f} GiB, {saved:.3f} GiB below {bigger['run']} "
                f"({bigger[key]:.3f} GiB); the rules predict it saves {predicted:.3f} GiB")
        if not (saved > 0 and saved >= share * predicted):
            raise AssertionError(f"{said}, and at least {share:.0%} of that was expected")
        lines.append(said)
    return lines


def counts_for(path) -> dict:
    """Parameter groups of the model saved at ``path``, from its config alone (built on the meta device)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return param_groups(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(path))))


def prediction_table(models: dict, lora_fraction: float = 0.01) -> list:
    """Predicted GB per method for each ``{name: param_groups}``; adapters taken as ``lora_fraction`` of the
    parameters (r=16 on all linear layers is about 1 %)."""
    rows = []
    for method in METHODS:
        row = {"method": method}
        for name, counts in models.items():
            lora = int(lora_fraction * (counts["linear"] + counts["other"])) if "LoRA" in method else 0
            row[name] = predict(counts, method, lora) / GB
        rows.append(row)
    return rows
