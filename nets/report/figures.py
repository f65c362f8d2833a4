"""``report.png``: one panel pair per config, ranked (loss above, accuracy or MAE
below, train blue, validation orange, chance accuracy or the baseline MAE dashed grey;
the learning rate in green under them when a run's schedule adapts it; configs that
differ only by ``seed`` drawn as mean ± std bands). ``plots.py`` draws one run's curves.

matplotlib's object API only: no pyplot, no global state.
"""

from __future__ import annotations

import math
import textwrap
from typing import Sequence

import numpy as np

from nets.report.model import (Report, RunRow, band, config_label, fmt_pm, reference_lines,
                               second_metric)
from nets.report.plots import LR_COLOR, TRAIN_COLOR, VAL_COLOR

DEFAULT_TOP = 24             # configs in the picture unless told


def _draw_lr(ax, runs: Sequence[RunRow]) -> None:
    """Each run's learning rate (seeds of one config can cut at different epochs)."""
    from matplotlib.ticker import NullFormatter

    curves = [r.curves["lr"] for r in runs if "lr" in r.curves]
    for s, v in curves:
        ax.plot(s, v, color=LR_COLOR, linewidth=1.0 if len(curves) == 1 else 0.7,
                alpha=1.0 if len(curves) == 1 else 0.6)
    pos = np.concatenate([v[np.isfinite(v) & (v > 0)] for _, v in curves] or [np.zeros(0)])
    if pos.size:  # rates read in decades; at least one decade, so a flat rate is a level
        lo, hi = float(pos.min()), float(pos.max())
        pad = max(1.0, math.sqrt(10 * lo / hi)) * 1.3
        ax.set_yscale("log")
        ax.set_ylim(lo / pad, hi * pad)
        ax.yaxis.set_minor_formatter(NullFormatter())  # decades only: 2e-1, 3e-1 ... crowd


def _draw(ax, runs: Sequence[RunRow], metric: str) -> None:
    for split, color in (("train", TRAIN_COLOR), ("val", VAL_COLOR)):
        key = f"{split}/{metric}"
        curves = [r.curves[key] for r in runs if key in r.curves]
        if not curves:
            continue
        if len(curves) == 1:
            s, v = curves[0]
            ax.plot(s, v, color=color, linewidth=1.2)
            continue
        steps, mean, std, _ = band(curves)
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.25, linewidth=0)
        ax.plot(steps, mean, color=color, linewidth=1.2)


