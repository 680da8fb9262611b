"""Workers: run a function in a fresh process forked from a server that has already imported the training stack,
and measure the resident memory it needed. Lab 03's isolated runs and memory lesson use it."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path


def rss_field(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def release_freed() -> None:
    """Hand memory that was freed but kept by the C allocator back to the system (glibc ``malloc_trim``), so that
    resident memory counts live data: a quantized load frees its full-width copy, which would otherwise stay
    resident and be reused by training, hiding part of training's own peak."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def steady_allocator() -> None:
    """Make resident memory follow live data (glibc ``mallopt``): one allocator arena for every thread, and blocks
    of 1 MiB or more mapped from the system and handed back when freed, with no dynamic threshold. Without it a
    training peak depends on which thread freed which tensor into which arena: lab 03's 8-bit peak ranged 0.48 to
    0.61 GiB over six runs; with it, 0.457 to 0.462 over four."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 1)  # M_ARENA_MAX
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD (setting it also ends its dynamic adjustment)
    except (OSError, AttributeError):
        pass


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from the current size
    except OSError:
        pass


def _measured_call(fn, args, kwargs):
    reset_peak()
    start = rss_field("VmRSS")
    try:
        result = fn(*args, **kwargs)
    finally:
        from .. import save_coverage

        save_coverage()  # a pool worker ends with os._exit: its coverage (if recorded) is saved here
    return result, rss_field("VmHWM") - start


# What the fork server imports once, so that each worker starts in a fraction of a second with the training stack
# (TRL, PEFT, bitsandbytes) already loaded, instead of importing it again for seconds per run.
PRELOAD = ("lablib.methods.lora", "lablib.methods.sft", "trl.trainer.sft_trainer", "bitsandbytes.nn")


def isolated(fn, *args, preload=PRELOAD, **kwargs):
    """``(fn(*args, **kwargs), peak bytes above the worker's starting size)``, run in a fresh worker process
    forked from a server that has already imported ``preload`` (the first call of a process starts the server;
    later calls reuse it). ``fn`` must be importable (module-level)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_measured_call, (fn, args, kwargs))
