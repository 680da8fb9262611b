"""The grader's own verdict on each exercise: the submission's exercise cells are defined in a fresh process (the
*exercise process*, sandboxed), and every check runs in the grader's process, calling the student's function
there over a pipe that carries data only (:mod:`lablib.grading.wire`). What comes back is validated against what
the check expects; nothing the exercise process sends is unpickled, imported or run.

In the sandbox the exercise process cannot even import the references an exercise must not call: the
packages transformers, TRL and PEFT and lablib's reference modules are empty there (:data:`HIDDEN`). Outside
it, lablib's profiler (:func:`lablib.exercises.watched`) is the only guard against borrowing, and code in the
same process can switch it off in ways a profiler cannot see (see the instructors page).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, List, Optional

from . import sandbox, wire
from .releases import exercise_sources

PRELUDE = "import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"
HIDDEN_PACKAGES = ("transformers", "trl", "peft")
HIDDEN_MODULES = ("core.evaluation", "core.training", "methods.reward", "methods.ppo", "methods.raft",
                  "methods.leaderboard", "methods.rl_setting", "methods.sft", "methods.lora")


def hidden_paths() -> List[Path]:
    """The files and folders that are empty in the exercise process's sandbox: where the references live."""
    import importlib.util

    from ..core import config

    out = [config.home() / "lablib" / f"{m.replace('.', '/')}.py" for m in HIDDEN_MODULES]
    for name in HIDDEN_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            out += [Path(p) for p in spec.submodule_search_locations]
    return [p for p in out if p.exists()]


def _hide(cmd: List[str]) -> List[str]:
    """bubblewrap arguments (spliced in before the command) that blank :func:`hidden_paths`."""
    extra = []
    for p in hidden_paths():
        extra += ["--tmpfs", str(p)] if p.is_dir() else ["--ro-bind", "/dev/null", str(p)]
    at = cmd.index("--chdir")
    return cmd[:at] + extra + cmd[at:]


# --------------------------------------------------------------------------------------------
# The exercise process (the submission's side of the boundary)
# --------------------------------------------------------------------------------------------
def serve(read_fd: int, write_fd: int, limits: sandbox.Limits) -> int:
    """``python -m lablib.grading exercise R W LIMITS...``: define the exercise cells, then answer calls -- each
    under lablib's profiler -- until told to stop. Nothing here decides a verdict."""
    sandbox.apply(limits)
    from .exercises import Borrowed, watched  # bound before the student's code runs

    channel = wire.Channel(read_fd, write_fd)
    scope: dict = {}
    exec(PRELUDE, scope)
    errors = []
    for i, source in enumerate(channel.recv()):
        try:
            exec(compile(source, f"<exercise cell {i + 1}>", "exec"), scope)
        except BaseException as exc:  # a cell that fails to define is reported with the call that needs it
            hint = " (while grading, the libraries an exercise must not call cannot be imported)" if isinstance(
                exc, ImportError) else ""
            errors.append(f"{type(exc).__name__}: {str(exc).strip()[:120]}{hint}")
    while (msg := channel.recv()) is not None:
        func, name, args = msg
        try:
            if not callable(scope.get(func)):
                raise NameError(f"the exercise cells define no function {func}"
                                + (f" (a cell failed: {errors[0]})" if errors else ""))
            reply = ("ok", watched(scope[func], name)(*args))
        except Borrowed as exc:
            reply = ("borrowed", str(exc))
        except NotImplementedError:
            reply = ("not implemented", "")
        except BaseException as exc:  # anything the student's code raises goes back as its type and message
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reply = ("error", f"{type(exc).__name__}: {first}"[:300])
        try:
            channel.send((*reply, list(args)))
        except wire.WireError as exc:
            channel.send(("error", str(exc)[:300], None))
    return 0