def grid_figure(report: Report, top: int = DEFAULT_TOP):
    """One panel pair per config in ranked order (``top`` of them; 0 = all): loss above,
    accuracy (or MAE) below, and the learning rate under them when a run has its curve
    (adaptive schedules); ``None`` when no run has a curve."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    groups = [g for g in report.groups if any(r.curves for r in g.runs)]
    total = len(groups)
    if top and top > 0:
        groups = groups[:top]
    if not groups:
        return None
    n = len(groups)
    cols = min(n, max(1, math.ceil(math.sqrt(n * 1.4))), 8)
    rows = math.ceil(n / cols)
    with_lr = any("lr" in r.curves for g in groups for r in g.runs)
    w_in, h_in = max(3.1 * cols + 0.4, 7.0), (3.9 if with_lr else 3.0) * rows + 1.2
    fig = Figure(figsize=(w_in, h_in), dpi=100)
    fig.subplots_adjust(left=0.6 / w_in, right=1 - 0.15 / w_in, bottom=0.45 / h_in,
                        top=1 - 1.05 / h_in, wspace=0.28, hspace=0.3 if with_lr else 0.42)
    outer = fig.add_gridspec(rows, cols)
    unit = any(len(g.runs) > 1 for g in groups)
    drawn: set[str] = set()
    for i, g in enumerate(groups):
        r, c = divmod(i, cols)
        inner = outer[r, c].subgridspec(3 if with_lr else 2, 1, hspace=0.06,
                                        height_ratios=[1, 1, 0.7] if with_lr else None)
        ax_l = fig.add_subplot(inner[0])
        ax_s = fig.add_subplot(inner[1], sharex=ax_l)
        ax_r = fig.add_subplot(inner[2], sharex=ax_l) if with_lr else None
        if ax_r is not None:
            _draw_lr(ax_r, g.runs)
        second = second_metric(g.runs)
        _draw(ax_l, g.runs, "loss")
        _draw(ax_s, g.runs, second)
        finite = np.concatenate([v[np.isfinite(v)] for rr in g.runs
                                 for k, (_, v) in rr.curves.items() if k.endswith("/loss")]
                                or [np.zeros(0)])
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax_l.set_yscale("log")
        dashed, dotted = reference_lines(g.runs, second)
        if dashed is not None:
            ax_s.axhline(dashed, color="grey", linestyle="--", linewidth=0.9)
            drawn.add("chance" if second == "accuracy" else "baseline")
        if dotted is not None:
            ax_s.axhline(dotted, color="grey", linestyle=":", linewidth=0.9)
            drawn.add("majority")
        ax_s.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        if second == "accuracy":
            ax_s.set_ylim(-0.02, 1.02)
        label = textwrap.shorten(config_label(report, g, short=True), 90, placeholder="…")
        label = "\n".join(textwrap.wrap(f"#{g.rank} {label}", 46)[:2])
        value = fmt_pm(g.mean, g.std, g.n)
        n_txt = f" (n={len(g.runs)})" if len(g.runs) > 1 else ""
        # Text rather than set_title: titles are re-positioned against every tick label
        # at draw time, which cost more than the curves on a big grid.
        ax_l.text(0, 1.03, f"{label}\n{report.metric} {value or '—'}{n_txt}", fontsize=7,
                  transform=ax_l.transAxes, va="bottom", ha="left")
        bottom = ax_r or ax_s
        for ax in (ax_l, ax_s, ax_r):
            if ax is None:
                continue
            ax.tick_params(labelsize=6, length=2)
            ax.grid(True, linewidth=0.3, alpha=0.5)
            if ax.get_yscale() == "linear":
                ax.yaxis.set_major_locator(MaxNLocator(4))
            if ax is not bottom:
                ax.tick_params(labelbottom=False)
        if c == 0:
            ax_l.set_ylabel("loss", fontsize=7)
            ax_s.set_ylabel(second, fontsize=7)
            if ax_r is not None:
                ax_r.set_ylabel("lr", fontsize=7)
        if r == rows - 1 or i + cols >= n:
            bottom.set_xlabel("epoch", fontsize=7)
    handles = [Line2D([], [], color=TRAIN_COLOR, label="train"),
               Line2D([], [], color=VAL_COLOR, label="validation")]
    if with_lr:
        handles.append(Line2D([], [], color=LR_COLOR, label="learning rate"))
    for style, label in (("--", "chance accuracy" if "chance" in drawn else None),
                         ("--", "baseline MAE (predict the training mean)"
                          if "baseline" in drawn else None),
                         (":", "majority class" if "majority" in drawn else None)):
        if label:
            handles.append(Line2D([], [], color="grey", linestyle=style, label=label))
    if unit:
        handles.append(Patch(color="grey", alpha=0.3, label="mean ± sample std over seeds"))
    fig.legend(handles=handles, loc="upper left", ncol=len(handles), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5 / w_in, 1 - 0.36 / h_in))
    shown = f"top {n} of {total} configs" if n < total else f"{total} configs"
    fig.text(0.6 / w_in, 1 - 0.1 / h_in, f"{report.sweep.name}: {shown}, ranked by "
             f"{report.metric} ({'lower' if report.ascending else 'higher'} is better)",
             fontsize=9, va="top", ha="left", weight="bold")
    report.panels = (n, total)
    return fig
