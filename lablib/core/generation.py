"""Prompting and generation: the one place every lab turns a task into a prompt and a model into text.

* Prompt formats: ``alpaca`` (the Stanford Alpaca template, a plain prompt) and ``chatml`` (a conversation
  rendered with the ChatML template below, whose ``{% generation %}`` markers tell TRL which characters the
  assistant wrote). :func:`prompt_text` renders a task in either; :func:`stop_ids` says which tokens end a reply.
* Generation: :func:`complete` continues plain text one prompt at a time (lab 01's pretrained model);
  :func:`generate_batch` answers many prompts in left-padded batches, greedy or sampled from the model's full
  distribution (:func:`sampling`); :func:`respond` does that for tasks in a prompt format; :class:`Chat` talks.

A leaf module: it imports no other part of lablib but ``data``, so training (``sft``), metrics
(``evaluation``) and RL (``ppo``, ``rl_setting``, ``raft``) all build on it.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import List, Sequence

import torch

from .data import user_turn

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


# --------------------------------------------------------------------------------------------
# Prompt formats
# --------------------------------------------------------------------------------------------
def use_chatml(model, tokenizer) -> int:
    """Give ``tokenizer`` the ChatML template (adding its two special tokens if missing). Returns how many
    tokens were added; the model's embeddings (unless ``model`` is None) are resized to match (new rows start as
    the mean embedding)."""
    missing = [t for t in CHAT_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
        if model is not None:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    tokenizer.chat_template = CHATML
    return len(missing)


def chat_turn(example) -> dict:
    """The user's turn of a task, as a chat message."""
    return {"role": "user", "content": user_turn(example)}


def prompt_text(example, fmt: str, tokenizer) -> str:
    """What the model is given at generation time in format ``fmt`` (the response follows directly)."""
    if fmt == "alpaca":
        return example.prompt
    return tokenizer.apply_chat_template([chat_turn(example)], add_generation_prompt=True, tokenize=False)


def stop_ids(tokenizer) -> List[int]:
    """Token ids that end a response: EOS, and ``<|im_end|>`` when the vocabulary has it."""
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------
@contextmanager
def padding_side(tokenizer, side: str):
    """``tokenizer.padding_side`` set to ``side`` inside the block, restored after (left for generation: the
    new tokens follow every prompt directly; right for scoring)."""
    saved, tokenizer.padding_side = tokenizer.padding_side, side
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = saved


def sampling(temperature: float) -> dict:
    """``generate`` arguments: greedy at temperature 0, else plain sampling (no top-k / top-p truncation, so
    the samples follow the model's own distribution, as RL needs)."""
    if temperature <= 0:
        return dict(do_sample=False, temperature=None, top_k=None, top_p=None)
    return dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)


@torch.no_grad()
def complete(model, tokenizer, prompts, max_new_tokens: int = 40, do_sample: bool = False,
             temperature: float = 1.0, seed: int = 0) -> list:
    """Continuations (without the prompt) of plain-text prompts, one at a time; greedy by default, so
    deterministic."""
    model.eval()
    torch.manual_seed(seed)
    outs = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=do_sample,
                             temperature=temperature if do_sample else None, top_p=None, top_k=None,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        outs.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return outs


@torch.no_grad()
def generate_batch(model, tokenizer, prompts, max_new_tokens: int, stop_ids=None, batch_size: int = 32,
                   temperature: float = 0.0, streamer=None) -> list:
    """Continuations of ``prompts`` (text after the prompt, special tokens dropped), in left-padded batches --
    many times faster than one prompt at a time on a CPU. Greedy, or sampled from the full distribution at
    ``temperature`` > 0 (seed torch first for repeatable samples). A ``streamer`` (one prompt) gets the tokens as
    they come."""
    model.eval()
    stop_ids = list(stop_ids or [tokenizer.eos_token_id])
    outs = []
    with padding_side(tokenizer, "left"):
        for i in range(0, len(prompts), batch_size):
            enc = tokenizer(list(prompts[i:i + batch_size]), return_tensors="pt", padding=True,
                            add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, **sampling(temperature),
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=stop_ids,
                                 **({"streamer": streamer} if streamer else {}))
            outs += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return outs


def respond(model, tokenizer, examples: Sequence, fmt: str, max_new_tokens: int, batch_size: int = 32,
            temperature: float = 0.0) -> list:
    """Responses to ``examples`` in the prompt format ``fmt`` (batched, left-padded); greedy, or sampled at
    ``temperature`` > 0."""
    prompts = [prompt_text(e, fmt, tokenizer) for e in examples]
    return generate_batch(model, tokenizer, prompts, max_new_tokens, stop_ids(tokenizer), batch_size, temperature)


