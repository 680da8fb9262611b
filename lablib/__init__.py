"""lablib: the shared, tested library behind the course labs, in four layers that build on each other.

* ``lablib.core`` -- what every stage stands on: ``schema`` and ``config`` (the typed keys, composed by Hydra and
  checked), ``domain`` (numbers | your files: the data, the one held-out split, how an answer is scored and how
  checkpoints are ranked), ``data`` (the embedded tasks and corpus), ``files`` (reading a user's files),
  ``tokenization``, ``models``, ``generation``, ``evaluation``, ``training`` (every stage's trainer) and ``plots``.
* ``lablib.methods`` -- the methods the course teaches: ``sft``, ``lora`` and ``memory``, ``reward``, ``ppo`` (ours),
  ``grpo`` and ``dpo`` (TRL's), ``rlvr`` (GRPO on a verifiable reward), ``rl_setting`` (what the RL labs share),
  ``raft``, ``overoptimisation`` and
  ``leaderboard``. They import the core only.
* ``lablib.course`` -- the machinery that runs the course: ``running`` (the manifest and the papermill runner),
  ``session`` (what a lab's first cell calls), ``batch``, ``goldens``, ``book``, ``cli`` (the ``lab`` command), ``cores``
  (one lab command at a time on the cores), ``chat`` and
  ``launch`` (a training stage under torchrun or accelerate).
* ``lablib.grading`` -- ``exercises`` (the checks a student sees) and the grader: releases, the sandbox, the
  data-only wire, verdicts, submissions, scores, gradebooks.

A lab imports what it uses by its short name, ``from lablib import data, sft``: each name below is its module in
its layer (:data:`MODULES`), imported on first use.
"""
import logging
import os
import warnings

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
# Two notices the libraries give on every call, silenced by their message in every process that imports lablib (a
# lab's kernel and the workers it forks for isolated runs): LLM.int8 computes in fp16 by design, so bitsandbytes'
# "MatMul8bitLt: inputs will be cast from torch.float32 to float16" describes the method, not a fault; and TRL still
# reads transformers' renamed `is_gradient_checkpointing`.
logging.getLogger("bitsandbytes.autograd._functions").addFilter(
    lambda record: not str(record.msg).startswith("MatMul8bitLt: inputs will be cast"))
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)



class _Deferred(type(os)):
    """Stands in for a module until one of its attributes is read, then imports it (once) and forwards to it.
    Its spec and file are the real ones, so ``importlib.util.find_spec`` and ``inspect.getmodule`` (which torch
    calls for every custom op it registers) read them without importing it."""

    def __getattr__(self, attr: str):
        import importlib
        import sys

        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


def _deferred(name: str) -> None:
    """Import ``name`` only when first used. PEFT imports bitsandbytes whenever transformers' Trainer is imported
    (``peft.helpers``: ``import bitsandbytes as bnb``), and bitsandbytes imports torch's compiler (``torch._inductor``):
    seconds of every kernel's start (``python -X importtime``; ``bench/run.py --speed``: start-up) for a library only
    QLoRA and 8-bit evaluation use. (``importlib.util.LazyLoader`` is not enough: the first attribute read, by
    whoever reads it mid-import, runs the module, and an error there leaves it half-initialised.)"""
    import importlib.util
    import sys

    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = _Deferred(name)
    stand_in.__spec__, stand_in.__file__ = spec, spec.origin
    sys.modules[name] = stand_in


_deferred("bitsandbytes")


def _record_coverage() -> None:
    """With ``LABLIB_COVERAGE=DIR`` set, every process that imports lablib (a lab's kernel, a worker it forks)
    records which of lablib's lines run, into its own data file in DIR: how the bench proves that `smoke`
    takes the code paths `cpu` does (``lablib.course.coverage``)."""
    folder = os.environ.get("LABLIB_COVERAGE")
    if not folder:
        return
    import coverage

    def start() -> None:
        coverage.Coverage(data_file=os.path.join(folder, ".coverage"), data_suffix=True,
                          source=[os.path.dirname(os.path.abspath(__file__))], auto_data=True).start()

    def restart_in_child() -> None:  # a forked child records into a file of its own, not its parent's
        parent = coverage.Coverage.current()
        if parent is not None:
            parent._auto_save = False
            parent.stop()
        start()

    start()
    os.register_at_fork(after_in_child=restart_in_child)


def save_coverage() -> None:
    """Write this process's coverage now (a multiprocessing worker leaves with ``os._exit``, skipping atexit)."""
    if os.environ.get("LABLIB_COVERAGE"):
        import coverage

        current = coverage.Coverage.current()
        if current is not None:
            current.stop()
            current.save()
            current.start()


_record_coverage()

from .course.session import start  # noqa: E402

# short name -> layer: ``from lablib import sft`` is ``lablib.methods.sft``
MODULES = {**dict.fromkeys(("schema", "config", "domain", "data", "files", "tokenization", "models", "generation",
                            "evaluation", "training", "plots"), "core"),
           **dict.fromkeys(("sft", "lora", "memory", "reward", "ppo", "grpo", "rlvr", "dpo", "rl_setting", "raft",
                            "overoptimisation", "leaderboard"), "methods"),
           **dict.fromkeys(("running", "session", "batch", "goldens", "book", "cli", "launch", "cores", "chat"),
                           "course"),
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
