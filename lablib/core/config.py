"""Declarative configuration: every lab's config composed by Hydra, checked and loaded read-only.

One schema (:class:`lablib.schema.LabConfig`) types every key a lab may read, so a typo or a wrong type in
``conf/`` or in a command-line override fails *before* any work starts, with the key named. The YAML files in
``conf/`` fill the schema: one file per lab (``conf/lab01.yaml``), groups for ``domain`` (its data and its one
held-out split per profile), ``model``, ``data``, ``train`` and a ``profile`` that scales everything
(``smoke`` for CI, ``cpu`` for students, ``gpu`` for real runs). ``lab show LAB --explain KEY`` names the file
and line that set a key (:func:`explain`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from .schema import LabConfig


class ConfigError(ValueError):
    """A configuration problem, worded as one line that names the key or override at fault."""


ConfigStore.instance().store(name="schema", node=LabConfig)


def home() -> Path:
    """The kit's root folder (holds ``conf/`` and ``labs/``)."""
    env = os.environ.get("LABLIB_HOME")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2]


def conf_dir() -> Path:
    return home() / "conf"


def one_line(exc: BaseException) -> str:
    """An exception as one informative line: the innermost cause's first line (Hydra, OmegaConf and
    bitsandbytes messages span lines and nest causes), with the config key when there is one."""
    while exc.__cause__ is not None and str(exc.__cause__):
        exc = exc.__cause__
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    key = getattr(exc, "full_key", None)
    if key and key not in first:
        first += f" (key: {key})"
    return first


# Keys that were renamed or removed: old key -> what to write now. An override naming one fails in one line.
RENAMED = {
    "ppo.weak_kl_coef": "rl.weak_kl_coef", "ppo.weak_steps": "rl.weak_steps",
    "ppo.grpo_steps": "grpo.steps", "ppo.grpo_generations": "grpo.generations",
    "lora.memory_model": "memory.model", "lora.memory_steps": "memory.steps",
    "data.max_val_docs": "data.val_docs", "train.eval_blocks": "train.eval_items",
    "data.n_tasks": "domain.split.<profile>.tasks (conf/domain/numbers.yaml: one task list per profile, which "
                    "every lab reads)",
    "data.max_val": "data.val_docs (lab 01's held-out documents) or domain.split.<profile>.held_out (every lab's "
                    "held-out tasks, prompts and pairs)",
    "leaderboard.max_new_tokens": "domain.split.<profile>.answer_tokens (one answer length for every held-out "
                                  "evaluation: labs 05-07 and the leaderboard)",
    "track": "domain=... (the track follows from the domain: numbers runs labs/, own and example run labs/own/)",
    "reward.min_accuracy_gain": "reward.min_accuracy (an absolute floor on the held-out accuracy of hand-made "
                                "flaws: an untrained head is not at chance when it happens to favour short answers)",
}


