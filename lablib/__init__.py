"""lablib: the shared, tested library behind the course labs, in four layers that build on each other.

* ``lablib.core`` -- what every stage stands on: ``schema`` and ``config`` (the typed keys, composed by Hydra and
  checked), ``domain`` (numbers | your files: the data, the one held-out split, how an answer is scored and how
  checkpoints are ranked), ``data`` (the embedded tasks and corpus), ``files`` (reading a user's files),
  ``tokenization``, ``models``, ``generation``, ``evaluation``, ``training`` (every stage's trainer) and ``plots``.
* ``lablib.methods`` -- the methods the course teaches: ``sft``, ``lora`` and ``memory``, ``reward``, ``ppo`` (ours),
  ``grpo`` and ``dpo`` (TRL's), ``rl_setting`` (what the RL labs share), ``raft``, ``overoptimisation`` and
  ``leaderboard``. They import the core only.
* ``lablib.course`` -- the machinery that runs the course: ``running`` (the manifest and the papermill runner),
  ``session`` (what a lab's first cell calls), ``batch``, ``goldens``, ``book``, ``cli`` (the ``lab`` command) and
  ``launch`` (a training stage under torchrun or accelerate).
* ``lablib.grading`` -- ``exercises`` (the checks a student sees) and the grader: releases, the sandbox, the
  data-only wire, verdicts, submissions, scores, gradebooks.

A lab imports what it uses by its short name, ``from lablib import data, sft``: each name below is its module in
its layer (:data:`MODULES`), imported on first use.
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

from .course.session import start  # noqa: E402

# short name -> layer: ``from lablib import sft`` is ``lablib.methods.sft``
MODULES = {**dict.fromkeys(("schema", "config", "domain", "data", "files", "tokenization", "models", "generation",
                            "evaluation", "training", "plots"), "core"),
           **dict.fromkeys(("sft", "lora", "memory", "reward", "ppo", "grpo", "dpo", "rl_setting", "raft",
                            "overoptimisation", "leaderboard"), "methods"),
           **dict.fromkeys(("running", "session", "batch", "goldens", "book", "cli", "launch"), "course"),
           "exercises": "grading"}


def __getattr__(name: str):
    if name not in MODULES:
        raise AttributeError(f"module 'lablib' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f"{__name__}.{MODULES[name]}.{name}")
    globals()[name] = module
    return module


__all__ = ["start", *MODULES]
__version__ = "0.1.0"
