"""lablib: the shared, tested library behind the course labs.

One module per concept: ``config`` (Hydra structured configs), ``data`` (embedded domain and loaders),
``tokenization``, ``models``, ``training`` (pretraining), ``sft``, ``lora`` and ``memory`` (LoRA/QLoRA and
what they save), ``reward`` (reward models), ``rlhf`` (our PPO, TRL's GRPO), ``raft``, ``dpo``,
``evaluation`` and ``leaderboard`` (NLL benchmarks, scores, the chat helper), ``plots``, ``running``
(manifest and papermill runner), ``session`` (what a lab notebook calls first) and ``goldens``/``book``.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline first: never reach for a hub unless asked
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from .session import start  # noqa: E402

__all__ = ["start"]
__version__ = "0.1.0"
