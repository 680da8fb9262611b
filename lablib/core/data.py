"""Data: the embedded offline domain (number lists), and the example and pair types every domain uses.

The embedded domain is *number lists*. A seeded generator writes

* a **pretraining corpus**: short documents that describe lists of numbers in prose
  ("Sorted from smallest to largest, 20, 19, 33, 1 becomes 1, 19, 20, 33."), and
* **instruction tasks** in the Alpaca format ("Sort the given numbers ..." / "7, 2, 9, 1" /
  "1, 2, 7, 9") whose answers a few lines of code can check -- the *gold reward* that later
  labs (reward modelling, PPO, RAFT) are measured against.

The tasks are sized for what a ~1M-parameter model learns in minutes: short lists of single-digit values
(one token each), and kinds that need no carries (``sum`` exists but is not in the default ``data.kinds``).

**Demonstrations are of mixed quality**, as real ones are (InstructGPT): a share ``data.preferred_share`` is
the bare answer, the labellers' preferred style; the rest add a chatty line after it ("I hope this helps!");
and a share ``data.mistake_share`` carries a typical mistake. SFT imitates that mixture. The gold reward is
the labeller's true preference, computed by code: 1 for the bare right answer, 0.5 for the right answer with
chatter, 0 for a wrong answer -- so SFT leaves headroom that the reward model can learn and RL can take.

Everything is a pure function of a seed and sizes, so every student and CI run sees the same data. The
examples and pairs of a user's files (``lablib.files``) are the same types, :class:`Example` and :class:`Pair`.
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Iterable, List, Sequence, Tuple


class DataError(ValueError):
    """Bad input data, worded as ``where: what``."""


# --------------------------------------------------------------------------------------------
# The embedded domain
# --------------------------------------------------------------------------------------------
def _fmt(xs: Sequence[int]) -> str:
    return ", ".join(str(x) for x in xs)


# name -> (instruction, function of the list giving the answer text)
TASKS: Dict[str, Tuple[str, Callable[[List[int]], str]]] = {
    "sort_asc": ("Sort the given numbers from smallest to largest.", lambda xs: _fmt(sorted(xs))),
    "sort_desc": ("Sort the given numbers from largest to smallest.", lambda xs: _fmt(sorted(xs, reverse=True))),
    "max": ("Find the largest of the given numbers.", lambda xs: str(max(xs))),
    "min": ("Find the smallest of the given numbers.", lambda xs: str(min(xs))),
    "sum": ("Add the given numbers together.", lambda xs: str(sum(xs))),
    "reverse": ("Write the given numbers in reverse order.", lambda xs: _fmt(xs[::-1])),
    "count": ("Count how many numbers are given.", lambda xs: str(len(xs))),
}

# Prose templates for the pretraining corpus; {L} is the list, the rest are task answers.
_SENTENCES = [
    "Sorted from smallest to largest, {L} becomes {sort_asc}.",
    "In increasing order the numbers {L} read {sort_asc}.",
    "Sorted from largest to smallest, {L} becomes {sort_desc}.",
    "In decreasing order the numbers {L} read {sort_desc}.",
    "The largest of {L} is {max}.",
    "The smallest of {L} is {min}.",
    "Added together, {L} make {sum}.",
    "The sum of {L} is {sum}.",
    "Reversed, the list {L} reads {reverse}.",
    "The list {L} has {count} numbers.",
]
_FILLER = ["I hope this helps!", "Let me know if you need anything else.", "That was a fun one to work out.",
           "Numbers can be tricky, so double-check it.", "Here is my answer, as requested."]
_SHELVES = "ABCDEFGH"  # the openers' {s}
_SENTENCES_PER_DOC = (2, 4)  # after the opener, uniformly
_FILLER_CHANCE = 0.3
_OPENERS = [
    "A clerk counts the boxes on shelf {s}: {L}.",
    "Shelf {s} holds crates of {L} items.",
    "The stock room lists {L} for row {s}.",
    "Today the tally for aisle {s} is {L}.",
]


def random_list(rng: random.Random, min_n: int, max_n: int, max_value: int) -> List[int]:
    """``min_n``..``max_n`` numbers from 1..``max_value``, distinct while there are enough values (repeats are
    what small models sort worst)."""
    n = rng.randint(min_n, max_n)
    if n <= max_value:
        return rng.sample(range(1, max_value + 1), n)
    return [rng.randint(1, max_value) for _ in range(n)]


def answers(xs: List[int]) -> Dict[str, str]:
    """Every task's correct answer for the list ``xs``."""
    return {name: fn(xs) for name, (_, fn) in TASKS.items()}


