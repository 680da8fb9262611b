"""A domain: what the course is about. Every lab reads its data, its one held-out split and its scores here.

Two domains implement one interface (:class:`Domain`), and the labs call the same functions for both:

* **numbers** (``domain=numbers``, the labs in ``labs/``): number-list tasks generated in code, whose answers
  code checks -- the gold reward. Lab 01's corpus describes number lists in prose and is drawn around the
  held-out tasks: it never states the answer to one.
* **your files** (``domain=own``, or the shipped ``domain=example``; the labs in ``labs/own/``) name up to three
  files: ``domain.corpus`` (plain text, one document per line, for lab 01; optional),
  ``domain.instructions`` (Alpaca, prompt/completion or messages records, for SFT and LoRA) and
  ``domain.pairs`` (prompt, chosen, rejected; optional: without them the RL labs are skipped). There is **no
  gold checker** for open-ended answers, so no gold metric is ever printed. The reward model (RM) stands in for
  the labellers -- and a policy optimised against it will fool it (Goodhart). So the training pairs are split, by
  prompt, between the RM and a **judge**: a second RM trained on pairs no optimiser ever sees, which scores the
  win rate of each method against the SFT model.

A domain owns its split: ``domain.split.<profile>`` (``conf/domain/*.yaml``) says how many tasks there are, how
many of them are held out (the numbers domain: the tail of the generated list; your files: rows drawn with
``domain.split_seed``, and training rows that are near-duplicates of a held-out prompt dropped) and how long
every evaluation answer may be (``answer_tokens``) -- once per domain and profile, read by every lab. The track (which
notebooks run) follows from the domain alone. Every file is checked row by row before any training: a bad row
fails with its ``file:line``; repeated prompts are dropped and counted.
"""
from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from . import config, data, files


@dataclass
class Split:
    """Train and held-out items, and how many repeats were dropped before splitting."""
    train: list
    val: list
    duplicates: int = 0
    near_duplicates: int = 0  # training rows dropped as near-duplicates of a held-out prompt


@dataclass
class PairSplit:
    """Preference pairs split by prompt: the RM's, the judge's (disjoint prompts; none in the numbers domain,
    whose gold checker needs no judge) and the held-out ones."""
    rm: list
    judge: list
    val: list
    duplicates: int = 0
    near_duplicates: int = 0  # prompts moved from the RM's side (DPO trains on it) to the judge's: near a held-out one


def answer_tokens(cfg) -> int:
    """How many new tokens every held-out evaluation answer may have (``domain.split.<profile>.answer_tokens``):
    labs 05-07 and the leaderboard all generate greedily to this length."""
    return sizes(cfg).answer_tokens


def held_out(cfg) -> int:
    """How many items the domain holds out under the config's profile (``domain.split.<profile>.held_out``)."""
    return sizes(cfg).held_out


def sizes(cfg):
    """``domain.split.<profile>``: the task count and the held-out size every lab of this profile reads."""
    entry = cfg.domain.split.get(cfg.profile)
    if entry is None:
        raise config.ConfigError(f"domain.split: no entry for profile {cfg.profile!r} in conf/domain/"
                                 f"{cfg.domain.name}.yaml (entries: {', '.join(cfg.domain.split)})")
    return entry


