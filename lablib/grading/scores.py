"""Headline metrics the grader computes itself, from a submission's saved weights: the numbers a gradebook
shows and ranks by, which the student's ``metrics.json`` cannot set.

Only the weights are taken from the submission, and only as data: a folder of plain files (no links) among
:data:`FILES`, ``model.safetensors`` read with ``use_safetensors=True`` and no remote code, and a
``config.json`` whose architecture must be the one the lab trains (:func:`load`). The tokenizer, the held-out
data and the reward model are the grader's own, built from the lab's config and the course's upstream
artifacts: a submission cannot pick what its loss is measured in. Labs without an entry in :data:`SCORED`
have self-reported metrics only (never used to rank).
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path
from typing import Callable, Dict, Optional

from .sandbox import plain_path

# lab -> (what the grader computes, from which artifact); the metric names are the lab's own headline keys
SCORED: Dict[str, Dict[str, str]] = {
    "01": {"val_loss": "model", "bits_per_byte": "model"},
    "02": {"correct": "model", "gold_reward": "model", "nll": "model"},
    "04": {"pair_accuracy": "reward_model"},
    "05": {"gold_reward": "model"},
    "06": {"raft_gold_reward": "model", "dpo_gold_reward": "dpo_model"},
    # the own-domain track (the grader's run of the domain the class was given, by default the example)
    "own/01": {"bits_per_byte": "model"},
    "own/02": {"nll": "model", "bits_per_byte": "model"},
    "own/04": {"rm_accuracy": "reward_model"},
    "own/05": {"win_rate": "model"},
}
WHY_NOT = {"03": "its headline is the best of several adapter runs, of which only one is saved",
           "07": "it ranks the course's own checkpoints, the same for every student",
           "own/03": "its headline is the best of several adapter runs, of which only one is saved",
           "own/06": "its win rates are means over seeds, of which only the first seed's models are saved",
           "own/07": "it ranks the course's own checkpoints, the same for every student"}
FILES = {"config.json", "generation_config.json", "model.safetensors"}  # all else in the folder is ignored
ARCHITECTURE = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
                "num_key_value_heads", "tie_word_embeddings")
_LOCK = threading.Lock()  # fast tokenizers refuse concurrent use from threads; scoring is short


class ArtifactError(ValueError):
    """Saved weights the grader will not read, worded as one line."""


def copy_weights(src: Path, dst: Path, cap_bytes: int) -> Path:
    """The files of :data:`FILES` in ``src`` copied to ``dst`` (the grader's): ``src`` and each file must be a
    real folder and regular files, not links, together at most ``cap_bytes``."""
    st = os.lstat(src) if os.path.lexists(src) else None
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise ArtifactError(f"no saved {src.name} folder" if st is None else f"{src.name} is not a plain folder")
    dst.mkdir(parents=True)
    total = 0
    for name in sorted(FILES):
        path = src / name
        if not os.path.lexists(path):
            continue
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise ArtifactError(f"{src.name}/{name} is not a plain file (a link?)")
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
            total += os.fstat(f.fileno()).st_size
            if total > cap_bytes:
                raise ArtifactError(f"{src.name} holds over {cap_bytes / 2 ** 20:.0f} MB")
            with open(dst / name, "wb") as out:
                shutil.copyfileobj(f, out)
    for need in ("config.json", "model.safetensors"):
        if not (dst / need).exists():
            raise ArtifactError(f"{src.name} has no {need}")
    return dst


def load(folder: Path, reference: dict, kind: str = "causal-lm"):
    """The model in ``folder`` (from :func:`copy_weights`), if its ``config.json`` has ``reference``'s
    architecture; float32, safetensors only, no remote code."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    try:
        seen = json.loads((folder / "config.json").read_text())
    except (ValueError, UnicodeDecodeError):
        raise ArtifactError(f"{folder.name}/config.json is not JSON") from None
    if not isinstance(seen, dict) or "auto_map" in seen or "quantization_config" in seen:
        raise ArtifactError(f"{folder.name}/config.json asks for code or quantization the grader does not run")
    for key in ARCHITECTURE + ("vocab_size",):
        if key in reference and seen.get(key) != reference[key]:
            raise ArtifactError(f"{folder.name}: {key} is {seen.get(key)!r}, the lab trains {reference[key]!r}")
    config = AutoConfig.for_model(**{k: v for k, v in reference.items() if k != "architectures"})
    cls = AutoModelForSequenceClassification if kind == "reward" else AutoModelForCausalLM
    if kind == "reward":
        config.num_labels = 1
    try:
        return cls.from_pretrained(str(folder), config=config, use_safetensors=True, trust_remote_code=False,
                                   dtype=torch.float32).eval()
    except Exception as exc:  # a truncated or mismatched file: say which, in one line
        raise ArtifactError(f"{folder.name}: the weights do not load ({type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0][:100] if str(exc).strip() else ''})") from None


def _config_of(path) -> dict:
    return json.loads(Path(path, "config.json").read_text())


# --------------------------------------------------------------------------------------------
# Per lab: the grader's own tokenizer, references and held-out data, prepared once for a class
# --------------------------------------------------------------------------------------------
def _lab01(cfg):
    from ..core import domain, evaluation, models, tokenization

    train_docs, val_docs = domain.corpus(cfg)
    if cfg.model.source == "scratch":
        tokenizer = tokenization.train_bpe(train_docs, cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
        reference = models.build_scratch(cfg.model, len(tokenizer), tokenizer).config.to_dict()
    else:
        path = models.start_path(cfg) if cfg.model.source != "smollm2" else models.smollm2_dir()
        tokenizer, reference = models.load_tokenizer(path), _config_of(path)
    blocks = tokenization.pack(tokenization.encode_docs(tokenizer, val_docs), cfg.train.block_size,
                               tokenizer.eos_token_id)
    return reference, lambda m: {"val_loss": evaluation.lm_loss(m["model"], blocks),
                                 "bits_per_byte": evaluation.bits_per_byte(m["model"], tokenizer, val_docs)}


def _lab02(cfg):
    from ..core import domain, evaluation, generation, models

    base = models.start_path(cfg)
    tokenizer = models.load_tokenizer(base)
    generation.use_chatml(None, tokenizer)
    reference = {**_config_of(base), "vocab_size": len(tokenizer)}
    val = domain.instructions(cfg).val[: cfg.sft.eval_examples or None]

    def score(m):
        responses = generation.respond(m["model"], tokenizer, val, cfg.sft.format, cfg.sft.max_new_tokens)
        prompts = [generation.prompt_text(e, cfg.sft.format, tokenizer) for e in val]
        nll = evaluation.response_nll(m["model"], tokenizer, prompts, [e.output for e in val])["nll"]
        s = evaluation.task_scores(val, responses)
        return {"correct": s["correct"], "gold_reward": s["gold_reward"], "nll": nll}
    return reference, score


def _lab04(cfg):
    from ..core import models
    from ..methods import reward

    _, val_pairs, _, _ = reward.course_pairs(cfg)
    tokenizer = models.load_tokenizer(cfg.inputs.model)

    def score(m):
        m["reward_model"].config.pad_token_id = tokenizer.pad_token_id
        return {"pair_accuracy": reward.pair_accuracy(m["reward_model"], tokenizer, val_pairs)["accuracy"]}
    return _config_of(cfg.inputs.model), score


def _rl(cfg, keys: Dict[str, str]):
    from ..methods import rl_setting

    rl = rl_setting.Setting(cfg)

    def score(m):
        out = {}
        for metric, artifact in keys.items():
            result = rl.evaluate(m[artifact])
            out[metric] = result["gold_reward"]
        return out
    return _config_of(cfg.inputs.model), score


def _own01(cfg):
    from ..core import domain, evaluation, models

    base, tokenizer = models.load_pretrained(cfg.model)  # SmolLM2 (cut to model.keep_layers under smoke)
    docs = domain.corpus(cfg)
    if docs is None:
        raise ArtifactError("the domain has no corpus: lab 01 trains nothing")
    return base.config.to_dict(), lambda m: {"bits_per_byte": evaluation.bits_per_byte(m["model"], tokenizer, docs[1])}


def _own02(cfg):
    from ..core import domain, generation, models

    base = models.start_path(cfg)
    tokenizer = models.load_tokenizer(base)
    generation.use_chatml(None, tokenizer)
    val = domain.instructions(cfg).val

    def score(m):
        s = domain.reference_scores(m["model"], tokenizer, val, cfg.sft.format, cfg.sft.max_new_tokens)
        return {"nll": s["nll"], "bits_per_byte": s["bits_per_byte"]}
    return {**_config_of(base), "vocab_size": len(tokenizer)}, score


def _own04(cfg):
    from ..core import domain, models
    from ..methods import reward

    tokenizer = models.load_tokenizer(cfg.inputs.model)
    val = reward.fit_length(domain.pairs(cfg).val, tokenizer, cfg.reward.max_length)[0]

    def score(m):
        m["reward_model"].config.pad_token_id = tokenizer.pad_token_id
        return {"rm_accuracy": reward.pair_accuracy(m["reward_model"], tokenizer, val)["accuracy"]}
    return _config_of(cfg.inputs.model), score


def _own05(cfg):
    from ..methods import rl_setting

    rl = rl_setting.Setting(cfg)
    return _config_of(cfg.inputs.model), lambda m: {"win_rate": rl.evaluate(m["model"])["win"]["rate"]}


PREPARE: Dict[str, Callable] = {"01": _lab01, "02": _lab02, "04": _lab04,
                                "05": lambda cfg: _rl(cfg, SCORED["05"]), "06": lambda cfg: _rl(cfg, SCORED["06"]),
                                "own/01": _own01, "own/02": _own02, "own/04": _own04, "own/05": _own05}


def scorer(lab, cfg, cap_mb: float = 4096) -> Optional[Callable[[Path], dict]]:
    """``fn(run folder) -> {metric: value}`` for lab ``lab`` under ``cfg`` (the grader's own composition),
    or None where the lab's metrics are self-reported only. ``fn`` raises :class:`ArtifactError` (one line) for
    weights it will not read."""
    if lab.key not in SCORED:
        return None
    reference, score = PREPARE[lab.key](cfg)
    kinds = {"reward_model": "reward"}

    def fn(run: Path) -> dict:
        """The metrics of the run folder ``run``'s saved weights (``run/artifacts/<name>``, no links on the way)."""
        with tempfile.TemporaryDirectory(prefix="lablib-score-") as tmp:
            loaded = {}
            for name in sorted(set(SCORED[lab.key].values())):
                try:
                    src = plain_path(Path(run).parent, Path(run).name, "artifacts", name)
                except ValueError as exc:
                    raise ArtifactError(str(exc)) from None
                copied = copy_weights(src, Path(tmp) / name, int(cap_mb * 2 ** 20))
                loaded[name] = load(copied, reference, kinds.get(name, "causal-lm"))
            with _LOCK:
                return {k: float(v) for k, v in score(loaded).items()}
    return fn