def _states(template: str) -> str:
    """The task whose answer a corpus sentence states (its placeholder besides ``{L}``)."""
    return next(name for name in TASKS if "{" + name + "}" in template)


def make_corpus(n_docs: int, seed: int, min_numbers: int = 3, max_numbers: int = 4, max_value: int = 9,
                exclude: Iterable[Tuple[str, Tuple[int, ...]]] = ()) -> List[str]:
    """``n_docs`` prose documents about number lists, a pure function of the arguments. No sentence states the
    answer of a task in ``exclude`` (``(kind, numbers)`` pairs: the held-out tasks) -- the same list under the
    same operation is drawn again."""
    rng, exclude = random.Random(f"corpus-{seed}"), set(exclude)
    docs = []
    for _ in range(n_docs):
        sentences = [rng.choice(_OPENERS).format(s=rng.choice(_SHELVES),
                                                 L=_fmt(random_list(rng, min_numbers, max_numbers, max_value)))]
        for _ in range(rng.randint(*_SENTENCES_PER_DOC)):
            while True:
                xs = random_list(rng, min_numbers, max_numbers, max_value)
                template = rng.choice(_SENTENCES)
                if (_states(template), tuple(xs)) not in exclude:
                    break
            sentences.append(template.format(L=_fmt(xs), **answers(xs)))
        if rng.random() < _FILLER_CHANCE:  # the clerk's chatter, which the demonstrations of lab 02 also hold
            sentences.append(rng.choice(_FILLER))
        docs.append(" ".join(sentences))
    return docs


def corpus_nats(min_numbers: int = 3, max_numbers: int = 4, max_value: int = 9) -> float:
    """The entropy, in nats, of one :func:`make_corpus` document: the sum of its random choices (an opener and its
    shelf letter, each list's length and numbers, how many sentences and which, whether the filler comes and
    which), since the text spells every choice out and each answer is a function of its list. No model can
    average fewer nats per document on these documents: divided by their tokens, the loss floor of lab 01.
    (Redrawing a list that would state a held-out answer removes a sliver of choices, so the floor is a hair
    lower still.)"""
    lengths = range(min_numbers, max_numbers + 1)
    numbers = sum(math.log(math.perm(max_value, n)) if n <= max_value else n * math.log(max_value)
                  for n in lengths) / len(lengths)
    a_list = math.log(len(lengths)) + numbers
    letters = sum(math.log(len(_SHELVES)) if "{s}" in o else 0.0 for o in _OPENERS) / len(_OPENERS)
    sentences = range(_SENTENCES_PER_DOC[0], _SENTENCES_PER_DOC[1] + 1)
    p = _FILLER_CHANCE
    filler = -sum(q * math.log(q) for q in (p, 1 - p) if q > 0) + p * math.log(len(_FILLER))
    return (math.log(len(_OPENERS)) + letters + a_list + math.log(len(sentences))
            + sum(sentences) / len(sentences) * (math.log(len(_SENTENCES)) + a_list) + filler)


def stated_answers(kind: str, numbers: Sequence[int]) -> List[str]:
    """Every corpus sentence that would state the answer of the task ``(kind, numbers)``."""
    xs = list(numbers)
    return [t.format(L=_fmt(xs), **answers(xs)) for t in _SENTENCES if _states(t) == kind]


ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n")


def alpaca_prompt(instruction: str, input: str = "") -> str:
    """The Stanford Alpaca prompt; the response follows it directly."""
    if input.strip():
        return ALPACA_WITH_INPUT.format(instruction=instruction, input=input)
    return ALPACA_NO_INPUT.format(instruction=instruction)


class _Checked:
    """Scoring shared by every example with a reference ``output``."""
    output: str

    def exact_match(self, response: str) -> bool:
        return response.strip() == self.output.strip()

    def correct(self, response: str) -> bool:
        """The answer's content is right, style aside: the first line is the reference."""
        lines = response.strip().splitlines()
        return bool(lines) and lines[0].strip() == self.output.strip()

    def gold_reward(self, response: str) -> float:
        """1 for the exact answer alone; 0.5 when the first line is right but more text follows; else 0."""
        if self.exact_match(response):
            return 1.0
        return 0.5 if self.correct(response) else 0.0

    @property
    def response(self) -> str:
        """What the demonstrator wrote, which SFT imitates: the reference unless a demonstration was drawn."""
        return self.demo if getattr(self, "demo", None) is not None else self.output


