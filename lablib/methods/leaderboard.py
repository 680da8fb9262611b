"""The evaluation lab's leaderboard: every checkpoint the course produced, scored the same way.

A checkpoint is named in ``leaderboard.checkpoints`` as one of lab 07's inputs (``sft``, ``ppo`` ...), as
``smollm2`` (the off-the-shelf SmolLM2-135M-Instruct that ships with the kit), or as ``NAME=PATH`` (any
``save_pretrained`` folder). Every one gets the same prompts, reference responses and plain texts; models
with different tokenizers are compared on NLL summed per sample, never on per-token perplexity.
"""
from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import torch

from ..core import config, evaluation, generation, models

COLUMNS = ("rank", "checkpoint", "gold_reward", "exact_match", "rm", "judge", "win_rate", "win_rate_lc", "nll",
           "nll_per_token",
           "bits_per_byte", "text_nll", "text_nll_per_token", "response_tokens", "length", "tokens_per_s", "memory_mb",
           "params")


class EvalError(ValueError):
    """A checkpoint that cannot be evaluated, worded as one line naming the config entry."""


@dataclass
class Checkpoint:
    name: str
    path: str
    bits: int = 0  # 8: weights of the linear layers in 8-bit (bitsandbytes LLM.int8) for generation

    @property
    def label(self) -> str:
        return f"{self.name} (8-bit)" if self.bits else self.name


TEXT_SEED_OFFSET = 1000  # lab 07's plain texts are drawn with seed + this, a seed no lab trains on


def plain_texts(cfg) -> List[str]:
    """The numbers track's plain-text documents for the forgetting column (``text_nll``): ``leaderboard.text_docs``
    fresh documents from lab 01's generator, drawn with a seed no lab trains on (lab 05's PPO-ptx mixes in lab 01's
    own training documents, never these)."""
    from ..core import data

    return data.make_corpus(cfg.leaderboard.text_docs, seed=cfg.seed + TEXT_SEED_OFFSET)


def origin(checkpoint) -> str:
    """What a checkpoint is, where the lab that saved it said so (lab 03's adapters: which run, and why)."""
    import json

    from .lora import ORIGIN

    path = Path(checkpoint.path, ORIGIN)
    if not path.exists():
        return ""
    about = json.loads(path.read_text())
    return f"{about['run']} ({about['why']})"


def checkpoints(cfg, available: bool = False) -> List[Checkpoint]:
    """``cfg.leaderboard.checkpoints`` resolved to folders, plus an 8-bit twin of each name in
    ``leaderboard.int8``; every folder checked before any work starts. With ``available``, a course checkpoint that
    is not an input (its lab was skipped, e.g. the RL labs without preference pairs) is left out, not an error."""
    out, seen = [], set()
    for entry in cfg.leaderboard.checkpoints:
        name, sep, path = str(entry).partition("=")
        if available and not sep and name != "smollm2" and name not in cfg.inputs:
            continue
        where = f"leaderboard.checkpoints: {entry!r}"
        if sep:
            if not name or not path:
                raise EvalError(f"{where}: expected NAME=PATH")
        elif name == "smollm2":
            path = str(models.smollm2_dir())
        elif name in cfg.inputs:
            path = cfg.inputs[name]
        else:
            known = ", ".join(sorted(k for k in cfg.inputs if k != "reward_model"))
            raise EvalError(f"{where}: not an input of lab {cfg.lab} ({known}), smollm2, or NAME=PATH")
        if not Path(path, "config.json").exists():
            raise EvalError(f"{where}: {path} is not a saved model folder (no config.json)"
                            + ("" if Path(path).exists() else "; it does not exist"))
        if name in seen:
            raise EvalError(f"{where}: the name {name!r} appears twice")
        seen.add(name)
        out.append(Checkpoint(name, str(path)))
    if cfg.leaderboard.chat and cfg.leaderboard.chat not in seen:
        raise EvalError(f"leaderboard.chat: {cfg.leaderboard.chat!r} is not in leaderboard.checkpoints")
    for name in cfg.leaderboard.int8:
        if name not in seen:
            raise EvalError(f"leaderboard.int8: {name!r} is not in leaderboard.checkpoints")
        out.append(Checkpoint(name, find(out, name).path, bits=8))
    return out


