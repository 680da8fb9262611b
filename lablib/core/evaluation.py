"""Evaluation: language-model loss and perplexity and the unigram baseline they must beat; NLL benchmarks that
compare models with different tokenizers; generation speed, task scores and diversity; win rates with their
intervals and at equal length. (Generating the text that is scored is ``lablib.generation``'s job.)"""
from __future__ import annotations

import math
import statistics
import time
from typing import Dict, Sequence

import torch

from .generation import padding_side, sampling


@torch.no_grad()
def lm_loss(model, blocks: torch.Tensor, batch_size: int = 16) -> float:
    """Mean next-token negative log-likelihood (nats/token) over every target of ``blocks``."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        x = blocks[i:i + batch_size]
        logits = model(input_ids=x).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1),
                                                reduction="sum")
        total += nll.item()
        count += x[:, 1:].numel()
    return total / count


def perplexity(loss: float) -> float:
    return math.exp(loss)


def unigram_loss(train_blocks: torch.Tensor, val_blocks: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy on the validation targets of a unigram model fit on the train tokens (add-one smoothed).

    A model that ignores context can do no better; a language model must go clearly below it.
    """
    counts = torch.bincount(train_blocks.reshape(-1), minlength=vocab_size).double() + 1.0
    logp = torch.log(counts / counts.sum())
    return float(-logp[val_blocks[:, 1:].reshape(-1)].mean())


@torch.no_grad()
def generation_speed(model, tokenizer, prompts, new_tokens: int, repeats: int = 2) -> float:
    """Generated tokens per second for one batch of ``prompts``, every row forced to ``new_tokens`` (so models
    that stop early and models that ramble are timed on the same work); best of ``repeats`` after a warm-up."""
    model.eval()
    with padding_side(tokenizer, "left"):
        enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    kwargs = dict(**enc, **sampling(0.0), pad_token_id=tokenizer.pad_token_id)
    model.generate(**kwargs, max_new_tokens=2, min_new_tokens=2)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.generate(**kwargs, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        best = min(best, time.perf_counter() - start)
    return len(prompts) * new_tokens / best


@torch.no_grad()
def response_nll(model, tokenizer, prompts, responses, batch_size: int = 16) -> dict:
    """Negative log-likelihood of each reference response given its prompt (response tokens only).

    Returns the NLL summed per sample and averaged over samples (``nll``), per response token
    (``nll_per_token``) and in bits per UTF-8 byte of the responses (``bits_per_byte``). Per-sample sums and bits
    per byte compare models with different tokenizers; per-token values do not.
    """
    model.eval()
    total, tokens, per_sample = 0.0, 0, []
    for i in range(0, len(prompts), batch_size):
        rows = []
        for p, r in zip(prompts[i:i + batch_size], responses[i:i + batch_size]):
            p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
            r_ids = tokenizer(r, add_special_tokens=False)["input_ids"]
            rows.append((p_ids + r_ids, len(p_ids)))
        width = max(len(ids) for ids, _ in rows)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        x = torch.full((len(rows), width), pad)
        mask = torch.zeros_like(x)
        target = torch.full_like(x, -100)
        for j, (ids, n_prompt) in enumerate(rows):
            x[j, :len(ids)] = torch.tensor(ids)
            mask[j, :len(ids)] = 1
            target[j, n_prompt:len(ids)] = x[j, n_prompt:len(ids)]
        logits = model(input_ids=x, attention_mask=mask).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target[:, 1:], reduction="none",
                                                ignore_index=-100).sum(1)
        per_sample += nll.tolist()
        tokens += int((target[:, 1:] != -100).sum())
    total = sum(per_sample)
    n_bytes = sum(len(r.encode("utf-8")) for r in responses)
    return {"nll": total / len(per_sample), "nll_per_token": total / tokens, "per_sample": per_sample,
            "bits_per_byte": total / (math.log(2) * n_bytes) if n_bytes else float("nan")}


def text_nll(model, tokenizer, texts, batch_size: int = 16) -> dict:
    """Negative log-likelihood of plain ``texts``, summed per text and averaged over texts (``nll``), and per
    token. Each text is scored after a newline, so every model predicts every character of it, whatever its
    tokenizer."""
    return response_nll(model, tokenizer, ["\n"] * len(texts), list(texts), batch_size)


def bits_per_byte(model, tokenizer, texts, batch_size: int = 16) -> float:
    """Bits per UTF-8 byte of ``texts`` (:func:`text_nll` in bits over their bytes): the same unit whatever the
    tokenizer, so models with different vocabularies compare (nats per token do not)."""
    nll = text_nll(model, tokenizer, texts, batch_size)
    return sum(nll["per_sample"]) / (math.log(2) * sum(len(t.encode("utf-8")) for t in texts))


SCORES = ("correct", "exact_match", "gold_reward")


def task_scores(examples, responses) -> dict:
    """Overall and per task kind (fractions in [0, 1]): ``correct`` (the answer's content is right, style aside),
    ``exact_match`` (the response is the bare answer) and the gold reward (1 bare and right, 0.5 right with
    chatter, 0 wrong)."""
    by_kind: dict = {}
    for ex, resp in zip(examples, responses, strict=True):
        by_kind.setdefault(ex.kind, []).append((float(ex.correct(resp)), float(ex.exact_match(resp)),
                                                ex.gold_reward(resp)))
    kinds = {k: {**{s: sum(row[i] for row in v) / len(v) for i, s in enumerate(SCORES)}, "n": len(v)}
             for k, v in sorted(by_kind.items())}
    n = len(examples)
    return {**{s: sum(k[s] * k["n"] for k in kinds.values()) / n for s in SCORES}, "kinds": kinds}


