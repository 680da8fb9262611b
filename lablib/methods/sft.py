"""Supervised fine-tuning (instruction tuning) with TRL's ``SFTTrainer``.

Two prompt formats (``lablib.generation``), one idea: the model sees prompt + response, but the loss counts
the response only.

* ``alpaca``: the Stanford Alpaca template as a *prompt/completion* pair; TRL's ``completion_only_loss``
  masks the prompt tokens.
* ``chatml``: a *conversation* rendered with the ChatML template. Its ``{% generation %}`` markers tell the
  tokenizer which characters the assistant wrote, so TRL's ``assistant_only_loss`` can mask everything else.
  (A tokenizer that lacks ``<|im_start|>``/``<|im_end|>`` gets them added, and the model's embedding matrix
  grows to match.)
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

from datasets import Dataset

from ..core import training
from ..core.data import user_turn
from ..core.generation import FORMATS, chat_turn, prompt_text, use_chatml


class SFTError(ValueError):
    """Bad SFT input, worded as one line naming the config key at fault."""


def to_dataset(examples: Sequence, fmt: str) -> Dataset:
    """TRL's dataset types: prompt/completion (``alpaca``) or conversational ``messages`` (``chatml``); the
    response is each example's demonstration (``e.response``)."""
    if fmt == "alpaca":
        return Dataset.from_list([{"prompt": e.prompt, "completion": e.response} for e in examples])
    return Dataset.from_list([{"messages": [chat_turn(e), {"role": "assistant", "content": e.response}]}
                              for e in examples])


def check(sft_cfg, tokenizer, examples: Sequence, where: str = "training") -> None:
    """Fail fast, before the trainer is built, on input it would mangle."""
    if sft_cfg.format not in FORMATS:
        raise SFTError(f"sft.format={sft_cfg.format!r}: must be one of {', '.join(FORMATS)}")
    if not examples:
        raise SFTError(f"the {where} split is empty (domain.split / data.val_fraction or the data file)")
    lengths = [len(tokenizer(prompt_text(e, sft_cfg.format, tokenizer), add_special_tokens=False)["input_ids"])
               for e in examples]
    fits = sum(n < sft_cfg.max_length for n in lengths)
    if fits == 0:
        raise SFTError(f"sft.max_length={sft_cfg.max_length}: every {where} prompt is longer "
                       f"(shortest {min(lengths)} tokens), so no response token would be trained on")


def fit_length(examples: Sequence, tokenizer, fmt: str, max_length: int) -> Tuple[list, dict]:
    """The examples SFT can train on within ``max_length`` tokens, and what happens to the rest: ``truncated``
    (prompt and response together are longer: the response's end is cut, TRL's truncation) and ``dropped`` (the
    prompt alone fills the length: no response token would be trained on). Real answers are long; the lab prints
    these counts instead of failing."""
    end = "<|im_end|>" if fmt == "chatml" else (tokenizer.eos_token or "")

    def n_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    prompts = [n_tokens(prompt_text(e, fmt, tokenizer)) for e in examples]
    totals = [n + n_tokens(e.response + end) for n, e in zip(prompts, examples)]
    kept = [e for e, n in zip(examples, prompts) if n < max_length]
    return kept, {"examples": len(examples), "kept": len(kept), "dropped": len(examples) - len(kept),
                  "truncated": sum(p < max_length < t for p, t in zip(prompts, totals)),
                  "longest": max(totals, default=0)}


def make_trainer(model, tokenizer, train_examples: Sequence, val_examples: Sequence, cfg, out_dir: str | Path):
    """An ``SFTTrainer`` with response-only loss, configured from ``cfg.train`` and ``cfg.sft``."""
    from trl import SFTConfig, SFTTrainer

    if cfg.sft.format not in FORMATS:
        raise SFTError(f"sft.format={cfg.sft.format!r}: must be one of {', '.join(FORMATS)}")
    if cfg.sft.format == "chatml":
        use_chatml(model, tokenizer)
    check(cfg.sft, tokenizer, train_examples)
    check(cfg.sft, tokenizer, val_examples, "held-out")
    return training.build(SFTTrainer, SFTConfig, cfg.train, cfg.seed, out_dir, args=dict(
        max_length=cfg.sft.max_length, packing=cfg.sft.packing, packing_strategy="bfd_split",
        completion_only_loss=cfg.sft.format == "alpaca", assistant_only_loss=cfg.sft.format == "chatml",
        gradient_checkpointing=False, include_num_input_tokens_seen="non_padding"),
        model=model, processing_class=tokenizer, train_dataset=to_dataset(train_examples, cfg.sft.format),
        eval_dataset=to_dataset(val_examples[: cfg.train.eval_items], cfg.sft.format))