# --------------------------------------------------------------------------------------------
# The grader's side
# --------------------------------------------------------------------------------------------
class Remote:
    """The student's function, living in the exercise process: a call sends the arguments there and brings back
    the result, validated, and the arguments as the function left them (so the checks still see an in-place
    change)."""

    def __init__(self, channel: wire.Channel, func: str, name: str, timeout_s: float):
        self.channel, self.func, self.name, self.timeout_s = channel, func, name, timeout_s

    def __call__(self, *args):
        from .exercises import StudentError

        try:
            self.channel.send((self.func, self.name, list(args)))
            reply = self.channel.recv(self.timeout_s)
        except TimeoutError:
            raise StudentError(f"no answer within {self.timeout_s:g} s") from None
        except (EOFError, OSError):  # (TimeoutError is an OSError: caught above)
            raise StudentError("the process running the exercise died (its memory limit?)") from None
        except wire.WireError as exc:
            raise StudentError(f"{exc}; expected {wire.EXPECTS.get(self.name, 'a tensor')}") from None
        status, payload, after = _reply(reply)
        self._copy_back(args, after)
        if status == "ok":
            try:
                return wire.expect(self.name, payload)
            except wire.WireError as exc:
                raise StudentError(str(exc)) from None
        if status == "borrowed":
            raise AssertionError(payload)
        if status == "not implemented":
            raise NotImplementedError
        raise StudentError(payload if isinstance(payload, str) else "an error it did not describe")

    @staticmethod
    def _copy_back(args: tuple, after: Any) -> None:
        import torch

        from .exercises import StudentError

        if after is None:
            return
        if not isinstance(after, list) or len(after) != len(args):
            raise StudentError("sent back its arguments as something else than it was given")
        for i, (a, b) in enumerate(zip(args, after), 1):
            if not wire.same_kind(a, b):
                raise StudentError(f"argument {i} came back as {wire.describe(b)}, was {wire.describe(a)}")
            if torch.is_tensor(a) and not torch.equal(a, b):
                with torch.no_grad():
                    a.copy_(b)
            elif isinstance(a, list) and a != b:
                a[:] = b


def _reply(reply: Any) -> tuple:
    from .exercises import StudentError

    statuses = ("ok", "borrowed", "not implemented", "error")
    if not (isinstance(reply, tuple) and len(reply) == 3 and reply[0] in statuses):
        raise StudentError(f"answered with {wire.describe(reply)}, not (status, result, arguments)")
    return reply


def recheck(notebook: str | Path, calls: List[tuple], timeout_s: float = 60,
            limits: Optional[sandbox.Limits] = None, sandbox_on: bool | None = None,
            work: str | Path | None = None, uid: Optional[int] = None, workers: int = 1) -> dict:
    """The grader's verdict on each exercise of ``calls`` (``(exercise, function name)``, from the released lab),
    from the submission's ``exercise`` cells defined in an exercise process (sandboxed when ``sandbox_on``, by
    default when the sandbox can start; as ``uid`` when given) whose working folder is ``work``. What the
    student's kernel printed or wrote counts for nothing. The process takes its share of the cores (one of
    ``workers`` graded at once), as the submission's kernel does. Returns ``{exercise: "pass" | "fail: why"}``."""
    import nbformat

    from ..course import running
    from . import exercises

    sources = exercise_sources(nbformat.read(str(notebook), as_version=4))
    work = Path(work or tempfile.mkdtemp(prefix="recheck-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sandbox.hand_over(work, uid)
    limits = limits or sandbox.Limits()
    down, up = os.pipe(), os.pipe()  # grader -> exercise process, exercise process -> grader
    cmd = [sys.executable, "-I", "-m", "lablib.grading", "exercise", str(down[0]), str(up[1]), *limits.to_args()]
    if sandbox.available() if sandbox_on is None else sandbox_on:
        cmd = _hide(sandbox.wrap(cmd, [work], uid=uid))
    proc = subprocess.Popen(cmd, cwd=work, pass_fds=(down[0], up[1]), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=sandbox.environment(work, running.worker_env(workers)))
    os.close(down[0])
    os.close(up[1])
    channel = wire.Channel(up[0], down[1])
    results = {}
    try:
        channel.send(sources)
        for name, func in calls:
            ok, why = exercises.verdict(name, Remote(channel, func, name, timeout_s), watch=False)
            results[name] = "pass" if ok else f"fail: {why}"
    except OSError:  # the process is gone (or stopped reading) before the sources were sent: every exercise fails alike
        results.update({name: "fail: the process running the exercises did not start" for name, _ in calls
                        if name not in results})
    finally:
        try:
            channel.send(None)
        except OSError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        channel.close()
    return results
