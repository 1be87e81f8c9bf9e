"""How numbers read in the report: two decimals, CIs in brackets, signed and coloured deltas.

Registered as jinja2 filters, so the template never formats a number by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import fields, is_dataclass

from markupsafe import Markup, escape

from medxai.statistics.classification import Change

DASH = "–"  # shown where a figure is absent


def num(value: float | None, digits: int = 2) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{float(value):.{digits}f}"


def ci(value: float | None, interval: Sequence[float] | None = None, digits: int = 2) -> str:
    """`0.83 [0.78, 0.88]`; the bracket is left out when there is no interval."""
    if value is None:
        return DASH
    if not interval:
        return num(value, digits)
    lo, hi = interval
    return f"{num(value, digits)} [{num(lo, digits)}, {num(hi, digits)}]"


def pct(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{100.0 * float(value):.{digits}f}%"


def signed(value: float, digits: int = 2) -> str:
    return f"{float(value):+.{digits}f}"


def delta(value: float | None, interval: Sequence[float] | None = None, digits: int = 2) -> Markup:
    """`+0.02 [-0.01, +0.05]` in a span classed by sign; `sig` when the CI excludes zero."""
    if value is None:
        return Markup(DASH)
    value = float(value)
    text = signed(value, digits)
    classes = ["delta", "up" if value > 0 else "down" if value < 0 else "flat"]
    if interval:
        lo, hi = (float(v) for v in interval)
        text += f" [{signed(lo, digits)}, {signed(hi, digits)}]"
        if lo > 0 or hi < 0:
            classes.append("sig")
    return Markup('<span class="{}">{}</span>').format(" ".join(classes), escape(text))


def change(figure: Change) -> Markup:
    """A before/after figure's change with its paired CI (see `delta`)."""
    return delta(figure.delta, figure.delta_ci)


def pvalue(p: float | None) -> str:
    if p is None:
        return DASH
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def seconds(value: float | None) -> str:
    """Stage timings: `4.0 s`, `2 min 30 s`."""
    if value is None:
        return DASH
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest:02d} s"


def value(item: object) -> str:
    """A config or environment value as a person writes it: lists comma-joined, JSON words."""
    if item is None:
        return DASH
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, list | tuple):
        return ", ".join(value(v) for v in item)
    if isinstance(item, dict):
        return ", ".join(f"{k}: {value(v)}" for k, v in item.items())
    if is_dataclass(item):
        return ", ".join(f"{f.name}: {value(getattr(item, f.name))}" for f in fields(item))
    return str(item)


FILTERS = {
    "value": value,
    "num": num,
    "ci": ci,
    "pct": pct,
    "delta": delta,
    "change": change,
    "pvalue": pvalue,
    "seconds": seconds,
}