def load(config_name: str, overrides: List[str] | tuple = ()) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra overrides into a validated, read-only config."""
    overrides = [str(o) for o in overrides]
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"override {o!r} is not of the form key=value")
        key = o.partition("=")[0].lstrip("+~")
        if key in RENAMED:
            raise ConfigError(f"override {o!r}: {key} is gone; use {RENAMED[key]}")
    if not (conf_dir() / f"{config_name}.yaml").exists():
        raise ConfigError(f"no config {config_name!r} in {conf_dir()}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides)
        OmegaConf.to_container(cfg, throw_on_missing=True)  # every MISSING key filled
    except Exception as exc:  # Hydra and OmegaConf raise many types; all mean "bad config"
        where = f"overrides {overrides}" if overrides else f"conf/{config_name}.yaml"
        raise ConfigError(f"{where}: {one_line(exc)}") from None
    finally:
        GlobalHydra.instance().clear()
    _check(cfg)
    _check_paths(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


LOCAL_PATHS = {"data.path": ("text", "records", "hf"), "model.path": ("path",)}  # key -> sources naming a local path


DOMAIN_PATHS = ("domain.corpus", "domain.instructions", "domain.pairs")


def local_path(value: str) -> Path:
    """A path the config names: as given (relative to the working folder), or else relative to the kit's root,
    where the shipped example domain lives."""
    path = Path(value).expanduser()
    if not path.is_absolute() and not path.exists() and (home() / path).exists():
        return home() / path
    return path


def _check_paths(cfg: DictConfig) -> None:
    """A local file or folder the config names must exist (hub ids are not checked: they need a network)."""
    named = [key for key, sources in LOCAL_PATHS.items()
             if OmegaConf.select(cfg, key.split(".")[0] + ".source") in sources]
    for key in named + [k for k in DOMAIN_PATHS if OmegaConf.select(cfg, k)]:
        path = local_path(OmegaConf.select(cfg, key))
        if not path.exists():
            raise ConfigError(f"{key}={str(path)!r}: no such file or folder (relative to {Path.cwd()})")


def _check_domain(cfg: DictConfig) -> None:
    """The domain's own checks; your own files go to the own-domain track, in one line that says how."""
    need = _needs(cfg)
    need(cfg.domain.name in ("numbers", "own", "example"), "domain.name", "must be numbers, own or example")
    need(cfg.domain.format in ("alpaca", "prompt_completion", "messages"), "domain.format",
         "must be alpaca, prompt_completion or messages (preference pairs go in domain.pairs)")
    need(0.0 < cfg.domain.judge_share < 1.0, "domain.judge_share", "must be between 0 and 1")
    need(cfg.profile in cfg.domain.split, "domain.split",
         f"has no entry for profile {cfg.profile!r} (conf/domain/{cfg.domain.name}.yaml)")
    for key in ("held_out", "answer_tokens"):
        need(cfg.domain.split[cfg.profile][key] >= 1, f"domain.split.{cfg.profile}.{key}", "must be >= 1")
    if cfg.domain.name == "numbers":
        if cfg.data.source == "records":
            key = "domain.pairs" if cfg.data.format == "preference" else "domain.instructions"
            fmt = "" if cfg.data.format == "preference" else f" domain.format={cfg.data.format}"
            raise ConfigError(f"data=records: your own files run in the own-domain track (SmolLM2, no gold checker): "
                              f"`lab run {cfg.lab} domain=own {key}={cfg.data.path or 'FILE'}{fmt}`")
        need(cfg.domain.split[cfg.profile].tasks >= 2, f"domain.split.{cfg.profile}.tasks", "must be >= 2")
    else:
        need(bool(cfg.domain.instructions), "domain.instructions",
             "domain=own needs your instruction file, e.g. domain.instructions=my.jsonl (or try domain=example)")


def absolute_paths(overrides: List[str] | tuple) -> List[str]:
    """The overrides with local paths made absolute, so that a lab's kernel (which runs in its own folder)
    reads the file the user meant."""
    out = []
    for o in overrides:
        key, eq, value = str(o).partition("=")
        if eq and key.lstrip("+") in (*LOCAL_PATHS, *DOMAIN_PATHS) and value and Path(value).expanduser().exists():
            o = f"{key}={Path(value).expanduser().resolve()}"
        out.append(o)
    return out


def _needs(cfg: DictConfig):
    """``need(ok, key, msg)``: raise the one-line ConfigError ``key=value: msg`` unless ``ok``."""
    def need(ok: bool, key: str, msg: str) -> None:
        if not ok:
            raise ConfigError(f"{key}={OmegaConf.select(cfg, key)!r}: {msg}")
    return need


def _check_model_and_data(cfg: DictConfig) -> None:
    """Value checks of the model, data and tokenizer sections."""
    need = _needs(cfg)
    need(cfg.model.source in ("scratch", "smollm2", "path", "hub", "upstream"), "model.source",
         "must be one of scratch, smollm2, path, hub, upstream")
    need(cfg.model.source not in ("path", "hub") or bool(cfg.model.path), "model.path",
         f"model.source={cfg.model.source} needs model.path")
    need(cfg.model.dtype in ("float32", "bfloat16"), "model.dtype", "must be float32 or bfloat16")
    need(cfg.model.hidden_size % cfg.model.num_heads == 0, "model.hidden_size",
         "must be divisible by model.num_heads")
    need(cfg.data.source in ("synthetic", "text", "hf", "hub", "records"), "data.source",
         "must be one of synthetic, text, hf, hub, records")
    need(cfg.data.source == "synthetic" or bool(cfg.data.path), "data.path",
         f"data.source={cfg.data.source} needs data.path")
    need(0.0 < cfg.data.val_fraction < 1.0, "data.val_fraction", "must be between 0 and 1")
    need(1 <= cfg.data.min_numbers <= cfg.data.max_numbers, "data.min_numbers",
         "must be >= 1 and <= data.max_numbers")
    need(1 <= cfg.data.max_value, "data.max_value", "must be >= 1")
    from .data import TASKS

    need(len(cfg.data.kinds) >= 1 and all(k in TASKS for k in cfg.data.kinds), "data.kinds",
         f"must be a non-empty list of {', '.join(TASKS)}")
    for key in ("data.preferred_share", "data.mistake_share"):
        need(0.0 <= OmegaConf.select(cfg, key) <= 1.0, key, "must be between 0 and 1")
    need(cfg.tokenizer.vocab_size >= 300, "tokenizer.vocab_size", "must be >= 300 (256 bytes + specials)")


