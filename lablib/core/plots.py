"""Plots the labs show (matplotlib; each returns its figure)."""
from __future__ import annotations

import matplotlib.pyplot as plt


def loss_curves(history: list, baseline: float | None = None, title: str = "Loss"):
    """Train and validation loss per step, with an optional horizontal baseline."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for key, style in (("train_loss", "-"), ("val_loss", "o-")):
        pts = [(r["step"], r[key]) for r in history if key in r]
        if pts:
            ax.plot(*zip(*pts), style, label=key.replace("_", " "), markersize=4)
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label="unigram baseline")
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
    """A histogram, with a vertical line at ``marker`` (e.g. margin 0: right of it the pair is ranked right)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.hist(list(values), bins=30)
    if marker is not None:
        ax.axvline(marker, color="grey", linestyle="--")
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
