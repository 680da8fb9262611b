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
