"""Plots the labs show (matplotlib; each returns its figure)."""
from __future__ import annotations

import matplotlib.pyplot as plt


def loss_curves(history: list, baseline: float | None = None, title: str = "Loss", floor: float | None = None):
    """Train and validation loss per step, with an optional horizontal baseline and entropy floor."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for key, style in (("train_loss", "-"), ("val_loss", "o-")):
        pts = [(r["step"], r[key]) for r in history if key in r]
        if pts:
            ax.plot(*zip(*pts), style, label=key.replace("_", " "), markersize=4)
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label="unigram baseline")
    if floor is not None:
        ax.axhline(floor, color="black", linestyle=":", label="entropy floor (no model goes below)")
    ax.set(xlabel="step", ylabel="loss (nats/token)", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def before_after(before: dict, after: dict, ylabel: str, title: str, labels=("before", "after")):
    """Grouped bars: one pair per key (e.g. per task kind)."""
    keys = list(before)
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    x = range(len(keys))
    ax.bar([i - 0.2 for i in x], [before[k] for k in keys], width=0.4, label=labels[0])
    ax.bar([i + 0.2 for i in x], [after[k] for k in keys], width=0.4, label=labels[1])
    ax.set_xticks(list(x), keys, rotation=20)
    ax.set(ylabel=ylabel, title=title, ylim=(0, 1.05))
    ax.legend()
    fig.tight_layout()
    return fig


def bars(values: dict, ylabel: str, title: str):
    """One horizontal bar per key."""
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(values) + 1.2))
    ax.barh(list(values), list(values.values()))
    ax.invert_yaxis()
    ax.set(xlabel=ylabel, title=title)
    fig.tight_layout()
    return fig


def histogram(values, xlabel: str, title: str, marker: float | None = 0.0):
    """A histogram, with a vertical line at ``marker`` (e.g. margin 0: right of it the pair is ranked right);
    ``values`` a ``{label: values}`` dict draws one per label, over the same bins."""
    groups = {k: list(v) for k, v in values.items()} if isinstance(values, dict) else {None: list(values)}
    every = [v for vs in groups.values() for v in vs]
    lo, hi = (min(every), max(every)) if every else (0.0, 1.0)
    bins = [lo + (hi - lo) * i / 30 for i in range(31)] if hi > lo else 30
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for label, vs in groups.items():
        ax.hist(vs, bins=bins, alpha=0.55 if len(groups) > 1 else 1.0, label=label)
    if marker is not None:
        ax.axvline(marker, color="grey", linestyle="--")
    if len(groups) > 1:
        ax.legend()
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    fig.tight_layout()
    return fig


def by_group(groups: dict, ylabel: str, title: str):
    """One box (with the points over it) per group: e.g. the reward model's scores per gold-reward level."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    keys = list(groups)
    ax.boxplot([groups[k] for k in keys], showfliers=False)
    for i, k in enumerate(keys, 1):
        ax.plot([i] * len(groups[k]), groups[k], ".", alpha=0.3, color="C1")
    ax.set_xticks(range(1, len(keys) + 1), [str(k) for k in keys])
    ax.set(ylabel=ylabel, title=title)
    fig.tight_layout()
    return fig


