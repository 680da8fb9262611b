"""Data: the embedded offline domain, and loaders for your own files.

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

Everything is a pure function of a seed and sizes, so every student and CI run sees the same data.
Loaders for user data (plain text, Alpaca / prompt-completion / preference JSON(L), saved HF
dataset folders) report a malformed row as ``file:line: what is wrong``.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
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


def make_corpus(n_docs: int, seed: int, min_numbers: int = 3, max_numbers: int = 4,
                max_value: int = 9) -> List[str]:
    """``n_docs`` prose documents about number lists, a pure function of the arguments."""
    rng = random.Random(f"corpus-{seed}")
    docs = []
    for _ in range(n_docs):
        sentences = [rng.choice(_OPENERS).format(s=rng.choice("ABCDEFGH"),
                                                 L=_fmt(random_list(rng, min_numbers, max_numbers, max_value)))]
        for _ in range(rng.randint(2, 4)):
            xs = random_list(rng, min_numbers, max_numbers, max_value)
            sentences.append(rng.choice(_SENTENCES).format(L=_fmt(xs), **answers(xs)))
        if rng.random() < 0.3:  # the clerk's chatter, which the demonstrations of lab 02 also hold
            sentences.append(rng.choice(_FILLER))
        docs.append(" ".join(sentences))
    return docs


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


# --------------------------------------------------------------------------------------------
# Loading user data
# --------------------------------------------------------------------------------------------
FORMATS: Dict[str, Tuple[str, ...]] = {
    "alpaca": ("instruction", "output"),  # "input" optional
    "prompt_completion": ("prompt", "completion"),
    "preference": ("prompt", "chosen", "rejected"),
    "messages": ("messages",),
    "text": ("text",),
}


def _text_files(path: Path) -> List[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.txt"))
        if not files:
            raise DataError(f"{path}: folder holds no *.txt files")
        return files
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return [path]


def read_lines(path: Path) -> List[str]:
    """A UTF-8 text file's lines; a byte that is not UTF-8 fails as ``file:line: not UTF-8 ...`` (tokenizers
    would otherwise learn replacement characters, or the whole file fail with a byte offset)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {column}); "
                        "save the file as UTF-8") from None


def load_texts(path: str | Path) -> List[str]:
    """Plain-text documents: each non-empty line of a file (or of every *.txt file in a folder)."""
    docs = [line.strip() for f in _text_files(Path(path)) for line in read_lines(f) if line.strip()]
    if not docs:
        raise DataError(f"{path}: no non-empty lines")
    return docs


def _rows(path: Path) -> Iterable[Tuple[str, object]]:
    """(location, row) for a JSONL file (location file:line) or a JSON array (file:item N)."""
    if path.suffix == ".jsonl":
        for i, line in enumerate(read_lines(path), 1):
            if line.strip():
                try:
                    yield f"{path}:{i}", json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        return
    try:
        data = json.loads("\n".join(read_lines(path)))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    for i, row in enumerate(data):
        yield f"{path}:item {i}", row