def _check(cfg: DictConfig) -> None:
    """Value checks the type system cannot express."""
    _check_domain(cfg)
    _check_model_and_data(cfg)
    need = _needs(cfg)
    need(cfg.train.block_size >= 8, "train.block_size", "must be >= 8")
    need(cfg.train.block_size <= cfg.model.max_position or cfg.model.source != "scratch",
         "train.block_size", f"exceeds model.max_position={cfg.model.max_position}")
    for key in ("train.batch_size", "train.max_steps", "train.grad_accum", "train.eval_every"):
        need(OmegaConf.select(cfg, key) >= 1, key, "must be >= 1")
    need(cfg.train.lr > 0, "train.lr", "must be > 0")
    need(0.0 <= cfg.reward.sampled_share <= 1.0, "reward.sampled_share", "must be between 0 and 1")
    need(cfg.memory.model in ("smollm2", "none"), "memory.model", "must be smollm2 or none")
    need(cfg.memory.steps >= 1, "memory.steps", "must be >= 1")
    need(cfg.memory.batch_size >= 1, "memory.batch_size", "must be >= 1")
    need(cfg.reward.samples >= 1, "reward.samples", "must be >= 1")
    for key in ("ppo.steps", "ppo.batch_size", "ppo.minibatch_size", "ppo.epochs", "ppo.max_new_tokens"):
        need(OmegaConf.select(cfg, key) >= 1, key, "must be >= 1")
    need(cfg.ppo.minibatch_size <= cfg.ppo.batch_size, "ppo.minibatch_size", "must be <= ppo.batch_size")
    need(cfg.ppo.temperature > 0, "ppo.temperature", "must be > 0 (PPO samples from the policy)")
    need(len(cfg.ppo.seeds) >= 1, "ppo.seeds", "needs at least one seed")
    need(cfg.grpo.generations >= 2, "grpo.generations", "must be >= 2 (GRPO compares samples in a group)")
    for key in ("rl.headroom_prompts", "rl.headroom_samples", "rl.best_of_n_prompts"):
        need(OmegaConf.select(cfg, key) >= 1, key, "must be >= 1")
    need(cfg.rl.best_of_n >= 0 and not cfg.rl.best_of_n & (cfg.rl.best_of_n - 1), "rl.best_of_n",
         "must be 0 (skip) or a power of two")
    need(cfg.ppo.ptx_coef >= 0, "ppo.ptx_coef", "must be >= 0 (0: plain PPO)")
    need(cfg.rl.ptx_coef > 0, "rl.ptx_coef", "must be > 0 (gamma of lab 05's PPO-ptx run)")
    need(cfg.ppo.ptx_batch_size >= 1, "ppo.ptx_batch_size", "must be >= 1")
    need(cfg.ppo.ptx_tokens >= 2, "ppo.ptx_tokens", "must be >= 2 (a next-token loss needs two tokens)")
    need(cfg.raft.k >= 1, "raft.k", "must be >= 1 (samples per prompt)")
    need(cfg.raft.mode in ("per_prompt", "global"), "raft.mode", "must be per_prompt or global")
    need(cfg.raft.temperature > 0, "raft.temperature", "must be > 0 (RAFT ranks samples)")
    for spec in cfg.raft.ablation:
        k, _, t = str(spec).partition(":")
        need(k.isdigit() and int(k) >= 1 and t.replace(".", "", 1).isdigit() and float(t) > 0, "raft.ablation",
             f"entry {spec!r} must be K:TEMPERATURE, e.g. 4:0.7")
    for key in ("raft.iterations", "raft.batch_size", "raft.epochs"):
        need(OmegaConf.select(cfg, key) >= 1, key, "must be >= 1")
    if cfg.lora.merge:
        need(any(s.startswith("lora:") for s in cfg.lora.grid) and any(s.startswith("qlora") for s in cfg.lora.grid),
             "lora.grid", f"lab {cfg.lab} needs a lora:R:TARGETS and a qlora4|qlora8:R:TARGETS run (lora.merge: it "
             "saves both, merged)")
    for key in ("dpo.steps", "dpo.batch_size"):
        need(OmegaConf.select(cfg, key) >= 1, key, "must be >= 1")
    need(cfg.dpo.beta > 0, "dpo.beta", "must be > 0")
    for key in ("leaderboard.text_docs", "leaderboard.batch_size"):
        need(OmegaConf.select(cfg, key) >= 1, key, "must be >= 1")
    need(len(cfg.leaderboard.checkpoints) >= 1, "leaderboard.checkpoints", "needs at least one checkpoint")
    need(cfg.ppo.batch_size % cfg.grpo.generations == 0, "grpo.generations",
         "must divide ppo.batch_size (GRPO's batch is whole groups)")