def distinct_n(texts, n: int = 2) -> float:
    """Distinct-n (Li et al., 2016): unique word n-grams over all word n-grams of ``texts`` (0 when none)."""
    grams = [tuple(words[i:i + n]) for t in texts for words in [t.split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def wilson(rate: float, n: int, z: float = 1.96) -> tuple:
    """The Wilson score interval (95 % for ``z`` = 1.96) of a proportion ``rate`` observed on ``n`` trials: unlike
    rate +/- z*se it stays inside [0, 1] and is not degenerate at 0 or 1 (Wilson 1927; Brown, Cai & DasGupta 2001)."""
    if n == 0:
        return (0.0, 1.0)
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct: the chance that k samples drawn
    without replacement from the n hold at least one correct, ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021, the
    Codex paper), computed as a product so that large n neither overflows nor loses precision. The plug-in
    ``1 - (1 - c/n)^k`` is biased low for k > 1."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):  # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
        miss *= 1.0 - k / i
    return 1.0 - miss


def pass_at_k_curve(correct: Sequence[Sequence[bool]], ks: Sequence[int]) -> Dict[int, float]:
    """Mean unbiased pass@k over prompts, each with its list of per-sample outcomes, for each k of ``ks``."""
    return {k: sum(pass_at_k(len(c), sum(map(bool, c)), k) for c in correct) / len(correct) for k in ks}


def length_controlled(outcomes: Sequence[float], length_gaps: Sequence[float], ridge: float = 0.1) -> float:
    """The win rate at equal length: a logistic regression of each comparison's outcome (1 win, 1/2 tie, 0 loss)
    on the length difference (in units of its spread), read at a difference of 0 -- the idea of AlpacaEval's
    length-controlled win rate (Dubois et al. 2024) with length as the one covariate. A ridge penalty on the slope
    (and a tiny one on the intercept, which keeps it finite when every comparison is won) makes length explain only
    what the data show it explains; where every answer is longer by about the same amount, reading at 0 is an
    extrapolation, and the value says little."""
    spread = statistics.pstdev(length_gaps) or 1.0
    xs = [g / spread for g in length_gaps]
    a = b = 0.0
    for _ in range(50):  # Newton's method on the penalised log-likelihood (concave: converges)
        p = [1 / (1 + math.exp(-(a + b * x))) for x in xs]
        ga = sum(y - q for y, q in zip(outcomes, p)) - 1e-3 * a
        gb = sum((y - q) * x for y, q, x in zip(outcomes, p, xs)) - ridge * b
        w = [q * (1 - q) for q in p]
        haa, hab = sum(w) + 1e-3, sum(wi * x for wi, x in zip(w, xs))
        hbb = sum(wi * x * x for wi, x in zip(w, xs)) + ridge
        det = haa * hbb - hab * hab
        a, b = a + (hbb * ga - hab * gb) / det, b + (haa * gb - hab * ga) / det
    return 1 / (1 + math.exp(-a))


def win_rate(scores: Sequence[float], baseline: Sequence[float], responses: Sequence[str] = (),
             baseline_responses: Sequence[str] = (), lengths: Sequence[float] = (),
             baseline_lengths: Sequence[float] = ()) -> dict:
    """How often a response scores above the baseline's response to the same prompt: wins, ties (the same text,
    or the same score) and losses; the rate ``(wins + ties / 2) / n`` with its 95 % Wilson interval; with the
    responses' ``lengths`` (tokens), the mean length difference and the :func:`length_controlled` rate."""
    same = [a == b for a, b in zip(responses, baseline_responses)] or [False] * len(scores)
    outcome = [0.5 if s or a == b else float(a > b) for a, b, s in zip(scores, baseline, same, strict=True)]
    wins, ties, n = outcome.count(1.0), outcome.count(0.5), len(outcome)
    rate = (wins + ties / 2) / n if n else float("nan")
    out = {"wins": wins, "ties": ties, "losses": n - wins - ties, "n": n, "rate": rate,
           "interval": wilson(rate, n) if n else (0.0, 1.0)}
    if lengths:
        gaps = [a - b for a, b in zip(lengths, baseline_lengths, strict=True)]
        out.update(length_gap=sum(gaps) / n, length_controlled=length_controlled(outcome, gaps))
    return out


def inside_noise(win: dict) -> bool:
    """Whether a win rate's 95 % interval holds 50 %: no difference from the baseline that this many prompts show."""
    low, high = win["interval"]
    return low <= 0.5 <= high


def describe_win(win: dict) -> str:
    """A win rate as one line: the rate, its interval, W/T/L, and the length-controlled rate where measured."""
    low, high = win["interval"]
    text = (f"{win['rate']:.0%} [{low:.0%}, {high:.0%}] (W/T/L {win['wins']}/{win['ties']}/{win['losses']} of "
            f"{win['n']})")
    if "length_controlled" in win:
        text += f", at equal length {win['length_controlled']:.0%} (length {win['length_gap']:+.1f} tokens)"
    return text + (", inside the noise" if inside_noise(win) else "")