def load_records(path: str | Path, fmt: str) -> List[Dict]:
    """Records of one of :data:`FORMATS` from JSON or JSONL; the first bad row fails with its location."""
    if fmt not in FORMATS:
        raise DataError(f"unknown data format {fmt!r}; known: {sorted(FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix not in (".json", ".jsonl"):
        raise DataError(f"{path}: expected a .json or .jsonl file")
    records = []
    for where, row in _rows(path):
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object, got {type(row).__name__}")
        for key in FORMATS[fmt]:
            if key not in row:
                raise DataError(f"{where}: missing field {key!r} (format {fmt} needs {list(FORMATS[fmt])})")
            if key != "messages" and not isinstance(row[key], str):
                raise DataError(f"{where}: field {key!r} must be a string, got {type(row[key]).__name__}")
            if key != "messages" and key != "prompt" and not row[key].strip():
                raise DataError(f"{where}: field {key!r} is empty")
        if fmt == "messages":
            _check_messages(row["messages"], where)
        if fmt == "preference" and row["chosen"].strip() == row["rejected"].strip():
            raise DataError(f"{where}: 'chosen' and 'rejected' are identical")
        records.append(row)
    if not records:
        raise DataError(f"{path}: no records")
    return records


def _check_messages(messages, where: str) -> None:
    """A single-turn chat: optional system message, one user message, one non-empty assistant reply."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise DataError(f"{where}: 'messages' must be a list of {{role, content}} objects")
    roles = [m.get("role") for m in messages]
    if roles not in (["user", "assistant"], ["system", "user", "assistant"]):
        raise DataError(f"{where}: expected roles [system,] user, assistant; got {roles}")
    for m in messages:
        if not isinstance(m.get("content"), str) or (m["role"] != "system" and not m["content"].strip()):
            raise DataError(f"{where}: the {m['role']} message needs non-empty string 'content'")


def dedupe(items: Sequence, key: Callable = lambda x: x) -> Tuple[list, int]:
    """``items`` without repeats of ``key`` (the first of each kept, order kept), and how many were dropped: a
    repeated prompt would otherwise land on both sides of the train/held-out split."""
    seen, out = set(), []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            out.append(item)
    return out, len(items) - len(out)


def to_examples(records: List[Dict], fmt: str) -> List[Example]:
    """Instruction examples from records loaded with :func:`load_records`."""
    if fmt == "alpaca":
        return [Example(r["instruction"], r.get("input", "") or "", r["output"]) for r in records]
    if fmt == "prompt_completion":
        return [Example(r["prompt"], "", r["completion"]) for r in records]
    if fmt == "messages":
        return [Example(r["messages"][-2]["content"], "", r["messages"][-1]["content"]) for r in records]
    raise DataError(f"data.format={fmt}: instruction data must be alpaca, prompt_completion or messages")


def instruction_examples(data_cfg, seed: int) -> Tuple[list, list]:
    """Train and held-out instruction examples: the embedded tasks (split by task instance, so no
    held-out task is ever trained on; the training tasks carry mixed-quality demonstrations), or a user's file
    (``data=records data.path=F data.format=alpaca``)."""
    if data_cfg.source == "synthetic":
        items = make_tasks(data_cfg.n_tasks, seed, data_cfg.kinds, min_numbers=data_cfg.min_numbers,
                           max_numbers=data_cfg.max_numbers, max_value=data_cfg.max_value)
        train, val = split(items, data_cfg.val_fraction, data_cfg.max_val)
        return demonstrations(train, data_cfg.preferred_share, data_cfg.mistake_share, seed), val
    if data_cfg.source == "records":
        items = to_examples(load_records(data_cfg.path, data_cfg.format), data_cfg.format)
        return split(items, data_cfg.val_fraction, data_cfg.max_val)
    raise DataError(f"data.source={data_cfg.source}: instruction tuning needs synthetic or records data")


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


def pair_records(path: str | Path) -> List[Pair]:
    """Pairs from a preference file (JSON/JSONL rows with prompt, chosen, rejected; optional how): a user's, or
    the one lab 04 saves."""
    return [Pair(Example(r["prompt"], "", r["chosen"]), r["chosen"], r["rejected"], r.get("how") or "file")
            for r in load_records(path, "preference")]


def pair_rows(pairs: Sequence[Pair]) -> List[Dict[str, str]]:
    """Pairs as preference-file rows (the inverse of :func:`pair_records`); the prompt is the user turn."""
    return [{"prompt": user_turn(p.example), "chosen": p.chosen, "rejected": p.rejected, "how": p.how} for p in pairs]


def preference_splits(data_cfg, seed: int) -> Tuple[List[Pair], List[Pair]]:
    """Train and held-out preference pairs: built from the embedded tasks (the held-out ones are SFT's held-out
    tasks), or read from ``data=records data.format=preference data.path=F``."""
    if data_cfg.source == "records" and data_cfg.format == "preference":
        return split(pair_records(data_cfg.path), data_cfg.val_fraction, data_cfg.max_val)
    train, val = instruction_examples(data_cfg, seed)
    return preference_pairs(train, seed), preference_pairs(val, seed + 1)


def load_hf_folder(path: str | Path, text_field: str = "text") -> List[str]:
    """The ``text_field`` column of a dataset saved with ``Dataset.save_to_disk`` (train split if a dict)."""
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(path))
    except FileNotFoundError:
        raise DataError(f"{path}: not a saved Hugging Face dataset folder") from None
    if isinstance(ds, DatasetDict):
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    if text_field not in ds.column_names:
        raise DataError(f"{path}: no column {text_field!r} (data.text_field); columns: {ds.column_names}")
    return [t for t in ds[text_field] if t and t.strip()]


def load_hub(name: str, text_field: str = "text") -> List[str]:
    """Online only: a hub dataset's train split. Offline (HF_DATASETS_OFFLINE=1) this fails fast."""
    from datasets import load_dataset

    ds = load_dataset(name, split="train")
    return [t for t in ds[text_field] if t and t.strip()]


def pretraining_corpus(data_cfg, seed: int) -> Tuple[List[str], List[str]]:
    """Train and validation documents for ``cfg.data`` (synthetic by default)."""
    if data_cfg.source == "synthetic":
        docs = make_corpus(data_cfg.n_docs, seed, data_cfg.min_numbers, data_cfg.max_numbers, data_cfg.max_value)
    elif data_cfg.source == "text":
        docs = load_texts(data_cfg.path)
    elif data_cfg.source == "hf":
        docs = load_hf_folder(data_cfg.path, data_cfg.text_field)
    else:
        docs = load_hub(data_cfg.path, data_cfg.text_field)
    return split(docs, data_cfg.val_fraction, data_cfg.max_val)
