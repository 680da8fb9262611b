"""Supervised fine-tuning (instruction tuning) with TRL's ``SFTTrainer``.

Two prompt formats, one idea: the model sees prompt + response, but the loss counts the response only.

* ``alpaca``: the Stanford Alpaca template as a *prompt/completion* pair; TRL's ``completion_only_loss``
  masks the prompt tokens.
* ``chatml``: a *conversation* rendered with the ChatML template below. Its ``{% generation %}`` markers
  tell the tokenizer which characters the assistant wrote, so TRL's ``assistant_only_loss`` can mask
  everything else. (A tokenizer that lacks ``<|im_start|>``/``<|im_end|>`` gets them added, and the model's
  embedding matrix grows to match.)
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import List, Sequence

import torch
from datasets import Dataset
from transformers import PrinterCallback

from . import training
from .data import user_turn  # noqa: F401 (sft.user_turn: the prompt side of every chat format)

CHATML = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]
FORMATS = ("alpaca", "chatml")


class SFTError(ValueError):
    """Bad SFT input, worded as one line naming the config key at fault."""


def use_chatml(model, tokenizer) -> int:
    """Give ``tokenizer`` the ChatML template (adding its two special tokens if missing). Returns how many
    tokens were added; the model's embeddings are resized to match (new rows start as the mean embedding)."""
    missing = [t for t in CHAT_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    tokenizer.chat_template = CHATML
    return len(missing)


def prompt_text(example, fmt: str, tokenizer) -> str:
    """What the model is given at generation time (the response follows directly)."""
    if fmt == "alpaca":
        return example.prompt
    return tokenizer.apply_chat_template([{"role": "user", "content": user_turn(example)}],
                                         add_generation_prompt=True, tokenize=False)


def stop_ids(tokenizer) -> List[int]:
    """Token ids that end a response: EOS, and ``<|im_end|>`` when the vocabulary has it."""
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


def to_dataset(examples: Sequence, fmt: str) -> Dataset:
    """TRL's dataset types: prompt/completion (``alpaca``) or conversational ``messages`` (``chatml``)."""
    if fmt == "alpaca":
        return Dataset.from_list([{"prompt": e.prompt, "completion": e.output} for e in examples])
    return Dataset.from_list([{"messages": [{"role": "user", "content": user_turn(e)},
                                            {"role": "assistant", "content": e.output}]} for e in examples])


def check(sft_cfg, tokenizer, examples: Sequence, where: str = "training") -> None:
    """Fail fast, before the trainer is built, on input it would mangle."""
    if sft_cfg.format not in FORMATS:
        raise SFTError(f"sft.format={sft_cfg.format!r}: must be one of {', '.join(FORMATS)}")
    if not examples:
        raise SFTError(f"the {where} split is empty (data.n_tasks / data.val_fraction or the data file)")
    lengths = [len(tokenizer(prompt_text(e, sft_cfg.format, tokenizer), add_special_tokens=False)["input_ids"])
               for e in examples]
    fits = sum(n < sft_cfg.max_length for n in lengths)
    if fits == 0:
        raise SFTError(f"sft.max_length={sft_cfg.max_length}: every {where} prompt is longer "
                       f"(shortest {min(lengths)} tokens), so no response token would be trained on")


def make_trainer(model, tokenizer, train_examples: Sequence, val_examples: Sequence, cfg, out_dir: str | Path):
    """An ``SFTTrainer`` with response-only loss, configured from ``cfg.train`` and ``cfg.sft``."""
    from trl import SFTTrainer

    if cfg.sft.format not in FORMATS:
        raise SFTError(f"sft.format={cfg.sft.format!r}: must be one of {', '.join(FORMATS)}")
    if cfg.sft.format == "chatml":
        use_chatml(model, tokenizer)
    check(cfg.sft, tokenizer, train_examples)
    check(cfg.sft, tokenizer, val_examples, "held-out")
    with warnings.catch_warnings():  # TRL passes the deprecated name `gradient_checkpointing` on
        warnings.simplefilter("ignore", FutureWarning)
        args = _sft_config(cfg, out_dir)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=to_dataset(train_examples, cfg.sft.format),
                         eval_dataset=to_dataset(val_examples[: cfg.train.eval_blocks], cfg.sft.format))
    if not cfg.train.progress:
        trainer.remove_callback(PrinterCallback)
    return trainer


def _sft_config(cfg, out_dir):
    from trl import SFTConfig

    return SFTConfig(
        **training.training_kwargs(cfg.train, cfg.seed, out_dir), max_length=cfg.sft.max_length,
        packing=cfg.sft.packing, packing_strategy="bfd_split",
        completion_only_loss=cfg.sft.format == "alpaca", assistant_only_loss=cfg.sft.format == "chatml",
        gradient_checkpointing=False, include_num_input_tokens_seen="non_padding",
    )


def train(trainer, resume: bool = True) -> dict:
    """Run the trainer (from its newest checkpoint, if a killed run left one and ``resume``); loss history,
    steps, real (non-padding) tokens seen, tokens/s and the step it resumed from."""
    start = time.perf_counter()
    resumed_from = training.run(trainer, resume)
    seconds = time.perf_counter() - start
    tokens = int(trainer.state.num_input_tokens_seen)
    trainer.model.eval()
    return {"history": training.history(trainer), "steps": trainer.state.global_step, "tokens": tokens,
            "seconds": seconds, "tokens_per_s": tokens / seconds, "resumed_from": resumed_from}


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


@torch.no_grad()
def respond(model, tokenizer, examples: Sequence, fmt: str, max_new_tokens: int, batch_size: int = 32,
            temperature: float = 0.0) -> list:
    """Responses to ``examples`` in the given prompt format (batched, left-padded); greedy, or sampled at
    ``temperature`` > 0."""
    from . import evaluation

    prompts = [prompt_text(e, fmt, tokenizer) for e in examples]
    return evaluation.generate_batch(model, tokenizer, prompts, max_new_tokens, stop_ids(tokenizer), batch_size,
                                     temperature)


def packing_speed(model, tokenizer, train_examples: Sequence, val_examples: Sequence, cfg, out_dir) -> dict:
    """Real (non-padding) tokens/s for ``cfg.sft.compare_packing_steps`` steps without and with packing,
    each on a fresh copy of ``model`` (the model itself is not trained)."""
    import copy

    from .config import with_changes

    speed = {}
    for packed in (False, True):
        c = with_changes(cfg, sft={"packing": packed}, train={"max_steps": cfg.sft.compare_packing_steps,
                                                              "eval_every": 10 ** 6, "progress": False})
        trainer = make_trainer(copy.deepcopy(model), tokenizer, train_examples, val_examples, c,
                               Path(out_dir) / ("packed" if packed else "padded"))
        speed["packed" if packed else "padded"] = train(trainer)["tokens_per_s"]
    return speed
