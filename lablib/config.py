"""Declarative configuration: Hydra structured configs for every lab.

One schema (:class:`LabConfig`) types every key a lab may read, so a typo or a wrong type in
``conf/`` or in a command-line override fails *before* any work starts, with the key named.
The YAML files in ``conf/`` fill the schema: one file per lab (``conf/lab01.yaml``), groups for
``model``, ``data``, ``train`` and a ``profile`` that scales everything (``smoke`` for CI,
``cpu`` for students, ``gpu`` for real runs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A configuration problem, worded as one line that names the key or override at fault."""


@dataclass
class ModelConf:
    source: str = "scratch"  # scratch (built from the keys below) | smollm2 (shipped GGUF) | path | hub
    #                          | upstream (the model an earlier lab saved, cfg.inputs.model)
    path: Optional[str] = None  # a save_pretrained folder (source=path) or a hub id (source=hub)
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_position: int = 256
    dtype: str = "float32"  # float32 | bfloat16
    keep_layers: int = 0  # a pretrained model cut to its first N transformer layers (the own track's smoke); 0: all


@dataclass
class DataConf:
    source: str = "synthetic"  # synthetic | text (plain-text file or folder) | hf (saved dataset folder) | hub
    #                            | records (a JSON/JSONL file of instruction records, see data.format)
    path: Optional[str] = None
    format: str = "alpaca"  # records files: alpaca | prompt_completion | messages | preference
    text_field: str = "text"
    n_docs: int = 2000  # synthetic corpus size
    n_tasks: int = 1000  # synthetic instruction tasks
    kinds: List[str] = field(default_factory=lambda: ["sort_asc", "sort_desc", "max", "min", "reverse", "count"])
    min_numbers: int = 3  # numbers per list
    max_numbers: int = 4
    max_value: int = 9  # values 1..max_value (up to 9: one token each)
    preferred_share: float = 0.3  # SFT demonstrations in the preferred (bare) style; the rest add chatter
    mistake_share: float = 0.1  # SFT demonstrations with a typical mistake
    val_fraction: float = 0.1
    max_val: int = 200  # at most this many held-out documents, tasks or pairs (the tail of the data)


@dataclass
class DomainConf:
    """What the course is about (lablib.domain). ``numbers``: the embedded domain, whose answers code checks (the
    gold reward). ``own``: your files, run by the own-domain track (``labs/own/``) on SmolLM2 -- there is no gold
    checker, so the reward model and a second, held-apart judge stand in for it. ``example``: a small own domain
    shipped in ``labs/own/example`` (houseplant care)."""
    name: str = "numbers"  # numbers | own | example
    corpus: Optional[str] = None  # lab 01: plain text (a .txt file or a folder; one document per line); null: none
    instructions: Optional[str] = None  # labs 02-03: instruction records (JSON or JSONL)
    format: str = "alpaca"  # of the instructions: alpaca | prompt_completion | messages
    pairs: Optional[str] = None  # labs 04-06: preference pairs (prompt, chosen, rejected); null: those labs are skipped
    judge_share: float = 0.5  # share of the training pairs kept apart to train the judge that no optimiser sees


@dataclass
class TokenizerConf:
    vocab_size: int = 2048
    min_frequency: int = 2


@dataclass
class TrainConf:
    block_size: int = 128
    batch_size: int = 16
    grad_accum: int = 1
    max_steps: int = 600
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_items: int = 64  # held-out blocks, examples or pairs the trainer's eval loss uses (final metrics use all)
    save_every: int = 0  # checkpoint every N steps (0: only at the end)
    bf16: bool = False
    threads: int = 0  # torch threads; 0 keeps torch's default
    progress: bool = True