def find(checkpoints: Sequence[Checkpoint], name: str) -> Checkpoint:
    """The full-precision checkpoint called ``name``."""
    return next(c for c in checkpoints if c.name == name and not c.bits)


def load(checkpoint: Checkpoint):
    """(model, tokenizer) for inference, in full precision or with bitsandbytes 8-bit linear layers."""
    from transformers import AutoModelForCausalLM

    from . import lora

    tokenizer = models.load_tokenizer(checkpoint.path)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # "inputs will be cast to float16", per matmul
    if not checkpoint.bits:
        return AutoModelForCausalLM.from_pretrained(checkpoint.path, dtype=torch.float32).eval(), tokenizer
    try:
        model = AutoModelForCausalLM.from_pretrained(
            checkpoint.path, quantization_config=lora.quantization_config(checkpoint.bits), device_map="cpu")
    except Exception as exc:  # bitsandbytes raises many kinds; all mean "cannot quantize here"
        raise EvalError(f"leaderboard.int8: {checkpoint.name}: bitsandbytes cannot load it in 8-bit "
                        f"({config.one_line(exc)})") from None
    return model.eval(), tokenizer


def chat_prompts(examples: Sequence, tokenizer, fmt: str = "chatml") -> List[str]:
    """The held-out prompts in the course's prompt format (``cfg.sft.format``), rendered once by ``tokenizer``
    (the SFT model's): every checkpoint then reads the very same characters, whatever its own tokenizer."""
    return [generation.prompt_text(e, fmt, tokenizer) for e in examples]


def score(checkpoint: Checkpoint, examples: Sequence, prompts: Sequence[str], texts: Sequence[str],
          reward_fns: Dict[str, Callable], max_new_tokens: int, batch_size: int, dom=None) -> dict:
    """One leaderboard row: greedy responses to ``prompts`` (at most ``max_new_tokens``, the domain's one answer
    length), scored by each of ``reward_fns`` (``{name: fn}``: the
    RM, a judge) and by the domain ``dom`` where code can check an answer (the gold reward, exact match); the NLL
    of the reference responses (summed per response, per token, and in bits per byte, which compares any
    tokenizers) and of plain ``texts`` (if any); the responses' mean length, generation speed and the weights'
    memory footprint. A metric the domain does not have is not in the row."""
    from ..core import domain

    dom = dom or domain.named("numbers")
    model, tokenizer = load(checkpoint)
    responses = generation.generate_batch(model, tokenizer, prompts, max_new_tokens, generation.stop_ids(tokenizer),
                                          batch_size=batch_size)
    speed = evaluation.generation_speed(model, tokenizer, prompts[:batch_size], max_new_tokens, repeats=3)
    nll = evaluation.response_nll(model, tokenizer, prompts, [e.output for e in examples], batch_size)
    lengths = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses]
    scores = {name: fn(examples, responses) for name, fn in reward_fns.items()}
    row = {"checkpoint": checkpoint.label, **dom.answer_scores(examples, responses),
           **{name: sum(v) / len(v) for name, v in scores.items()}, "scores": scores,
           "nll": nll["nll"], "nll_per_token": nll["nll_per_token"], "bits_per_byte": nll["bits_per_byte"],
           "response_tokens": nll["nll"] / nll["nll_per_token"] if nll["nll_per_token"] else 0.0,
           "length": sum(lengths) / len(responses), "lengths": lengths, "tokens_per_s": speed, "memory_mb": model.get_memory_footprint() / 2 ** 20,
           "params": models.count_params(model)["total"], "responses": responses}
    if texts:
        text = evaluation.text_nll(model, tokenizer, texts, batch_size)
        row.update(text_nll=text["nll"], text_nll_per_token=text["nll_per_token"])
    return row


