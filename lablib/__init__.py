"""lablib: the shared, tested library behind the course labs.

One module per concept: ``config`` (Hydra structured configs), ``data`` (embedded domain and loaders),
``tokenization``, ``models``, ``generation`` (prompt formats, batched generation, the chat helper),
``training`` (every stage's trainer, and pretraining), ``sft``, ``lora`` and ``memory`` (LoRA/QLoRA and what
they save), ``reward`` (reward models), ``ppo`` (ours), ``grpo`` and ``dpo`` (TRL's), ``rl_setting`` (what the
RL labs share), ``raft``, ``evaluation`` and ``leaderboard`` (NLL benchmarks, scores), ``plots``, ``running``
(manifest and papermill runner), ``session`` (what a lab notebook calls first), ``exercises`` (the checks),
``grading`` (releases, the grader), ``goldens`` and ``book``.
"""
import logging
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline first: never reach for a hub unless asked
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Quiet libraries, set before they are imported (importing them just to quiet them costs seconds): no
# "Writing model shards" or "Tokenizing train dataset" bars, no notices such as how resized embeddings are
# initialised. A user's own setting of each variable wins.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# On CPUs with avx512_bf16, bitsandbytes tries to fetch a faster 4-bit kernel from the hub (package `kernels`,
# which we do not install: offline first) and logs a warning when it cannot; its own kernel is used instead.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from .session import start  # noqa: E402

__all__ = ["start"]
__version__ = "0.1.0"
