"""Reading a user's files: plain text, instruction records (Alpaca, prompt/completion, messages), preference pairs
and saved Hugging Face dataset folders. A malformed row fails as ``file:line: what is wrong``, before any
training; nothing in a file is ever run or unpickled -- JSON and text only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

from .data import DataError, Example, Pair


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


def pair_records(path: str | Path) -> List[Pair]:
    """Pairs from a preference file (JSON/JSONL rows with prompt, chosen, rejected; optional how): a user's, or
    the one lab 04 saves."""
    return [Pair(Example(r["prompt"], "", r["chosen"]), r["chosen"], r["rejected"], r.get("how") or "file")
            for r in load_records(path, "preference")]


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