def build(checkpoints: Sequence[Checkpoint], examples: Sequence, prompts: Sequence[str], texts: Sequence[str],
          reward_fns: Dict[str, Callable], cfg, progress: bool = True) -> List[dict]:
    """:func:`score` every checkpoint at the domain's one answer length (a progress bar across them); with a judge
    among ``reward_fns``, each row's win rate against the SFT row (:func:`lablib.evaluation.win_rate`: ``win`` holds
    its interval and its value at equal length); then :func:`rank` the rows the domain's way."""
    from tqdm.auto import tqdm

    from ..core import domain

    dom = domain.of(cfg)
    rows = [score(c, examples, prompts, texts, reward_fns, domain.answer_tokens(cfg), cfg.leaderboard.batch_size, dom)
            for c in tqdm(checkpoints, desc="checkpoints", disable=not progress)]
    if "judge" in reward_fns:
        base = next(r for r in rows if r["checkpoint"] == "sft")
        for r in rows:
            r["win"] = evaluation.win_rate(r["scores"]["judge"], base["scores"]["judge"], r["responses"],
                                           base["responses"], r["lengths"], base["lengths"])
            r["win_rate"], r["win_rate_lc"] = r["win"]["rate"], r["win"]["length_controlled"]
    return rank(rows, dom)


def pass_curve(checkpoint: Checkpoint, examples: Sequence, prompts: Sequence[str], samples: int, temperature: float,
               max_new_tokens: int, batch_size: int, seed: int) -> dict:
    """:func:`sampled_pass_curve` of a saved checkpoint."""
    model, tokenizer = load(checkpoint)
    return sampled_pass_curve(model, tokenizer, examples, prompts, samples, temperature, max_new_tokens, batch_size,
                              seed, checkpoint.label)


def sampled_pass_curve(model, tokenizer, examples: Sequence, prompts: Sequence[str], samples: int, temperature: float,
                       max_new_tokens: int, batch_size: int, seed: int, label: str) -> dict:
    """``samples`` answers to each prompt at ``temperature``, each checked (``correct``: the answer's first line is
    the reference); the unbiased pass@k for k = 1 ... ``samples`` (:func:`lablib.evaluation.pass_at_k`), and the
    share of prompts never answered right (no k reaches them)."""
    torch.manual_seed(seed)
    many = [p for p in prompts for _ in range(samples)]
    responses = generation.generate_batch(model, tokenizer, many, max_new_tokens, generation.stop_ids(tokenizer),
                                          batch_size=batch_size, temperature=temperature)
    outcomes = [[e.correct(r) for r in responses[i * samples:(i + 1) * samples]] for i, e in enumerate(examples)]
    return {"checkpoint": label, "samples": samples, "prompts": len(examples),
            "curve": evaluation.pass_at_k_curve(outcomes, range(1, samples + 1)),
            "never": sum(not any(o) for o in outcomes) / len(outcomes)}


def noise(rows: Sequence[dict]) -> str:
    """Which win rates against SFT this many prompts can tell from 50 %, and which differences between rows they can
    tell apart (non-overlapping 95 % Wilson intervals: a conservative test), as lines to print."""
    judged = [r for r in rows if "win" in r and r["checkpoint"] != "sft"]
    lines = [f"{r['checkpoint']:>12}: {evaluation.describe_win(r['win'])}" for r in judged]
    apart = [f"{a['checkpoint']} > {b['checkpoint']}" for a in judged for b in judged
             if a["win"]["interval"][0] > b["win"]["interval"][1]]
    lines.append("differences beyond the noise: " + (", ".join(apart) or "none (every pair of intervals overlaps)"))
    return "\n".join(lines)