class Chat:
    """Talk to a chat model from a notebook: ``bot = Chat(model, tokenizer); bot.say("Sort 3, 1, 2.")``.

    Each ``say`` adds the user turn, generates the reply (greedy at ``temperature`` 0, else sampled) with the
    model's own chat template, keeps both in ``history`` and returns the reply; ``reset`` starts over."""

    def __init__(self, model, tokenizer, max_new_tokens: int = 64, temperature: float = 0.0, system: str = ""):
        if tokenizer.chat_template is None:
            raise ValueError("this tokenizer has no chat template: a pretrained (not instruction-tuned) model "
                             "continues text rather than chats -- use generation.complete")
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.temperature, self.system = max_new_tokens, temperature, system
        self.history: list = []

    def reset(self) -> None:
        self.history = []

    def say(self, message: str, on_text=None) -> str:
        """The reply to ``message``; ``on_text(piece)`` (if given) gets the reply's text as it is generated."""
        turns = ([{"role": "system", "content": self.system}] if self.system else []) + self.history
        turns = turns + [{"role": "user", "content": message}]
        prompt = self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        streamer = None
        if on_text is not None:
            from transformers import TextStreamer

            class Streamer(TextStreamer):
                def on_finalized_text(self, text: str, stream_end: bool = False):
                    on_text(text)

            streamer = Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        reply = generate_batch(self.model, self.tokenizer, [prompt], self.max_new_tokens, stop_ids(self.tokenizer),
                               temperature=self.temperature, streamer=streamer)[0].strip()
        self.history += [{"role": "user", "content": message}, {"role": "assistant", "content": reply}]
        return reply


# --------------------------------------------------------------------------------------------
# Decoding strategies, and what the KV cache buys
# --------------------------------------------------------------------------------------------
# name -> generate() arguments: the strategies lab 01 compares on its model
STRATEGIES = {
    "greedy": dict(do_sample=False),
    "greedy, repetition penalty 1.3": dict(do_sample=False, repetition_penalty=1.3),
    "temperature 0.7": dict(do_sample=True, temperature=0.7, top_k=0, top_p=1.0),
    "temperature 1.0": dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0),
    "temperature 1.0, top-p 0.9": dict(do_sample=True, temperature=1.0, top_k=0, top_p=0.9),
}


def repeated_share(ids: Sequence[int]) -> float:
    """The share of tokens that repeat the token just before them (",,,,": 1.0)."""
    return sum(a == b for a, b in zip(ids, ids[1:])) / max(1, len(ids) - 1)


def distinct(texts: Sequence[str], n: int = 2) -> float:
    """distinct-n: unique word n-grams over all n-grams of ``texts`` (Li et al. 2016); 1.0 = no n-gram twice."""
    grams = [tuple(w[i:i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


@torch.no_grad()
def compare_decoding(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, samples: int = 4,
                     seed: int = 0, strategies: dict = STRATEGIES) -> list:
    """One row per strategy: ``samples`` continuations of each plain-text prompt, their share of immediately
    repeated tokens, distinct-2 across all of them, and the first continuation of the first prompt."""
    model.eval()
    rows = []
    for name, kwargs in strategies.items():
        torch.manual_seed(seed)
        texts, repeats = [], []
        for prompt in prompts:
            enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            n = samples if kwargs.get("do_sample") else 1  # greedy gives one answer however often it is asked
            out = model.generate(**enc, max_new_tokens=max_new_tokens, num_return_sequences=n, **kwargs,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            for row in out[:, enc["input_ids"].shape[1]:].tolist():
                row = [t for t in row if t != tokenizer.pad_token_id]
                repeats.append(repeated_share(row))
                texts.append(tokenizer.decode(row, skip_special_tokens=True))
        rows.append({"strategy": name, "repeated": sum(repeats) / len(repeats), "distinct_2": distinct(texts),
                     "example": texts[0]})
    return rows


@torch.no_grad()
def kv_cache_speedup(model, tokenizer, prompt: str, new_tokens: int = 64, repeats: int = 3) -> dict:
    """Seconds to generate ``new_tokens`` greedily with the KV cache (each step feeds one new token and reuses
    the keys and values of the ones before) and without it (each step recomputes attention over the whole
    sequence), best of ``repeats``; the outputs must agree."""
    model.eval()
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    seconds, outs = {}, {}
    for cache in (True, False):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            outs[cache] = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                         use_cache=cache, pad_token_id=tokenizer.pad_token_id)
            best = min(best, time.perf_counter() - start)
        seconds[cache] = best
    return {"tokens": new_tokens, "with_cache_s": seconds[True], "without_cache_s": seconds[False],
            "speedup": seconds[False] / seconds[True], "same_output": bool(torch.equal(outs[True], outs[False]))}
