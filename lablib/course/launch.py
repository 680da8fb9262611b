"""The training stages as scripts, for several processes or GPUs::

    torchrun --nproc_per_node 2 -m lablib.course.launch 01 profile=smoke --out runs/ddp      # DDP, 2 CPU processes
    accelerate launch --config_file conf/accelerate/fsdp.yaml -m lablib.course.launch 02 profile=gpu --out runs/fsdp

A notebook runs in one process; a stage that needs several runs here instead, with the same config and
the same lablib calls as its lab. The Hugging Face Trainer reads the launcher's environment (``RANK``,
``WORLD_SIZE``, ...) and trains with DistributedDataParallel (gloo on CPU, NCCL on GPUs), or with FSDP or
DeepSpeed ZeRO when an accelerate config asks for them. Each rank shards the data, averages gradients with
the others, and so holds the same weights after every step.

Every rank writes ``OUT/rank<R>.json`` (world size, steps, losses, a hash of its weights); rank 0 also saves
the model to ``OUT/model``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

STAGES = {"01": "pretraining", "02": "sft"}


def weights_hash(model) -> str:
    """A hash of every parameter's bytes: equal on two ranks only if their weights are bit-identical."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def pretraining(cfg, out: Path):
    """Lab 01's pipeline: corpus, tokenizer, packed blocks, model, ``training.pretrain``."""
    from ..core import domain, evaluation, models, tokenization, training

    train_docs, val_docs = domain.corpus(cfg)
    if cfg.model.source == "scratch":  # deterministic: every rank trains the same tokenizer
        tokenizer = tokenization.train_bpe(train_docs, cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
        model = models.build_scratch(cfg.model, len(tokenizer), tokenizer)
    else:
        model, tokenizer = models.load_pretrained(cfg.model)
    eos = tokenizer.eos_token_id
    train_blocks = tokenization.pack(tokenization.encode_docs(tokenizer, train_docs), cfg.train.block_size, eos)
    val_blocks = tokenization.pack(tokenization.encode_docs(tokenizer, val_docs), cfg.train.block_size, eos)
    before = evaluation.lm_loss(model, val_blocks)
    result = training.pretrain(model, train_blocks, val_blocks, cfg.train, cfg.seed, out / "checkpoints")
    return model, tokenizer, result, {"val_loss_before": before, "val_loss": evaluation.lm_loss(model, val_blocks)}


def sft(cfg, out: Path):
    """Lab 02's pipeline: instruction data, the upstream model, ``sft.make_trainer`` and ``sft.fit``."""
    from ..core import domain, evaluation, models
    from ..methods import sft as sft_mod

    split = domain.instructions(cfg)
    train_ex, val_ex = split.train, split.val[: cfg.sft.eval_examples or None]
    model, tokenizer = models.load_pretrained(cfg.model, models.start_path(cfg))
    trainer = sft_mod.make_trainer(model, tokenizer, train_ex, val_ex, cfg, out / "checkpoints")
    result = sft_mod.fit(trainer)
    model = trainer.accelerator.unwrap_model(trainer.model)
    prompts = [sft_mod.prompt_text(e, cfg.sft.format, tokenizer) for e in val_ex]
    return model, tokenizer, result, {"nll": evaluation.response_nll(model, tokenizer, prompts,
                                                                     [e.output for e in val_ex])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lablib.course.launch", description=__doc__.split("\n\n")[0])
    ap.add_argument("lab", help=f"the stage: {', '.join(f'{k} ({v})' for k, v in STAGES.items())}")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, as for `lab run`")
    ap.add_argument("--out", required=True, help="folder for the per-rank results and the model")
    ap.add_argument("--runs", help="the runs folder holding upstream labs (default: ./runs)")
    args = ap.parse_args(argv)

    from ..core import config
    from . import running

    try:
        lab = running.find_lab(args.lab)
        if lab.id not in STAGES:
            raise running.RunError(f"lab {lab.id} ({lab.name}) has no multi-process stage; "
                                   f"these do: {', '.join(f'{k} ({v})' for k, v in STAGES.items())}")
        cfg = running.compose(lab, args.overrides, args.runs)
        for name, path in cfg.inputs.items():
            if not Path(path).exists():
                raise running.RunError(f"lab {lab.id} needs {name}: {path} does not exist "
                                       f"(run `lab run {lab.consumes[name].split('/')[0]} profile={cfg.profile}`)")
    except (running.RunError, config.ConfigError) as exc:
        print(f"lablib.course.launch: error: {exc}", file=sys.stderr)
        return 2

    from transformers import set_seed

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    model, tokenizer, result, scores = globals()[STAGES[lab.id]](cfg, out)
    row = {"rank": rank, "world_size": world, "steps": result["steps"],
           "tokens_per_rank": result["tokens"], "tokens": result["tokens"] * world,
           "seconds": result["seconds"], "tokens_per_s": result["tokens_per_s"] * world,
           "history": result["history"], **scores, "weights": weights_hash(model)}
    (out / f"rank{rank}.json").write_text(json.dumps(row, indent=2) + "\n")
    if rank == 0:
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
        print(f"lab {lab.id} on {world} process(es): {result['steps']} steps, {row['tokens']:,} tokens in "
              f"{result['seconds']:.1f} s ({row['tokens_per_s']:,.0f} tokens/s); " +
              ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
