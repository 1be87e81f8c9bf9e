"""Charts of the shortcut evidence: saliency share vs area, region-only tests, per-source bars.

Inputs are parts of the audit record, so a chart can be redrawn from audit.json alone
(`medxai.codec.read_record(path, AuditResult)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from medxai.metrics.shortcut import RegionInsertion
from medxai.report.figures import method_colour, new_figure, save_png
from medxai.report.record import ExplainedEntry, GroupRates, RegionRow

FLOOR = 1e-4  # shares are drawn on log axes; zero shares sit on this floor
TEXT_COLOUR, BASE_COLOUR = "#b3261e", "#7f8c8d"


def _style(ax: Axes, title: str, xlabel: str = "", ylabel: str = "") -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, linewidth=0.5)


def share_vs_area_figure(
    explained: Sequence[ExplainedEntry], methods: Sequence[str], path: Path
) -> Path:
    """Per explained image and method: saliency mass inside text (y) vs text area (x).

    The y = x line means "no more saliency than the area explains"; points far above it
    are images whose explanation concentrates on the text.
    """
    fig = new_figure(2, height=3.6)
    ax = fig.subplots()
    shares: list[float] = []
    for k, method in enumerate(methods):
        rows = [e.methods[method] for e in explained if method in e.methods]
        x = np.maximum([r.area_share for r in rows], FLOOR)
        y = np.maximum([r.mass_share for r in rows], FLOOR)
        shares += [v for v in (*x, *y) if np.isfinite(v)]  # a NaN point is not drawn
        ax.scatter(x, y, s=18, alpha=0.75, color=method_colour(k), label=method)
    lo = min([*shares, 1e-3]) / 2
    ax.plot([lo, 1], [lo, 1], "k--", linewidth=0.8, label="y = x (area explains it)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, 1)
    ax.set_ylim(lo, 1)
    _style(ax, "saliency inside text vs text area", "text area share", "saliency mass share")
    ax.legend(fontsize=7, frameon=False)
    return save_png(fig, path)


def region_figure(region: RegionInsertion, images: Sequence[RegionRow], path: Path) -> Path:
    """Region-only insertion rates with CIs (text alone, its matched control alone), then per
    image: text-only insertion score vs the blurred baseline's, and score after blurring only
    the text vs the original."""
    fig = new_figure(3, height=2.8)
    bars, insertion, deletion = fig.subplots(1, 3)
    rates = [region.keeps_class_rate, region.control_keeps_class_rate]
    err = np.abs(np.array([region.ci, region.control_ci], dtype=float).T - np.array(rates))
    bars.bar(["text only", "control only"], rates, yerr=err, capsize=4,
             color=[TEXT_COLOUR, BASE_COLOUR])  # fmt: skip
    bars.set_ylim(0, 1)
    _style(bars, "keeps predicted class", ylabel="rate (95% CI)")
    for ax, x_key, y_key, title, xlabel, ylabel in (
        (insertion, "baseline_score", "inserted_score", "text-only insertion",
         "baseline score", "score with text only"),
        (deletion, "original_score", "deleted_score", "text-only deletion",
         "original score", "score with text blurred"),
    ):  # fmt: skip
        tests = [r.tests for r in images if r.tests]
        ax.scatter([getattr(t, x_key) for t in tests], [getattr(t, y_key) for t in tests], s=10,
                   alpha=0.6, color=TEXT_COLOUR)  # fmt: skip
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        _style(ax, title, xlabel, ylabel)
    return save_png(fig, path)


def per_group_figure(groups: dict[str, GroupRates], path: Path, title: str) -> Path:
    """Bars per source (or class): text area share, keep-class rate, flip rates (text and
    control region blurred), mean drop."""
    names = list(groups)
    fields = [
        ("text_area_share", "text area share"),
        ("keeps_class_rate", "keeps class (text only)"),
        ("flip_rate", "flips (text blurred)"),
        ("control_flip_rate", "flips (control blurred)"),
        ("mean_drop", "mean score drop"),
    ]
    fig = new_figure(len(fields), height=2.6 + 0.08 * max(len(max(names, key=len)), 1))
    for ax, (key, label) in zip(fig.subplots(1, len(fields)), fields, strict=True):
        values = [getattr(groups[n], key) or 0.0 for n in names]
        ax.bar(
            range(len(names)),
            values,
            color=TEXT_COLOUR if key != "text_area_share" else BASE_COLOUR,
        )
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        _style(ax, label)
    fig.suptitle(title, fontsize=9)
    return save_png(fig, path)