def curves(history: list, keys, title: str, xlabel: str = "step", x: str = "step"):
    """One small panel per key of ``history`` rows (``{x: value, key: value}``, ``x`` the step by default), one
    line per run in ``history`` when it maps run names to rows."""
    runs = history if isinstance(history, dict) else {"": history}
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, rows in runs.items():
            pts = [(r[x], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), label=name or None)
        ax.set(xlabel=xlabel, title=key.replace("_", " "))
    if len(runs) > 1:
        axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def panels(rows: list, label: str, keys, title: str):
    """One horizontal-bar panel per key, one bar per row (labelled by ``row[label]``), rows in the given order:
    e.g. a leaderboard's gold reward, NLL and speed side by side."""
    fig, axes = plt.subplots(1, len(keys), figsize=(3.3 * len(keys), 0.35 * len(rows) + 1.4), squeeze=False,
                             sharey=True)
    names = [r[label] for r in rows]
    for ax, key in zip(axes[0], keys):
        ax.barh(names, [r[key] for r in rows])
        ax.set(title=key.replace("_", " "))
    axes[0][0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _cell_label(token: str) -> str:
    """A token as a heat-map cell shows it: a special token by its name, spaces as dots, a newline as \\n."""
    if token.startswith("<|") and token.endswith("|>"):
        token = token[2:-2]
    return token.replace(" ", "·").replace("\n", "\\n")[:6]


def token_heatmap(tokens: list, values: dict, title: str):
    """One heat map per key of ``values`` (``{name: rows of per-token numbers}``), a row per response and a cell per
    token, each cell labelled with its token (``tokens``: one list of strings per row). Diverging colours centred
    on 0, so a sign reads at a glance."""
    import numpy as np

    width = max(len(t) for t in tokens)
    fig, axes = plt.subplots(len(values), 1, figsize=(min(0.55 * width + 2.0, 16), 0.42 * len(tokens) * len(values) + 1.2),
                             squeeze=False)
    for ax, (name, rows) in zip(axes[:, 0], values.items()):
        grid = np.full((len(tokens), width), np.nan)
        for i, (toks, row) in enumerate(zip(tokens, rows)):
            grid[i, :len(toks)] = list(row)[:len(toks)]
        limit = float(np.nanmax(np.abs(grid))) or 1.0
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="coolwarm", vmin=-limit, vmax=limit, aspect="auto")
        for i, toks in enumerate(tokens):
            for j, tok in enumerate(toks):
                ax.text(j, i, _cell_label(tok), ha="center", va="center", fontsize=6.5)
        ax.set(title=name, yticks=range(len(tokens)), xticks=range(0, width, max(1, width // 12)), xlabel="response token")
        fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Diagrams: the course's machinery drawn once (boxes at (x, y) in a 10 x 4 frame, arrows between them)
# --------------------------------------------------------------------------------------------
DIAGRAMS = {
    "pipeline": {
        "title": "The course: one model, seven labs",
        "boxes": {"corpus": (0.8, 2, "domain corpus\n(lab 01 data)"), "pre": (2.6, 2, "01 pretraining\nnext-token loss"),
                  "sft": (4.4, 2, "02 SFT\ninstructions"), "lora": (4.4, 0.5, "03 LoRA / QLoRA\nadapters"),
                  "rm": (6.2, 3.4, "04 reward model\npreference pairs"),
                  "rl": (8.0, 2, "05 PPO + KL\n06 RAFT, DPO, GRPO"), "eval": (8.0, 0.5, "07 evaluation\nheld-out tasks")},
        "arrows": [("corpus", "pre"), ("pre", "sft"), ("sft", "lora"), ("sft", "rm"), ("sft", "rl"), ("rm", "rl"),
                   ("rl", "eval"), ("lora", "eval")]},
    "ppo": {
        "title": "One PPO step (lab 05)",
        "boxes": {"prompts": (0.8, 2, "prompts"), "policy": (2.6, 2, "policy pi\n(+ value head)"),
                  "answers": (4.4, 2, "sampled\nanswers"), "rm": (6.2, 3.4, "reward model\nscore"),
                  "ref": (6.2, 2, "reference pi_ref\nKL penalty"), "gae": (8.0, 2, "rewards -> GAE\nadvantages"),
                  "update": (5.3, 0.2, "clipped surrogate\n+ value loss")},
        "arrows": [("prompts", "policy"), ("policy", "answers"), ("answers", "rm"), ("answers", "ref"), ("rm", "gae"),
                   ("ref", "gae"), ("gae", "update"), ("update", "policy")]},
    "lora": {
        "title": "A LoRA layer (lab 03): h = W x + (alpha / r) B A x",
        "boxes": {"x": (0.8, 2, "x\n(d_in)"), "W": (4.0, 3.2, "W  frozen\nd_out x d_in"),
                  "A": (3.0, 0.8, "A  trained\nr x d_in"), "B": (5.2, 0.8, "B  trained, starts at 0\nd_out x r"),
                  "scale": (7.0, 0.8, "x alpha / r"), "sum": (8.4, 2, "h = sum\n(d_out)")},
        "arrows": [("x", "W"), ("x", "A"), ("A", "B"), ("B", "scale"), ("scale", "sum"), ("W", "sum")]},
}


def diagram(name: str):
    """One of :data:`DIAGRAMS` drawn: the course pipeline, the PPO loop or a LoRA layer."""
    from matplotlib.patches import FancyBboxPatch

    spec = DIAGRAMS[name]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.set(xlim=(0, 9.2), ylim=(-0.4, 4.2), title=spec["title"])
    ax.axis("off")
    w, h = 1.5, 0.8
    for x, y, text in spec["boxes"].values():
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc="#e8f0fb", ec="#34598a"))
        ax.text(x, y, text, ha="center", va="center", fontsize=8)
    for a, b in spec["arrows"]:  # from box edge to box edge, along the line between the centres
        (x0, y0, _), (x1, y1, _) = spec["boxes"][a], spec["boxes"][b]
        dx, dy = x1 - x0, y1 - y0
        t = min((w / 2 + 0.1) / abs(dx) if dx else float("inf"), (h / 2 + 0.1) / abs(dy) if dy else float("inf"))
        ax.annotate("", xy=(x1 - t * dx, y1 - t * dy), xytext=(x0 + t * dx, y0 + t * dy),
                    arrowprops=dict(arrowstyle="-|>", color="#34598a", shrinkA=0, shrinkB=0, lw=1.2))
    fig.tight_layout()
    return fig


def pass_at_k(curves: list, title: str):
    """pass@k against k (log scale), one line per ``{"checkpoint", "curve": {k: pass@k}}``."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for c in curves:
        ks = sorted(c["curve"])
        ax.plot(ks, [c["curve"][k] for k in ks], "o-", markersize=3, label=c["checkpoint"])
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k (samples per prompt)", ylabel="pass@k (unbiased)", ylim=(0, 1.02), title=title)
    ax.legend()
    fig.tight_layout()
    return fig