def with_changes(node, **changes) -> DictConfig:
    """A writable copy of a (read-only) config node with some values changed, e.g.
    ``with_changes(cfg, train={"max_steps": 20})`` or ``with_changes(cfg.ppo, kl_coef=0.0)``."""
    return OmegaConf.merge(OmegaConf.to_container(node, resolve=True), changes)


def summary(cfg: DictConfig, keys: Optional[List[str]] = None) -> str:
    """A stable, human-readable dump of (part of) the config: sorted keys, no run-specific paths. ``keys`` may
    name groups (``lora``) or single keys (``lora.grid``)."""
    data: Any = OmegaConf.to_container(cfg, resolve=True)
    data.pop("inputs", None)
    if keys:
        picked: dict = {}
        for key in keys:
            *parents, last = key.split(".")
            source, target = data, picked
            for part in parents:
                source, target = source[part], target.setdefault(part, {})
            target[last] = source[last]
        data = picked
    return OmegaConf.to_yaml(OmegaConf.create(data), sort_keys=True).rstrip()


# --------------------------------------------------------------------------------------------
# Where a key comes from
# --------------------------------------------------------------------------------------------
def explain(config_name: str, overrides: List[str] | tuple, key: str) -> List[tuple]:
    """Every place that sets ``key`` when ``conf/<config_name>.yaml`` is composed with ``overrides``, in the order
    Hydra applies them, as ``(where, value)``: the schema's default (``lablib/core/schema.py:LINE``), each YAML file
    of the defaults list (``conf/...yaml:LINE``) and the command line. The last one wins."""
    from hydra.types import RunMode

    load(config_name, overrides)  # a bad key or override fails here, in one line
    found = [w for w in [_schema_line(key)] if w]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            defaults = GlobalHydra.instance().config_loader().compute_defaults_list(
                config_name, list(overrides), RunMode.RUN)
    finally:
        GlobalHydra.instance().clear()
    for d in defaults.defaults:
        if d.config_path is None or d.config_path.startswith("hydra/") or d.config_path == "schema":
            continue
        prefix = f"{d.package}." if d.package else ""
        if key.startswith(prefix):
            hit = _yaml_line(conf_dir() / f"{d.config_path}.yaml", key[len(prefix):].split("."))
            if hit:
                found.append((f"conf/{d.config_path}.yaml:{hit[0]}", hit[1]))
    for o in overrides:
        k, _, v = str(o).partition("=")
        if k.lstrip("+") == key or key.startswith(k.lstrip("+") + "."):
            found.append(("the command line", f"{k}={v}"))
    return found


def _yaml_line(path: Path, parts: List[str]) -> Optional[tuple]:
    """``(line, value)`` where the YAML file at ``path`` sets the nested key ``parts``, or None."""
    import yaml

    node = yaml.compose(path.read_text())
    for part in parts:
        if not isinstance(node, yaml.MappingNode):
            return None
        match = [(k, v) for k, v in node.value if k.value == part]
        if not match:
            return None
        key_node, node = match[-1]
    text = node.value if isinstance(node, yaml.ScalarNode) else yaml.serialize(node).strip().replace("\n", " ")
    return key_node.start_mark.line + 1, text


def _schema_line(key: str) -> Optional[tuple]:
    """``("lablib/core/schema.py:LINE", default)`` of the schema field ``key``, or None (a key inside a dict)."""
    import dataclasses
    import inspect
    import typing

    from . import schema

    cls, parts = schema.LabConfig, key.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        if part not in fields:
            return None
        hint = typing.get_type_hints(cls)[part]
        if i < len(parts) - 1:
            cls = hint
            continue
        lines, first = inspect.getsourcelines(cls)
        line = first + next(j for j, text in enumerate(lines) if text.strip().startswith(f"{part}:"))
        f = fields[part]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "???")
        return f"lablib/core/schema.py:{line}", str(default)
    return None