@dataclass
class SFTConf:
    format: str = "chatml"  # chatml (assistant-only loss) | alpaca (prompt/completion, completion-only loss)
    max_length: int = 256  # tokens per example; longer ones are truncated
    packing: bool = False  # pack several examples per row (TRL best-fit decreasing)
    eval_examples: int = 0  # held-out examples scored before/after (0: all)
    max_new_tokens: int = 24
    compare_packing_steps: int = 0  # >0: time this many steps with and without packing
    # Lab 02's check: held-out share of right answers overall and in the weakest kind; null where a profile
    # trains too briefly to learn the tasks (the lab then checks only that SFT helped).
    min_correct: Optional[float] = None
    min_correct_kind: float = 0.0


@dataclass
class LoRAConf:
    r: int = 16  # the adapter's rank
    alpha: int = 32  # the update is scaled by alpha / r
    dropout: float = 0.0
    targets: str = "all-linear"  # attention | all-linear | comma-separated module names
    ranks: List[int] = field(default_factory=lambda: [4, 8, 16])  # the parameter-count table
    # Runs compared on the same data and steps: full | lora:R:TARGETS | qlora4:R:TARGETS | qlora8:R:TARGETS
    grid: List[str] = field(default_factory=lambda: ["full", "lora:4:attention", "lora:16:attention",
                                                     "lora:16:all-linear", "qlora4:16:all-linear",
                                                     "qlora8:16:all-linear"])
    grid_steps: int = 150
    # held-out examples each run is scored on (0: all); the held-out set itself is every lab's (data.max_val)
    eval_examples: int = 0
    isolate: bool = True  # each run in a fresh process, so its peak memory is its own
    merge: bool = False  # save the first LoRA and the first QLoRA run merged into the base (lab 03's artifacts)


@dataclass
class MemoryConf:
    """Lab 03's measured memory runs (lablib.memory): full, LoRA and QLoRA fine-tuning, each in its own process."""
    model: str = "smollm2"  # the model they train: smollm2 | none (skip them; the predictions are still made)
    steps: int = 2  # training steps each (peak memory is reached in the first)


@dataclass
class RewardConf:
    max_length: int = 128  # tokens per conversation; longer pairs are an error, not silently dropped
    center: float = 0.0  # >0: penalise mean(r)^2 so scores stay centred on 0 (TRL center_rewards_coefficient)
    sampled_share: float = 0.5  # share of prompts whose pairs are the SFT policy's own samples, ranked by gold
    samples: int = 4  # samples per prompt, for those pairs and for the RM-vs-gold agreement
    temperature: float = 1.0  # sampling temperature of those samples
    # Lab 04's checks: the training loss over the last quarter of steps must lie min_loss_drop below chance
    # (log 2), and held-out accuracy on hand-made flaws must reach min_accuracy; null where too few pairs.
    min_loss_drop: float = 0.1
    min_accuracy: Optional[float] = 0.8


@dataclass
class PPOConf:
    steps: int = 40  # PPO steps (one batch of rollouts each)
    batch_size: int = 32  # prompts per rollout
    minibatch_size: int = 8
    epochs: int = 2  # optimisation passes over each batch (4 at lr 1e-4 over-fit the RM's quirks: see rl.weak_*)
    lr: float = 5.0e-5
    grad_clip: float = 1.0
    kl_coef: float = 0.2  # beta, the per-token KL penalty against the SFT reference
    adaptive_kl: bool = False  # steer beta toward target_kl (Ziegler et al. 2019)
    target_kl: float = 6.0
    kl_horizon: int = 10000
    kl_stop: float = 30.0  # a step whose KL exceeds this stops training (weights of the last good step kept)
    gamma: float = 1.0
    lam: float = 0.95
    clip: float = 0.2  # policy ratio clip
    clip_value: float = 0.2
    vf_coef: float = 0.1
    temperature: float = 1.0
    max_new_tokens: int = 24
    lora: bool = False  # train a LoRA adapter (cfg.lora) on the policy; the reference is the adapter switched off
    seeds: List[int] = field(default_factory=lambda: [0, 1])  # seeds of the main run (mean and spread reported)
    # Lab 05's check: the mean held-out RM gain over seeds must exceed this; null where a profile is too small
    # for the gain to be measurable (the lab then checks that PPO ran every step within its KL bound).
    min_rm_gain: Optional[float] = 0.0


