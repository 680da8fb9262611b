"""Your own domain: the data of the own-domain track (``labs/own/``), read from the user's files.

``domain=own`` (or the shipped ``domain=example``) names up to three files:

* ``domain.corpus`` -- plain text, one document per line, for lab 01's continued pretraining (optional);
* ``domain.instructions`` -- instruction records (Alpaca, prompt/completion or messages) for SFT and LoRA;
* ``domain.pairs`` -- preference pairs (prompt, chosen, rejected) for the reward model and DPO (optional:
  without them the RL labs are skipped).

There is **no gold checker** for open-ended answers, so nothing here reports exact match or a gold reward.
The reward model (RM) stands in for the labellers -- and a policy optimised against it will fool it
(Goodhart). So the training pairs are split, by prompt, between the RM and a **judge**: a second RM trained on
pairs no optimiser ever sees, which scores the win rate of each method against the SFT model.

Every file is checked row by row before any training: a bad row fails with its ``file:line``; repeated
prompts are dropped and counted.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from . import config, data


@dataclass
class Split:
    """Train and held-out items, and how many repeats were dropped before splitting."""
    train: list
    val: list
    duplicates: int = 0


@dataclass
class PairSplit:
    """Preference pairs split by prompt: the RM's, the judge's (disjoint prompts) and the held-out ones."""
    rm: list
    judge: list
    val: list
    duplicates: int = 0


def paths(cfg) -> dict:
    """The domain's files that are set, by key (``corpus``, ``instructions``, ``pairs``), as resolved paths."""
    return {k: config.local_path(v) for k in ("corpus", "instructions", "pairs") if (v := cfg.domain[k])}


def key(cfg) -> str:
    """The run-folder name of the domain: runs of different domains or files never share a folder."""
    if cfg.domain.name == "numbers":
        return ""
    if cfg.domain.name == "example":
        return "example"
    named = "\0".join(f"{k}={p.resolve()}" for k, p in sorted(paths(cfg).items())) + f"\0{cfg.domain.format}"
    return "own-" + hashlib.sha256(named.encode()).hexdigest()[:8]


def fingerprint(cfg) -> str:
    """A hash of the domain files' contents: an edited file makes the labs that read it stale."""
    h = hashlib.sha256()
    for _, path in sorted(paths(cfg).items()):
        files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
        for f in files:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def corpus(cfg) -> Optional[Tuple[List[str], List[str]]]:
    """(train, validation) documents of ``domain.corpus``, repeats dropped; ``None`` without a corpus."""
    if not cfg.domain.corpus:
        return None
    docs, _ = data.dedupe(data.load_texts(config.local_path(cfg.domain.corpus)))
    return data.split(docs, cfg.data.val_fraction, cfg.data.max_val)


def instructions(cfg) -> Split:
    """Train and held-out instruction examples of ``domain.instructions``; a repeated prompt (instruction and
    input) keeps its first record, so no held-out prompt is trained on."""
    records = data.load_records(config.local_path(cfg.domain.instructions), cfg.domain.format)
    examples, dropped = data.dedupe(data.to_examples(records, cfg.domain.format), key=data.user_turn)
    train, val = data.split(examples, cfg.data.val_fraction, cfg.data.max_val)
    return Split(train, val, dropped)


def pairs(cfg) -> Optional[PairSplit]:
    """``domain.pairs`` split by prompt: the held-out tail, then the rest drawn (seeded) between the RM and the
    judge (a share ``domain.judge_share``); ``None`` without pairs."""
    if not cfg.domain.pairs:
        return None
    rows, dropped = data.dedupe(data.pair_records(config.local_path(cfg.domain.pairs)),
                                key=lambda p: (p.example.instruction, p.chosen, p.rejected))
    prompts = list(dict.fromkeys(p.example.instruction for p in rows))
    if len(prompts) < 3:
        raise data.DataError(f"{cfg.domain.pairs}: {len(prompts)} distinct prompts; the RM, the judge and the "
                             "held-out pairs need at least 3")
    rest, held_out = data.split(prompts, cfg.data.val_fraction, cfg.data.max_val)
    rng = random.Random(f"judge-{cfg.seed}")
    judged = {p for p in rest if rng.random() < cfg.domain.judge_share}
    if not judged or judged == set(rest):  # both sides need pairs
        judged = set(rest[: max(1, len(rest) // 2)])
    held = set(held_out)
    return PairSplit([p for p in rows if p.example.instruction not in judged | held],
                     [p for p in rows if p.example.instruction in judged],
                     [p for p in rows if p.example.instruction in held], dropped)


def win_rate(scores: Sequence[float], baseline: Sequence[float], responses: Sequence[str] = (),
             baseline_responses: Sequence[str] = ()) -> dict:
    """How often a response scores above the baseline's response to the same prompt: wins, ties (the same
    text, or the same score) and losses, and the rate ``(wins + ties / 2) / n``."""
    same = [a == b for a, b in zip(responses, baseline_responses)] or [False] * len(scores)
    wins = sum(not s and a > b for a, b, s in zip(scores, baseline, same, strict=True))
    ties = sum(s or a == b for a, b, s in zip(scores, baseline, same, strict=True))
    n = len(scores)
    return {"wins": wins, "ties": ties, "losses": n - wins - ties, "n": n,
            "rate": (wins + ties / 2) / n if n else float("nan")}


def reference_scores(model, tokenizer, examples: Sequence, fmt: str, max_new_tokens: int) -> dict:
    """What can be measured on held-out instructions without a gold checker: the NLL of the reference responses
    given their prompts (summed per response, and in bits per byte, which compares any tokenizers), and the
    model's own greedy responses with their mean length in tokens."""
    from . import evaluation, generation

    prompts = [generation.prompt_text(e, fmt, tokenizer) for e in examples]
    nll = evaluation.response_nll(model, tokenizer, prompts, [e.output for e in examples])
    responses = generation.respond(model, tokenizer, examples, fmt, max_new_tokens)
    length = sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses) / len(responses)
    return {"nll": nll["nll"], "bits_per_byte": nll["bits_per_byte"], "length": length, "responses": responses}


def side_by_side(examples: Sequence, columns: dict, n: int = 3, width: int = 160) -> str:
    """The first ``n`` prompts with the reference and each column's response (``{name: responses}``)."""
    def cut(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 3] + "..."

    lines = []
    for i, e in enumerate(examples[:n]):
        lines.append(f"{'prompt:':<12} {cut(data.user_turn(e))}")
        lines.append(f"{'reference:':<12} {cut(e.output)}")
        lines += [f"{name + ':':<12} {cut(rs[i])}" for name, rs in columns.items()]
        lines.append("")
    return "\n".join(lines).rstrip()
