"""Memory: how much a fine-tuning method needs, predicted by rule and measured.

Rules of thumb (bytes per parameter), computed from a model's own parameter counts:

* full fine-tuning, fp32 AdamW: 4 (weights) + 4 (gradients) + 8 (two Adam moments) = 16
* full fine-tuning, mixed-precision AdamW, the StackLLaMA rule: (2 + 8) -- bf16 weights plus fp32 Adam
  moments (it leaves out gradients and activations, so it is a floor)
* LoRA: the frozen base at its storage width, plus 16 bytes per *adapter* parameter
* QLoRA: the base's linear layers in 8 bits (1 byte) or 4-bit NF4 (0.5 byte + quantisation constants),
  everything else in bf16, plus the adapters -- StackLLaMA's "1.2-1.4 GB per billion parameters" for 8-bit

Measured: each run trains in a fresh worker process (a fork server that has already imported the stack), so
its peak resident memory (``VmHWM``) is its own and not inflated by earlier runs in the notebook.
"""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import torch

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
        "full mixed (2+8)": 10 * n,
        "LoRA fp32": 4 * n + 16 * lora,
        "LoRA bf16": 2 * n + 16 * lora,
        "QLoRA 8-bit": 1 * counts["linear"] + 2 * counts["other"] + 16 * lora,
        # NF4 with double quantisation: 4 bits + ~0.127 bits of constants per weight
        "QLoRA 4-bit": (4.127 / 8) * counts["linear"] + 2 * counts["other"] + 16 * lora,
    }
    if method not in rules:
        raise ValueError(f"unknown method {method!r}; known: {sorted(rules)}")
    return float(rules[method])


METHODS = ("full fp32", "full mixed (2+8)", "LoRA fp32", "LoRA bf16", "QLoRA 8-bit", "QLoRA 4-bit")


def llama_7b_counts() -> dict:
    """Parameter groups of a Llama-2-7B-shaped model, built on the meta device (no memory used)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False)
    with torch.device("meta"):
        return param_groups(LlamaForCausalLM(config))


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _measured_call(fn, args, kwargs):
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current size
    except OSError:
        pass
    start = _status("VmRSS")
    result = fn(*args, **kwargs)
    return result, _status("VmHWM") - start


def isolated(fn, *args, preload=("lablib.methods.lora",), **kwargs):
    """``(fn(*args, **kwargs), peak bytes above the worker's starting size)``, run in a fresh worker process
    forked from a server that has already imported ``preload``. ``fn`` must be importable (module-level)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_measured_call, (fn, args, kwargs))


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
