"""Figures of training curves (matplotlib's object API: no pyplot, no global state)."""

from __future__ import annotations

from typing import Mapping, Sequence

from matplotlib.figure import Figure

TRAIN_COLOR, VAL_COLOR = "tab:blue", "tab:orange"  # the stories' blue/orange convention
LR_COLOR = "tab:green"


def curves_figure(history: Mapping[str, Sequence[float]], chance: float | None = None,
                  title: str = "") -> Figure:
    """Loss and accuracy (or MAE), train and validation, with the chance line.

    Parameters
    ----------
    history : mapping
        Metric key -> per-epoch values (``train/loss``, ``val/accuracy`` ...).
    chance : float, optional
        Chance accuracy, drawn as a dashed line on the accuracy panel.
    """
    second = "accuracy" if "val/accuracy" in history else "mae"
    # Fixed margins: constrained layout cost 0.2 s per figure, more than a short run.
    fig = Figure(figsize=(10, 3.6))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.86, wspace=0.3)
    axes = fig.subplots(1, 3 if "lr" in history else 2)
    for ax, metric in zip(axes, ("loss", second)):
        for split, color in (("train", TRAIN_COLOR), ("val", VAL_COLOR)):
            ys = history.get(f"{split}/{metric}")
            if ys:
                ax.plot(range(len(ys)), ys, color=color, label=split)
        if metric == "accuracy" and chance is not None:
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(loc="best", fontsize=8)
    if "lr" in history:
        ax = axes[-1]
        ax.plot(range(len(history["lr"])), history["lr"], color=LR_COLOR)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
    if title:
        fig.suptitle(title)
    return fig
