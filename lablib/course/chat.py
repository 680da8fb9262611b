"""Talk to a checkpoint: ``lab chat RUN_OR_CHECKPOINT`` in a terminal, :func:`widget` in JupyterLab.

The target is a saved model folder (it has ``config.json``), a lab's run folder (its ``artifacts/model``), or a
lab named as ``lab run`` names it (``06 domain=example``: that lab's run folder under the profile). The model
answers with its own chat template, greedily unless a temperature is set, and streams its tokens as they come.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

from ..core import domain
from . import running

HELP = "/reset starts a new conversation, /exit (or Ctrl-D) leaves"


def resolve(target: str, overrides: Sequence[str] = (), runs=None) -> Path:
    """The model folder ``target`` names (see the module docstring), or a one-line :class:`RunError`."""
    path = Path(target).expanduser()
    if not path.exists() and not target.endswith("/"):
        try:
            lab = running.find_lab(target, domain.track_of(overrides, [target]))
        except running.RunError:
            lab = None
        if lab is not None:
            path = running.folder(lab, running.compose(lab, overrides, runs), runs)
    for candidate in (path, path / "artifacts" / "model"):
        if (candidate / "config.json").exists():
            return candidate
    raise running.RunError(f"lab chat: {target}: not a saved model folder (no config.json) nor a lab run with "
                           "artifacts/model" + ("" if path.exists() else f"; {path} does not exist"))


def bot(model_dir: Path, max_new_tokens: int = 96, temperature: float = 0.0):
    """A :class:`lablib.generation.Chat` with the model in ``model_dir``; a model without a chat template is a
    one-line :class:`RunError`."""
    from ..core import generation
    from ..methods import leaderboard

    model, tokenizer = leaderboard.load(leaderboard.Checkpoint(model_dir.name, str(model_dir)))
    try:
        return generation.Chat(model, tokenizer, max_new_tokens=max_new_tokens, temperature=temperature)
    except ValueError as exc:
        raise running.RunError(f"lab chat: {model_dir}: {exc}") from None


def terminal(chat, read: Callable[[str], str] = input, write: Callable[[str], None] | None = None) -> int:
    """A chat loop: read a line, stream the reply; ``/reset`` and ``/exit`` as in :data:`HELP`. Returns the number
    of replies."""
    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    write = write or out
    write(f"({HELP})\n")
    replies = 0
    while True:
        try:
            line = read("you> ").strip()
        except EOFError:
            break
        if line == "/exit":
            break
        if line == "/reset":
            chat.reset()
            write("(a new conversation)\n")
        elif line:
            write("bot> ")
            chat.say(line, on_text=write)
            write("\n")
            replies += 1
    return replies


def widget(chat):
    """A chat box for JupyterLab: a text field, a log of the conversation (the reply streams into it) and a
    reset button."""
    import ipywidgets as w

    log, reset = w.Output(), w.Button(description="reset")
    box = w.Text(placeholder="Ask your model, then press Enter", continuous_update=False)

    def send(change):
        message = change["new"].strip()
        if message:
            box.value = ""
            with log:
                print(f"you> {message}\nbot> ", end="")
                chat.say(message, on_text=lambda t: print(t, end="", flush=True))
                print()

    def restart(_):
        chat.reset()
        log.clear_output()

    box.observe(send, names="value")
    reset.on_click(restart)
    return w.VBox([log, w.HBox([box, reset])])