class Domain:
    """The interface both domains implement. ``track`` names the notebooks that run it (``numbers``: labs/,
    ``own``: labs/own/); ``gold`` says whether code checks an answer (the gold reward, exact match)."""
    name = ""
    track = ""
    gold = False

    def corpus(self, cfg) -> Optional[Tuple[List[str], List[str]]]:
        """Lab 01's (train, validation) documents, or ``None`` where the domain has no corpus."""
        raise NotImplementedError

    def instructions(self, cfg) -> Split:
        """Train and held-out instruction examples; no held-out prompt is ever in the training side."""
        raise NotImplementedError

    def pairs(self, cfg) -> Optional[PairSplit]:
        """Preference pairs, split like the instructions; ``None`` without pairs (the RL labs are then skipped)."""
        raise NotImplementedError

    def key(self, cfg) -> str:
        """The run-folder name of the domain: runs of different domains or files never share a folder."""
        return self.name

    def paths(self, cfg) -> dict:
        """The files the domain reads, by key, resolved (none for a domain generated in code)."""
        return {}

    def fingerprint(self, cfg) -> str:
        """A hash of the data the domain reads from outside the code ("" when it reads none)."""
        return ""

    def answer_scores(self, examples: Sequence, responses: Sequence[str]) -> dict:
        """What code can say about each response: gold reward, exact match and share right ({} without gold)."""
        return {}

    def rank_key(self, row: dict) -> tuple:
        """How checkpoints are ranked (smaller first): the leaderboard's order."""
        raise NotImplementedError


class Numbers(Domain):
    """The embedded domain: number-list tasks generated from ``seed``, checked by code."""
    name = track = "numbers"
    gold = True

    def tasks(self, cfg) -> Tuple[list, list]:
        """The one task list of this profile, split: (training tasks, held-out tasks)."""
        d, n = cfg.data, sizes(cfg)
        items = data.make_tasks(n.tasks, cfg.seed, d.kinds, min_numbers=d.min_numbers, max_numbers=d.max_numbers,
                                max_value=d.max_value)
        return data.split(items, d.val_fraction, n.held_out)

    def corpus(self, cfg):
        """Lab 01's corpus: generated prose that never states a held-out task's answer, or the user's text
        (``data=text|hf|hub``), which cannot be drawn around anything."""
        d = cfg.data
        if d.source == "synthetic":
            held = [(t.kind, t.numbers) for t in self.tasks(cfg)[1]]
            docs = data.make_corpus(d.n_docs, cfg.seed, d.min_numbers, d.max_numbers, d.max_value, exclude=held)
        elif d.source == "text":
            docs = files.load_texts(d.path)
        elif d.source == "hf":
            docs = files.load_hf_folder(d.path, d.text_field)
        else:
            docs = files.load_hub(d.path, d.text_field)
        return data.split(docs, d.val_fraction, d.val_docs)

    def instructions(self, cfg) -> Split:
        """The training tasks with mixed-quality demonstrations, and the held-out tasks."""
        train, val = self.tasks(cfg)
        return Split(data.demonstrations(train, cfg.data.preferred_share, cfg.data.mistake_share, cfg.seed), val)

    def pairs(self, cfg) -> PairSplit:
        """One pair per task: the reference chosen, a hand-made flaw rejected (held out: the held-out tasks')."""
        split = self.instructions(cfg)
        return PairSplit(data.preference_pairs(split.train, cfg.seed), [], data.preference_pairs(split.val, cfg.seed + 1))

    def key(self, cfg) -> str:
        return ""  # the numbers runs live at the top of a profile's folder

    def answer_scores(self, examples, responses) -> dict:
        from . import evaluation

        return evaluation.task_scores(examples, responses)

    def rank_key(self, row) -> tuple:
        return (-row["gold_reward"], row["nll"], row["checkpoint"])