def rank(rows: Sequence[dict], dom=None) -> List[dict]:
    """Rows best first, the domain's way (numbers: highest gold reward, then lowest response NLL; your files: the
    judge's win rate, then bits per byte), with a ``rank`` column (1 = best)."""
    from ..core import domain

    ordered = sorted(rows, key=(dom or domain.named("numbers")).rank_key)
    return [{**r, "rank": i} for i, r in enumerate(ordered, 1)]


def columns(rows: Sequence[dict]) -> List[str]:
    """The CSV's columns for ``rows``: :data:`COLUMNS` that the rows have (a metric a domain lacks is left out)."""
    return [c for c in COLUMNS if c in rows[0]] if rows else list(COLUMNS)


def to_csv(rows: Sequence[dict], names: Sequence[str] | None = None) -> str:
    """The leaderboard as CSV text (floats to 6 significant digits): ``names``, or the :func:`columns` of the rows."""
    names = list(names or columns(rows))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for r in rows:
        writer.writerow([f"{r[c]:.6g}" if isinstance(r[c], float) else r[c] for c in names])
    return buf.getvalue()


# What a table shows of a row, in this order, where the rows have it: (key, header, format).
SHOWN = (("gold_reward", "gold", "{:.2f}"), ("exact_match", "exact", "{:.0%}"), ("rm", "RM", "{:+.2f}"),
         ("judge", "judge", "{:+.2f}"), ("win_rate", "win vs SFT", "{:.0%}"),
         ("win_rate_lc", "at equal length", "{:.0%}"), ("nll", "NLL", "{:.2f}"),
         ("nll_per_token", "NLL/tok", "{:.3f}"), ("bits_per_byte", "bits/byte", "{:.3f}"),
         ("text_nll", "text NLL", "{:.1f}"), ("length", "length", "{:.1f}"), ("tokens_per_s", "tok/s", "{:.0f}"),
         ("memory_mb", "MB", "{:.1f}"))


def table(rows: Sequence[dict]) -> str:
    """The leaderboard as aligned text: the columns of :data:`SHOWN` that the rows have."""
    shown = [(k, h, f) for k, h, f in SHOWN if k in rows[0]]
    cells = [[f.format(r[k]) for k, _, f in shown] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h, _) in enumerate(shown)]
    lines = [f"{'#':>2} {'checkpoint':<15} " + " ".join(f"{h:>{w}}" for (_, h, _), w in zip(shown, widths))]
    for r, c in zip(rows, cells):
        lines.append(f"{r['rank']:>2} {r['checkpoint']:<15} " + " ".join(f"{x:>{w}}" for x, w in zip(c, widths)))
    return "\n".join(lines)


def quantization_cost(rows: Sequence[dict]) -> List[dict]:
    """For each 8-bit row, what 8 bits cost and saved against the same checkpoint in full precision."""
    by_label = {r["checkpoint"]: r for r in rows}
    out = []
    for r in rows:
        if r["checkpoint"].endswith(" (8-bit)"):
            full = by_label[r["checkpoint"][: -len(" (8-bit)")]]
            out.append({"checkpoint": full["checkpoint"], "gold_change": r["gold_reward"] - full["gold_reward"],
                        "nll_change": r["nll"] - full["nll"], "text_nll_change": r["text_nll"] - full["text_nll"],
                        "memory_ratio": r["memory_mb"] / full["memory_mb"],
                        "speed_ratio": r["tokens_per_s"] / full["tokens_per_s"],
                        "same_responses": sum(a == b for a, b in zip(r["responses"], full["responses"]))
                        / len(r["responses"])})
    return out


def finite(rows: Sequence[dict]) -> bool:
    """Every number in the table is finite (a NaN would mean a broken checkpoint, not a bad one)."""
    return all(math.isfinite(r[c]) for r in rows for c in columns(rows) if isinstance(r[c], float))