def fit(trainer, resume: bool = True) -> dict:
    """:func:`lablib.training.fit` counting the real (non-padding) tokens SFT trained on; resumes from the newest
    checkpoint a killed run left, unless ``resume`` is false."""
    return training.fit(trainer, resume, tokens=lambda t: t.state.num_input_tokens_seen)


def show_labels(row: dict, tokenizer, tail: int = 14) -> str:
    """One training example as the loss sees it: the masked part (label -100, no loss) and the trained part,
    then the last ``tail`` positions token by token."""
    ids, labels = list(row["input_ids"]), list(row["labels"])
    masked = [i for i, lab in zip(ids, labels) if lab == -100]
    trained = [i for i, lab in zip(ids, labels) if lab != -100]
    lines = [f"{len(ids)} tokens: {len(masked)} masked (label -100, no loss), {len(trained)} trained on",
             f"masked : {tokenizer.decode(masked)!r}", f"trained: {tokenizer.decode(trained)!r}",
             f"{'position':>8}  {'token':<16} label"]
    for pos in range(max(0, len(ids) - tail), len(ids)):
        label = "-100" if labels[pos] == -100 else str(labels[pos])
        lines.append(f"{pos:>8}  {tokenizer.decode([ids[pos]])!r:<16} {label}")
    return "\n".join(lines)


def conversation(examples: Sequence, system: str = "") -> List[dict]:
    """A multi-turn chat made of ``examples``, one user turn and one assistant answer each, after an optional
    system prompt."""
    turns = [{"role": "system", "content": system}] if system else []
    for e in examples:
        turns += [{"role": "user", "content": user_turn(e)}, {"role": "assistant", "content": e.output}]
    return turns


def conversation_labels(tokenizer, messages: Sequence[dict]) -> Tuple[list, list]:
    """(ids, labels) of a whole conversation as assistant-only training sees it (TRL's ``assistant_only_loss``):
    the chat template marks the assistant's text with ``{% generation %}``, the tokenizer returns that mask, and
    every other token -- system prompt, user turns, each turn's header -- gets label -100."""
    out = tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    ids = list(out["input_ids"])
    return ids, [i if m else -100 for i, m in zip(ids, out["assistant_masks"])]


def show_conversation(tokenizer, messages: Sequence[dict]) -> str:
    """The conversation's tokens in runs of the same fate (masked or trained), each run with its text."""
    ids, labels = conversation_labels(tokenizer, messages)
    runs, start = [], 0
    for pos in range(1, len(ids) + 1):
        if pos == len(ids) or (labels[pos] == -100) != (labels[start] == -100):
            runs.append((labels[start] == -100, ids[start:pos]))
            start = pos
    lines = [f"{len(ids)} tokens in {len(messages)} messages: {sum(lab != -100 for lab in labels)} trained on"]
    lines += [f"{'masked ' if masked else 'TRAINED'} {len(part):>3} tokens  {tokenizer.decode(part)!r}" for masked, part in runs]
    return "\n".join(lines)


def packing_speed(model, tokenizer, train_examples: Sequence, val_examples: Sequence, cfg, out_dir) -> dict:
    """Real (non-padding) tokens/s for ``cfg.sft.compare_packing_steps`` steps without and with packing,
    each on a fresh copy of ``model`` (the model itself is not trained)."""
    import copy

    from ..core.config import with_changes

    speed = {}
    for packed in (False, True):
        c = with_changes(cfg, sft={"packing": packed}, train={"max_steps": cfg.sft.compare_packing_steps,
                                                              "eval_every": 10 ** 6, "progress": False})
        trainer = make_trainer(copy.deepcopy(model), tokenizer, train_examples, val_examples, c,
                               Path(out_dir) / ("packed" if packed else "padded"))
        speed["packed" if packed else "padded"] = fit(trainer)["tokens_per_s"]
    return speed