class Files(Domain):
    """Your own files (``domain=own``), or the shipped example (``domain=example``)."""
    track = "own"

    def __init__(self, name: str):
        self.name = name

    def paths(self, cfg) -> dict:
        """The domain's files that are set, by key (``corpus``, ``instructions``, ``pairs``), as resolved paths."""
        return {k: config.local_path(v) for k in ("corpus", "instructions", "pairs") if (v := cfg.domain[k])}

    def key(self, cfg) -> str:
        if self.name == "example":
            return "example"
        named = "\0".join(f"{k}={p.resolve()}" for k, p in sorted(self.paths(cfg).items())) + f"\0{cfg.domain.format}"
        return "own-" + hashlib.sha256(named.encode()).hexdigest()[:8]

    def fingerprint(self, cfg) -> str:
        """A hash of the files' contents: an edited file makes the labs that read it stale."""
        h = hashlib.sha256()
        for _, path in sorted(self.paths(cfg).items()):
            for f in (sorted(path.rglob("*.txt")) if path.is_dir() else [path]):
                h.update(f.read_bytes())
        return h.hexdigest()[:16]

    def corpus(self, cfg):
        """(train, validation) documents of ``domain.corpus``, repeats dropped, the held-out ones drawn with
        ``domain.split_seed``; ``None`` without a corpus."""
        if not cfg.domain.corpus:
            return None
        docs, _ = files.dedupe(files.load_texts(config.local_path(cfg.domain.corpus)))
        return data.shuffled_split(docs, cfg.data.val_fraction, held_out(cfg), cfg.domain.split_seed)

    def instructions(self, cfg) -> Split:
        """A repeated prompt (instruction and input) keeps its first record; the held-out prompts are drawn with
        ``domain.split_seed``, and a training prompt that is a near-duplicate of one (``domain.near_duplicate``) is
        dropped and counted: no held-out prompt, nor a paraphrase of it, is trained on."""
        records = files.load_records(config.local_path(cfg.domain.instructions), cfg.domain.format)
        examples, dropped = files.dedupe(files.to_examples(records, cfg.domain.format), key=data.user_turn)
        train, val = data.shuffled_split(examples, cfg.data.val_fraction, held_out(cfg), cfg.domain.split_seed)
        near = set(data.near_duplicates(train, val, data.user_turn, cfg.domain.near_duplicate))
        if len(near) == len(train):
            raise data.DataError(f"{cfg.domain.instructions}: every training prompt is a near-duplicate of a held-out "
                                 f"one (word-set Jaccard >= domain.near_duplicate={cfg.domain.near_duplicate}); "
                                 "prompts that differ in one word are alike: raise it, e.g. domain.near_duplicate=0.95")
        return Split([e for i, e in enumerate(train) if i not in near], val, dropped, len(near))

    def pairs(self, cfg) -> Optional[PairSplit]:
        """``domain.pairs`` split by prompt: held-out prompts drawn with ``domain.split_seed``, then the rest drawn
        (seeded) between the RM and the judge (a share ``domain.judge_share``). The RM's pairs are what DPO trains
        the policy on, so a pair whose prompt is a near-duplicate of a held-out instruction or pair prompt goes to
        the judge instead (its pairs train no policy)."""
        if not cfg.domain.pairs:
            return None
        rows, dropped = files.dedupe(files.pair_records(config.local_path(cfg.domain.pairs)),
                                    key=lambda p: (p.example.instruction, p.chosen, p.rejected))
        prompts = list(dict.fromkeys(p.example.instruction for p in rows))
        if len(prompts) < 3:
            raise data.DataError(f"{cfg.domain.pairs}: {len(prompts)} distinct prompts; the RM, the judge and the "
                                 "held-out pairs need at least 3")
        rest, held = data.shuffled_split(prompts, cfg.data.val_fraction, held_out(cfg), cfg.domain.split_seed)
        guarded = held + [data.user_turn(e) for e in self.instructions(cfg).val]
        near = {rest[i] for i in data.near_duplicates(rest, guarded, str, cfg.domain.near_duplicate)}
        return by_prompt(rows, rest, held, cfg, near, dropped)

    def self_play_pairs(self, cfg, policy, tokenizer) -> PairSplit:
        """Pairs without a pairs file, from what the user has (self-play, as in SPIN, Chen et al. 2024): for each
        instruction, the user's reference answer is chosen and the SFT policy's own greedy answer (at the domain's
        answer length) rejected; a prompt the policy already answers word for word gives no pair. Split like
        :meth:`pairs`: the held-out instructions' pairs are held out, the training ones drawn between the RM and the
        judge by prompt, so the judge never judges a prompt it was trained on."""
        from . import generation

        split = self.instructions(cfg)
        examples = split.train + split.val
        answers = generation.respond(policy, tokenizer, examples, cfg.sft.format, answer_tokens(cfg), batch_size=64)
        rows = [data.Pair(e, e.output, a, "self_play") for e, a in zip(examples, answers)
                if " ".join(a.split()) != " ".join(e.output.split())]
        rest = [data.user_turn(e) for e in split.train]
        held = [data.user_turn(e) for e in split.val]
        return by_prompt(rows, rest, held, cfg, set(), len(examples) - len(rows))

    def rank_key(self, row) -> tuple:
        """The judge's win rate against SFT where there is a judge, then bits per byte of the references."""
        return (-row.get("win_rate", 0.0), row["bits_per_byte"], row["checkpoint"])