@dataclass
class RLConf:
    """What the RL labs measure besides training (lablib.rl_setting, lablib.overoptimisation)."""
    headroom_prompts: int = 96  # training prompts for the headroom table ...
    headroom_samples: int = 8  # ... and samples per prompt (K of pass@K)
    best_of_n: int = 64  # the largest n of the best-of-n curve (a power of two; 0: skip)
    best_of_n_prompts: int = 60  # held-out prompts it samples for
    # Lab 05's over-optimisation run: PPO pushed hard against the RM -- this beta, learning rate and epochs ...
    weak_kl_coef: float = 0.0
    weak_lr: float = 1.0e-4
    weak_epochs: int = 4
    weak_steps: int = 0  # ... for this many steps (0: skip)


@dataclass
class GRPOConf:
    """TRL's GRPO beside PPO (lablib.grpo): batch size, temperature and response length are ``ppo``'s, so the two
    see the same samples per step. GRPO takes one optimiser step per batch where our PPO takes
    ``ppo.epochs`` x batch/minibatch, hence its own learning rate and beta."""
    steps: int = 0  # GRPO runs of this many steps (0: skip)
    generations: int = 4  # samples per prompt (a group)
    lr: float = 1.0e-4
    beta: float = 0.1  # the KL penalty against the reference


@dataclass
class RAFTConf:
    iterations: int = 8
    batch_size: int = 64  # prompts per iteration (b)
    k: int = 4  # samples per prompt (K)
    temperature: float = 1.0
    mode: str = "per_prompt"  # per_prompt (best of each prompt's K) | global (best 1/K of the batch)
    epochs: int = 1  # fine-tuning passes over the kept samples per iteration
    lr: float = 1.0e-4
    max_new_tokens: int = 24
    seeds: List[int] = field(default_factory=lambda: [0, 1])
    ablation: List[str] = field(default_factory=lambda: ["2:1.0", "8:1.0", "4:0.7"])  # K:temperature runs
    ablation_iterations: int = 3


@dataclass
class DPOConf:
    steps: int = 150  # DPO steps on lab 04's preference pairs
    batch_size: int = 16  # pairs per step
    lr: float = 1.0e-4
    beta: float = 0.1  # how far from the reference the implicit reward lets the policy move (smaller: further)


@dataclass
class LeaderboardConf:
    # What lab 07 ranks: its inputs by name, smollm2 (shipped, offline), or NAME=PATH (any saved model folder)
    checkpoints: List[str] = field(default_factory=lambda: ["smollm2", "pretrained", "sft", "lora", "qlora", "ppo",
                                                            "raft", "dpo", "grpo"])
    int8: List[str] = field(default_factory=lambda: ["sft"])  # also scored with 8-bit weights (bitsandbytes)
    max_new_tokens: int = 24
    text_docs: int = 100  # fresh plain-text documents for the text NLL
    batch_size: int = 32
    chat: str = "raft"  # the checkpoint the chat helper talks to ("" for none)


@dataclass
class GenerateConf:
    max_new_tokens: int = 40
    prompts: List[str] = field(default_factory=lambda: ["Sorted from smallest to largest,"])


