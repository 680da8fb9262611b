"""The sandbox a submission's code runs in, and the limits it runs under.

With Debian's ``bubblewrap``: no network (a private loopback only), private ``/tmp``, ``/dev/shm``, PID and IPC
namespaces (whatever it starts dies with it), the system, the Python installation, ``lablib/``, ``conf/`` and
the model cache read-only, the upstream labs' artifacts read-only, and its own work folder read-write; the
solution notebooks in ``labs/``, the course's runs and other students' work do not exist in there. A grader
running as root hands the sandbox to an unprivileged user of its own (a uid from :data:`UIDS`, one per
submission running at once, so their process counts are apart), with no capabilities and no way to gain any.
Inside: a cleared environment (:func:`environment`), and :class:`Limits` -- memory, processes, file size --
that :func:`apply` sets in the child; the work folder's size is watched from outside (:class:`Watch`).
"""
from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

UIDS = range(61000, 61064)  # the grader's sandbox users, when it runs as root
TMPFS_BYTES = 512 * 2 ** 20  # the private /tmp and /dev/shm: in memory, so capped
ALLOWED_ENV = ("LANG", "LC_ALL", "TZ", "ATEN_CPU_CAPABILITY", "LABLIB_HOME")  # passed on if set; nothing else is


@dataclass(frozen=True)
class Limits:
    """What one submission may use: memory per process (``RLIMIT_AS``), processes and threads of its user
    (``RLIMIT_NPROC``; not enforced on root, so unsandboxed root grading has none), the largest file it may write
    and the whole work folder (``disk_gb``, watched from outside), and wall time (the caller's timeout)."""
    memory_gb: float = 6.0
    processes: int = 512
    disk_gb: float = 4.0

    def to_args(self) -> List[str]:
        return [f"{k}={v}" for k, v in asdict(self).items()]

    @classmethod
    def from_args(cls, args: Iterable[str]) -> "Limits":
        kinds = {k: type(v) for k, v in asdict(cls()).items()}
        return cls(**{k: kinds[k](v) for k, v in (a.split("=", 1) for a in args)})


def apply(limits: Limits) -> None:
    """Set ``limits`` on this process (its children inherit them): call first thing in a sandboxed child."""
    def cap(kind, value):
        value = int(value)
        hard = resource.getrlimit(kind)[1]
        resource.setrlimit(kind, (value if hard == resource.RLIM_INFINITY else min(value, hard),) * 2)

    cap(resource.RLIMIT_AS, limits.memory_gb * 2 ** 30)
    cap(resource.RLIMIT_FSIZE, limits.disk_gb * 2 ** 30)
    cap(resource.RLIMIT_CORE, 0)
    if os.geteuid() != 0:
        cap(resource.RLIMIT_NPROC, limits.processes)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file-size limit fails with EFBIG instead


# --------------------------------------------------------------------------------------------
# Can it start?
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def problem() -> str:
    """Why the sandbox cannot start here ('' when it can): bubblewrap missing, or refused by the kernel."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing: the sandbox cannot drop root"
    probe = wrap([sys.executable, "-I", "-c", "pass"], [], uid=UIDS[0] if os.geteuid() == 0 else None)
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=60, env=environment(Path("/tmp")))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap did not start ({type(exc).__name__})"
    if done.returncode != 0:
        return f"bubblewrap did not start ({(done.stderr.strip().splitlines() or ['exit ' + str(done.returncode)])[-1]})"
    return ""


def available() -> bool:
    return not problem()


# --------------------------------------------------------------------------------------------
# The command, the user and the environment
# --------------------------------------------------------------------------------------------
def wrap(cmd: List[str], writable: List[Path], readable: Iterable[Path] = (), uid: Optional[int] = None) -> List[str]:
    """``cmd`` inside bubblewrap, seeing what the module docstring lists, run as ``uid`` (root drops to it)."""
    from ..core import config, models

    ro = [Path(p) for p in ("/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc") if Path(p).exists()]
    ro += [Path(sys.base_prefix), Path(sys.prefix), config.home() / "lablib", config.home() / "conf"]
    ro += [p for p in (models.cache_dir(),) if p.exists()] + [Path(p) for p in readable]
    # root keeps the host's user namespace, so that the uid it drops to below is a real, unprivileged one
    unshare = ["--unshare-all"] if uid is None else ["--unshare-ipc", "--unshare-pid", "--unshare-net",
                                                      "--unshare-uts", "--unshare-cgroup-try"]
    args = ["bwrap", *unshare, "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev",
            "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm"]
    bound = {str(p) for p in [*ro, *writable]}
    parents = {str(a) for p in [*ro, *writable] for a in Path(p).parents if str(a) not in ("/", *bound)}
    for a in sorted(parents, key=lambda a: a.count("/")):  # traversable by the sandbox's user (as /root is not)
        args += ["--perms", "0755", "--dir", a]
    for p in dict.fromkeys(ro):
        args += ["--ro-bind", str(p), str(p)]
    for p in writable:
        args += ["--bind", str(p), str(p)]
    args += ["--chdir", str(writable[0]) if writable else "/tmp"]
    if uid is not None:
        args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                 "--inh-caps=-all", "--bounding-set=-all", "--"]
    return args + cmd


@contextmanager
def user():
    """A sandbox uid of its own for one submission (root only; ``None`` otherwise), held by a lock file so that
    submissions graded at once, in threads or in other processes, never share one."""
    if os.geteuid() != 0:
        yield None
        return
    import fcntl

    locks = Path("/tmp/lablib-sandbox-users")
    locks.mkdir(mode=0o700, exist_ok=True)
    for uid in UIDS:
        f = open(locks / str(uid), "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        try:
            yield uid
        finally:
            f.close()
        return
    raise RuntimeError(f"all {len(UIDS)} sandbox users are busy")


def hand_over(folder: Path, uid: Optional[int]) -> None:
    """Give the (new, empty) ``folder`` to ``uid``, so the sandbox's user can write there and nowhere else."""
    if uid is not None:
        os.chown(folder, uid, uid, follow_symlinks=False)