@dataclass(frozen=True)
class Task(_Checked):
    """One instruction task of the embedded domain, with a code-checkable answer."""
    kind: str
    numbers: Tuple[int, ...]
    demo: str | None = field(default=None, compare=False)  # a drawn demonstration (see :func:`demonstrations`)

    @property
    def instruction(self) -> str:
        return TASKS[self.kind][0]

    @property
    def input(self) -> str:
        return _fmt(self.numbers)

    @property
    def output(self) -> str:
        return TASKS[self.kind][1](list(self.numbers))

    @property
    def prompt(self) -> str:
        return alpaca_prompt(self.instruction, self.input)

    def as_alpaca(self) -> Dict[str, str]:
        return {"instruction": self.instruction, "input": self.input, "output": self.output, "kind": self.kind}


@dataclass(frozen=True)
class Example(_Checked):
    """An instruction example from a user's file; scored against its reference ``output``."""
    instruction: str
    input: str
    output: str
    kind: str = "file"

    @property
    def prompt(self) -> str:
        return alpaca_prompt(self.instruction, self.input)


DEFAULT_KINDS = ("sort_asc", "sort_desc", "max", "min", "reverse", "count")


def make_tasks(n: int, seed: int, kinds: Iterable[str] = DEFAULT_KINDS, min_numbers: int = 3,
               max_numbers: int = 4, max_value: int = 9) -> List[Task]:
    """``n`` distinct tasks (no two share kind and numbers), round-robin over ``kinds``."""
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in TASKS]
    if unknown:
        raise DataError(f"unknown task kind(s) {unknown}; known: {sorted(TASKS)}")
    rng = random.Random(f"tasks-{seed}")
    seen, tasks = set(), []
    for _ in range(n * 50):
        if len(tasks) == n:
            break
        task = Task(kinds[len(tasks) % len(kinds)], tuple(random_list(rng, min_numbers, max_numbers, max_value)))
        if task not in seen:
            seen.add(task)
            tasks.append(task)
    if len(tasks) < n:
        raise DataError(f"could only make {len(tasks)} distinct tasks of the {n} asked for; raise data.max_value")
    return tasks


def split(items: Sequence, val_fraction: float, max_val: int | None = None) -> Tuple[list, list]:
    """Deterministic train/val split (the tail is validation), never empty on either side."""
    if len(items) < 2:
        raise DataError(f"need at least 2 examples to split into train and validation, got {len(items)}")
    n_val = max(1, min(int(round(len(items) * val_fraction)), len(items) - 1))
    if max_val:
        n_val = min(n_val, max_val)
    return list(items[:-n_val]), list(items[-n_val:])


def shuffled_split(items: Sequence, val_fraction: float, max_val: int | None, seed) -> Tuple[list, list]:
    """:func:`split` after a seeded shuffle: the held-out rows are drawn from the whole file, not its tail (a
    file sorted by topic would otherwise hold out one topic). Each side keeps the file's order."""
    order = list(range(len(items)))
    random.Random(f"held-out-{seed}").shuffle(order)
    train, val = split(order, val_fraction, max_val)
    return [items[i] for i in sorted(train)], [items[i] for i in sorted(val)]


def words(text: str) -> frozenset:
    """The lower-cased word set of ``text`` (punctuation stripped): what :func:`jaccard` compares."""
    return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


def jaccard(a: frozenset, b: frozenset) -> float:
    """Word-set Jaccard similarity: shared words over all words (1.0: the same words, in any order)."""
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(train: Sequence, held: Sequence, key: Callable, threshold: float) -> List[int]:
    """Indices of ``train`` whose ``key`` text has word-set Jaccard >= ``threshold`` with some held-out item's: a
    paraphrase of a held-out prompt that training would otherwise see."""
    held_sets = [words(key(h)) for h in held]
    return [i for i, t in enumerate(train) if any(jaccard(words(key(t)), h) >= threshold for h in held_sets)]


