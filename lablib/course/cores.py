"""This machine's cores, one lab command at a time: ``lab run``, ``lab batch`` and ``lab grade`` each claim them
for their lifetime, and say so when another already holds them. Two CPU-bound jobs side by side are not 2x
slower but far worse (OpenMP threads spin-waiting on each other: lab 01 ran 7x slower beside a grading job on 2
cores); ``lab batch`` and ``lab grade`` split the cores between their own workers, which is not this lock's job."""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import Optional

_HELD: dict = {}  # lock path -> the open file holding it, for the life of the process


def lock_path() -> Path:
    return Path(tempfile.gettempdir()) / "lablib-cores.lock"


def claim(what: str, path: Optional[Path] = None) -> Optional[str]:
    """Take the cores for this process (``what``: the command, e.g. ``lab run profile=cpu``). Returns None, or,
    when another process holds them, a line that names it; this process then runs anyway (a warning, not a wait)."""
    path = Path(path or lock_path())
    if str(path) in _HELD:
        return None
    try:
        handle = open(path, "a+")
    except OSError:  # another user's lock file, a read-only /tmp: no claim, and nothing to warn about
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        return (f"note: {holder} is already using this machine's cores; two at once run far slower than one after "
                "the other (OpenMP threads wait on each other): let it finish, or stop it")
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} ({what})")
    handle.flush()
    _HELD[str(path)] = handle
    return None