def environment(home: Path, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """A cleared environment: a fixed PATH, ``home`` as HOME (and Jupyter's, matplotlib's and Hugging Face's
    folders in it), offline hub, the model cache, and of the grader's own variables only :data:`ALLOWED_ENV`."""
    from ..core import models

    env = {k: os.environ[k] for k in ALLOWED_ENV if k in os.environ}
    env.update(PATH=f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", HOME=str(home),
               TMPDIR="/tmp", LANG=env.get("LANG", "C.UTF-8"), JUPYTER_RUNTIME_DIR=str(home / ".jupyter" / "runtime"),
               JUPYTER_DATA_DIR=str(home / ".jupyter" / "data"), JUPYTER_CONFIG_DIR=str(home / ".jupyter" / "config"),
               MPLCONFIGDIR=str(home / ".matplotlib"), MPLBACKEND="Agg", HF_HOME=str(home / ".hf"),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               LABLIB_CACHE=str(models.cache_dir()), PYTHONDONTWRITEBYTECODE="1")
    return {**env, **(extra or {})}


# --------------------------------------------------------------------------------------------
# Reading what a submission left behind
# --------------------------------------------------------------------------------------------
def plain_path(base: Path, *parts: str) -> Path:
    """``base/parts...``, checked from outside: no component below ``base`` is a symbolic link, so a submission
    cannot point the grader at a file elsewhere (another student's model, a secret). ``ValueError`` names the
    link; a missing component is fine (the caller finds it missing)."""
    path = Path(base)
    for part in parts:
        if part in ("", ".", "..") or "/" in part:
            raise ValueError(f"{part!r} is not a plain name")
        path = path / part
        if os.path.islink(path):
            raise ValueError(f"{path.relative_to(base)} is a link")
    return path


# --------------------------------------------------------------------------------------------
# The work folder's size, watched from outside
# --------------------------------------------------------------------------------------------
def folder_size(folder: Path, max_entries: int = 200_000) -> int:
    """Bytes under ``folder`` (symbolic links not followed); a folder of over ``max_entries`` entries counts as
    infinitely large."""
    if not folder.is_dir():
        return os.lstat(folder).st_blocks * 512 if os.path.lexists(folder) else 0
    total, entries = 0, 0
    for root, dirs, files in os.walk(folder):
        entries += len(dirs) + len(files)
        if entries > max_entries:
            return 2 ** 62
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


class Watch(threading.Thread):
    """Every ``every`` s, the size of ``folders``; over ``cap`` bytes, the process group ``pgid`` is killed and
    :attr:`tripped` says so."""

    def __init__(self, folders: List[Path], cap: float, pgid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.folders, self.cap, self.pgid, self.every = folders, cap, pgid, every
        self.tripped, self.done = False, threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            if sum(folder_size(f) for f in self.folders) > self.cap:
                self.tripped = True
                try:
                    os.killpg(self.pgid, signal.SIGKILL)
                except OSError:
                    pass
                return

    def stop(self) -> None:
        self.done.set()
        self.join()