@dataclass
class LabConfig:
    lab: str = MISSING
    profile: str = MISSING
    track: str = "numbers"  # the labs this config belongs to: numbers (labs/) | own (labs/own/)
    seed: int = 0
    domain: DomainConf = field(default_factory=DomainConf)
    model: ModelConf = field(default_factory=ModelConf)
    data: DataConf = field(default_factory=DataConf)
    tokenizer: TokenizerConf = field(default_factory=TokenizerConf)
    train: TrainConf = field(default_factory=TrainConf)
    generate: GenerateConf = field(default_factory=GenerateConf)
    sft: SFTConf = field(default_factory=SFTConf)
    lora: LoRAConf = field(default_factory=LoRAConf)
    reward: RewardConf = field(default_factory=RewardConf)
    memory: MemoryConf = field(default_factory=MemoryConf)
    ppo: PPOConf = field(default_factory=PPOConf)
    rl: RLConf = field(default_factory=RLConf)
    grpo: GRPOConf = field(default_factory=GRPOConf)
    raft: RAFTConf = field(default_factory=RAFTConf)
    dpo: DPOConf = field(default_factory=DPOConf)
    leaderboard: LeaderboardConf = field(default_factory=LeaderboardConf)
    inputs: Dict[str, str] = field(default_factory=dict)  # upstream artifacts, filled by the runner


ConfigStore.instance().store(name="schema", node=LabConfig)


def home() -> Path:
    """The kit's root folder (holds ``conf/`` and ``labs/``)."""
    env = os.environ.get("LABLIB_HOME")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


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
    "data.max_val_docs": "data.max_val", "train.eval_blocks": "train.eval_items",
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
    """The domain and the track agree; your own files go to the own-domain track, in one line that says how."""
    need = _needs(cfg)
    need(cfg.domain.name in ("numbers", "own", "example"), "domain.name", "must be numbers, own or example")
    need(cfg.domain.format in ("alpaca", "prompt_completion", "messages"), "domain.format",
         "must be alpaca, prompt_completion or messages (preference pairs go in domain.pairs)")
    need(0.0 < cfg.domain.judge_share < 1.0, "domain.judge_share", "must be between 0 and 1")
    if cfg.track == "numbers":
        if cfg.data.source == "records":
            key = "domain.pairs" if cfg.data.format == "preference" else "domain.instructions"
            fmt = "" if cfg.data.format == "preference" else f" domain.format={cfg.data.format}"
            raise ConfigError(f"data=records: your own files run in the own-domain track (SmolLM2, no gold checker): "
                              f"`lab run {cfg.lab} domain=own {key}={cfg.data.path or 'FILE'}{fmt}`")
        need(cfg.domain.name == "numbers", "domain", f"lab {cfg.lab} of the numbers track runs domain=numbers only; "
             "run the own-domain track with `lab run LAB domain=own ...` (the runner picks labs/own/)")
    else:
        need(cfg.domain.name != "numbers", "domain", "the own-domain track (labs/own/) needs domain=own or example")
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
    for key in ("leaderboard.max_new_tokens", "leaderboard.text_docs", "leaderboard.batch_size"):
        need(OmegaConf.select(cfg, key) >= 1, key, "must be >= 1")
    need(len(cfg.leaderboard.checkpoints) >= 1, "leaderboard.checkpoints", "needs at least one checkpoint")
    need(cfg.ppo.batch_size % cfg.grpo.generations == 0, "grpo.generations",
         "must divide ppo.batch_size (GRPO's batch is whole groups)")


def with_changes(node, **changes) -> DictConfig:
    """A writable copy of a (read-only) config node with some values changed, e.g.
    ``with_changes(cfg, train={"max_steps": 20})`` or ``with_changes(cfg.ppo, kl_coef=0.0)``."""
    return OmegaConf.merge(OmegaConf.to_container(node, resolve=True), changes)


def summary(cfg: DictConfig, keys: Optional[List[str]] = None) -> str:
    """A stable, human-readable dump of (part of) the config: sorted keys, no run-specific paths."""
    data: Any = OmegaConf.to_container(cfg, resolve=True)
    data.pop("inputs", None)
    if keys:
        data = {k: data[k] for k in keys}
    return OmegaConf.to_yaml(OmegaConf.create(data), sort_keys=True).rstrip()
