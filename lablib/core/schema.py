"""The schema: every key a lab may read, typed (Hydra structured configs). ``conf/`` fills it; :mod:`lablib.config`
composes, checks and loads it. A typo or a wrong type in ``conf/`` or in an override fails before any work starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import MISSING


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
    n_docs: int = 2000  # synthetic corpus size (the task count is the domain's: domain.split.<profile>.tasks)
    kinds: List[str] = field(default_factory=lambda: ["sort_asc", "sort_desc", "max", "min", "reverse", "count"])
    min_numbers: int = 3  # numbers per list
    max_numbers: int = 4
    max_value: int = 9  # values 1..max_value (up to 9: one token each)
    preferred_share: float = 0.3  # SFT demonstrations in the preferred (bare) style; the rest add chatter
    mistake_share: float = 0.1  # SFT demonstrations with a typical mistake
    val_fraction: float = 0.1  # the share of the data held out, up to the domain's domain.split.<profile>.held_out
    val_docs: int = 200  # lab 01 (numbers track): at most this many held-out corpus documents (the tail)


@dataclass
class SplitConf:
    """One profile's split of a domain (``domain.split.<profile>``), which every lab of that profile reads."""
    tasks: int = 0  # the numbers domain: how many tasks are generated (own files: the file's rows)
    held_out: int = 0  # at most this many held-out tasks, prompts or pairs
    # Every evaluation answer (the held-out answers that win rates, RL tables and the leaderboard score) is greedy
    # and at most this many new tokens: one length for every method, so no gain is a change of where answers stop.
    # Training rollouts keep their own lengths (ppo.max_new_tokens, raft.max_new_tokens).
    answer_tokens: int = 24


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
    split_seed: int = 0  # your files: the held-out rows are drawn with this seed (the numbers domain: cfg.seed)
    near_duplicate: float = 0.8  # your files: a training prompt this close to a held-out one (word-set Jaccard) is dropped
    split: Dict[str, SplitConf] = field(default_factory=dict)  # per profile: the one held-out split of the domain


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
    # The adapter of `ppo.lora` (lab 03's grid names each run's rank and targets itself, with alpha = 2r)
    r: int = 16  # the adapter's rank
    alpha: int = 32  # the update is scaled by alpha / r
    dropout: float = 0.0  # every adapter's, the grid's too
    targets: str = "all-linear"  # attention | all-linear | comma-separated module names
    ranks: List[int] = field(default_factory=lambda: [4, 8, 16])  # the parameter-count table
    # Runs compared on the same data and steps: full | lora:R:TARGETS | qlora4:R:TARGETS | qlora8:R:TARGETS
    grid: List[str] = field(default_factory=lambda: ["full", "lora:4:attention", "lora:16:attention",
                                                     "lora:16:all-linear", "qlora4:16:all-linear",
                                                     "qlora8:16:all-linear"])
    grid_steps: int = 150
    # held-out examples each run is scored on (0: all); the held-out set itself is every lab's (domain.split)
    eval_examples: int = 0
    isolate: bool = True  # each run in a fresh process, so its peak memory is its own
    # save the LoRA and the QLoRA run with the lowest held-out response loss, merged into the base (lab 03's
    # artifacts, lab 07's "lora" and "qlora" rows)
    merge: bool = False


@dataclass
class MemoryConf:
    """Lab 03's measured memory runs (lablib.memory): full, LoRA and QLoRA fine-tuning, each in its own process."""
    model: str = "smollm2"  # the model they train: smollm2 | none (skip them; the predictions are still made)
    steps: int = 2  # training steps each: the second holds the optimizer state and the activations at once
    # examples per step: small, so that weights, gradients and optimizer state (what the methods change) are
    # most of the peak rather than activations (which LoRA does not shrink)
    batch_size: int = 1


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
    # PPO-ptx (InstructGPT): gamma times the next-token loss of a batch of pretraining text joins every update (0: off)
    ptx_coef: float = 0.0
    ptx_batch_size: int = 4  # pretraining documents per update ...
    ptx_tokens: int = 128  # ... each cut to this many tokens
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
    ptx_coef: float = 1.0  # lab 05's PPO-ptx run: its ppo.ptx_coef (gamma), one run on lab 01's documents


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
class RLVRConf:
    """RL with verifiable rewards (lablib.rlvr, lab 05): GRPO on the gold checker's correctness verdict, with
    ``grpo``'s group size and beta; held-out pass@k of sampled answers before and after."""
    steps: int = 0  # GRPO steps per seed (0: skip)
    seeds: List[int] = field(default_factory=lambda: [0, 1])
    lr: float = 3.0e-4  # GRPO's learning rate here (grpo.lr is lab 05's GRPO section's)
    samples: int = 64  # sampled answers per held-out prompt: pass@k for k = 1 ... samples
    temperature: float = 1.0
    batch_size: int = 128  # prompts per generation batch while sampling them


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
                                                            "ppo_ptx", "raft", "dpo", "grpo"])
    int8: List[str] = field(default_factory=lambda: ["sft"])  # also scored with 8-bit weights (bitsandbytes)
    text_docs: int = 100  # fresh plain-text documents for the text NLL
    batch_size: int = 32
    chat: str = "raft"  # the checkpoint the chat helper talks to ("" for none)
    pass_k: List[str] = field(default_factory=lambda: ["sft", "ppo"])  # sampled for pass@k curves (lab 07, section 4)
    pass_samples: int = 16  # answers per held-out prompt for pass@k (k = 1 ... pass_samples)
    pass_temperature: float = 1.0  # the sampling temperature of those answers (the RL labs' rollouts sample at 1)


@dataclass
class GenerateConf:
    max_new_tokens: int = 40
    prompts: List[str] = field(default_factory=lambda: ["Sorted from smallest to largest,"])


@dataclass
class LabConfig:
    lab: str = MISSING
    profile: str = MISSING
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
    rlvr: RLVRConf = field(default_factory=RLVRConf)
    raft: RAFTConf = field(default_factory=RAFTConf)
    dpo: DPOConf = field(default_factory=DPOConf)
    leaderboard: LeaderboardConf = field(default_factory=LeaderboardConf)
    inputs: Dict[str, str] = field(default_factory=dict)  # upstream artifacts, filled by the runner