def by_prompt(rows: Sequence, rest: Sequence[str], held: Sequence[str], cfg, near: set, dropped: int) -> PairSplit:
    """Pairs split by prompt: ``held`` prompts held out, the ``rest`` drawn (seeded) between the RM and the judge (a
    share ``domain.judge_share``); the ``near`` prompts (near-duplicates of a held-out one) go to the judge, whose
    pairs train no policy."""
    rng = random.Random(f"judge-{cfg.seed}")
    judged = {p for p in rest if rng.random() < cfg.domain.judge_share}
    if not judged or judged == set(rest):  # both sides need pairs
        judged = set(rest[: max(1, len(rest) // 2)])
    if set(rest) - judged - near:
        judged |= near
    held = set(held)

    def prompt(p):
        return data.user_turn(p.example)

    return PairSplit([p for p in rows if prompt(p) not in judged | held], [p for p in rows if prompt(p) in judged],
                     [p for p in rows if prompt(p) in held], dropped, len(near))


DOMAINS: Dict[str, Domain] = {"numbers": Numbers(), "own": Files("own"), "example": Files("example")}


def named(name: str) -> Domain:
    if name not in DOMAINS:
        raise config.ConfigError(f"domain={name!r}: must be one of {', '.join(DOMAINS)}")
    return DOMAINS[name]


def of(cfg) -> Domain:
    """The domain a config runs."""
    return named(cfg.domain.name)


def track_of(overrides: Sequence[str] = (), keys: Sequence[str] = ()) -> str:
    """The track a command runs, from the domain it names (``domain=...``; a lab named ``own/NN`` runs the own
    track's default domain): the track follows from the domain alone."""
    chosen = [str(o).partition("=")[2] for o in overrides if str(o).partition("=")[0].lstrip("+") == "domain"]
    if chosen:
        return named(chosen[-1]).track
    return "own" if any(str(k).startswith("own/") for k in keys) else "numbers"


def check_files(cfg) -> None:
    """Read a domain's files the way the labs will (row by row, then split); raises :class:`lablib.data.DataError`."""
    if of(cfg).paths(cfg):  # a domain generated in code has none
        instructions(cfg), pairs(cfg), corpus(cfg)


# The interface as functions of a config: what the labs call, whatever the domain.
def corpus(cfg):
    return of(cfg).corpus(cfg)


def instructions(cfg) -> Split:
    return of(cfg).instructions(cfg)


def pairs(cfg) -> Optional[PairSplit]:
    return of(cfg).pairs(cfg)


def key(cfg) -> str:
    return of(cfg).key(cfg)


def fingerprint(cfg) -> str:
    return of(cfg).fingerprint(cfg)


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


GENERAL_TEXT = Path(__file__).resolve().parent.parent / "data" / "general.txt"


def general_text() -> List[str]:
    """Forty short documents of everyday English (written for this kit, CC0) that no lab trains on: the own track's
    forgetting check -- how much less likely plain text becomes as a model specialises."""
    return [line for line in GENERAL_TEXT.read_text().splitlines() if line.strip()]


def prompts_needed(rate: float, z: float = 1.96) -> float:
    """About how many held-out prompts a win rate of ``rate`` needs before its 95 % interval clears 50 % (the
    normal approximation: n = z^2 p(1-p) / (p - 1/2)^2; infinite at 50 %)."""
    return math.inf if rate == 0.5 else z * z * rate * (1 - rate) / (rate - 0.5) ** 2


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