def chatty(answer: str, rng: random.Random) -> str:
    """The dispreferred style: the answer, then a line of chatter."""
    return f"{answer}\n{rng.choice(_FILLER)}"


def demonstrations(tasks: Sequence["Task"], preferred_share: float, mistake_share: float, seed: int) -> List["Task"]:
    """``tasks`` with a drawn demonstration each (seeded): a share ``mistake_share`` with a typical mistake (a
    wrong item or value, the wrong order, an item dropped), then a share ``preferred_share`` in the preferred
    bare style and the rest chatty."""
    rng = random.Random(f"demos-{seed}")
    out = []
    for t in tasks:
        text = t.output
        if rng.random() < mistake_share:
            mistakes = {h: r for h, r in flawed_responses(t, rng).items() if h not in ("rambling", "truncated")}
            text = mistakes[rng.choice(sorted(mistakes))] if mistakes else text
        out.append(replace(t, demo=text if rng.random() < preferred_share else chatty(text, rng)))
    return out


# --------------------------------------------------------------------------------------------
# Preference pairs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """A preference pair: the same prompt, a ``chosen`` response and a worse ``rejected`` one.
    ``how`` names the flaw of the rejected response (``file`` for pairs from a user's file)."""
    example: object  # a Task or Example: its instruction and input make the prompt
    chosen: str
    rejected: str
    how: str


def _without(xs: List[int], rng: random.Random) -> List[int]:
    i = rng.randrange(len(xs))
    return xs[:i] + xs[i + 1:]


def flawed_responses(ex, rng: random.Random) -> Dict[str, str]:
    """Plausible worse answers to ``ex``, by flaw: each has a lower gold reward than the reference."""
    out = ex.output.strip()
    flawed = {"rambling": chatty(out, rng), "truncated": out[: len(out) // 2].rstrip(", ")}
    if isinstance(ex, Task):
        xs = list(ex.numbers)
        if ex.kind in ("max", "min"):
            others = [x for x in xs if str(x) != out]
            if others:
                flawed["wrong_item"] = str(rng.choice(others))
        elif ex.kind in ("sum", "count"):
            delta = rng.choice([-1, 1]) * (rng.randint(1, 10) if ex.kind == "sum" else 1)
            flawed["wrong_value"] = str(int(out) + delta)
        else:  # list answers: the input unchanged or sorted the wrong way, or an item dropped
            flawed["wrong_order"] = rng.choice([_fmt(xs), _fmt(sorted(xs, reverse=ex.kind != "sort_desc"))])
            flawed["dropped"] = _fmt(_without(TASKS[ex.kind][1](xs).split(", "), rng)) if len(xs) > 1 else ""
    return {how: text for how, text in flawed.items() if text.strip() and ex.gold_reward(text) < 1.0
            and text.strip() != out}


def preference_pairs(examples: Sequence, seed: int) -> List[Pair]:
    """One pair per example: the reference answer is chosen; one of its flawed answers, drawn at random
    (seeded), is rejected."""
    rng = random.Random(f"pairs-{seed}")
    pairs = []
    for ex in examples:
        flawed = flawed_responses(ex, rng)
        how = rng.choice(sorted(flawed))
        pairs.append(Pair(ex, ex.output, flawed[how], how))
    return pairs


def user_turn(example) -> str:
    """What the user says: the instruction, then the input on its own line if there is one."""
    return f"{example.instruction}\n{example.input}" if example.input.strip() else example.instruction


def pair_rows(pairs: Sequence[Pair]) -> List[Dict[str, str]]:
    """Pairs as preference-file rows (the inverse of :func:`pair_records`); the prompt is the user turn."""
    return [{"prompt": user_turn(p.example), "chosen": p.chosen, "rejected": p.rejected, "how": p.how} for p in pairs]


def contamination(docs: Sequence[str], train: Sequence, held_out: Sequence) -> dict:
    """Was any of the held-out set seen in training? ``prompts``: the held-out examples whose user turn is also a
    training example's; ``answers``: the held-out tasks whose answer some document of ``docs`` states (one of
    its :func:`stated_answers` sentences, word for word)."""
    seen = {user_turn(e) for e in train}
    text = "\n".join(docs)
    return {"prompts": [e for e in held_out if user_turn(e) in seen],
            "answers": [e for e in held_out if any(s in text for s in stated_answers(e.kind, e.numbers))]}
