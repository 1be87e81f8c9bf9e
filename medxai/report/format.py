"""How numbers read in the report: two decimals, CIs in brackets, signed and coloured deltas.

Registered as jinja2 filters, so the template never formats a number by hand. A figure
without meaning (None, NaN: a lift of a film without text, a rate over no films) reads "–",
never "nan"; the table's caption says why.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass

import jinja2
from markupsafe import Markup, escape

from medxai.statistics.classification import Change

DASH = "–"  # shown where a figure is absent


def absent(value: object) -> bool:
    """No figure to show: None, or a number that is NaN or infinite."""
    return value is None or (isinstance(value, numbers.Real) and not math.isfinite(value))


def any_absent(records: object, names: Sequence[str]) -> bool:
    """Whether one of `records` (a record, or an iterable of them) lacks one of the figures
    `names`: the template then says in the table's caption why a cell reads "–"."""
    many = records if isinstance(records, Iterable) and not isinstance(records, str) else [records]
    return any(absent(getattr(record, name)) for record in many for name in names)


def _interval(interval: Sequence[float] | None) -> tuple[float, float] | None:
    """The interval's bounds, or None when it is missing or a bound has no meaning."""
    if not interval or any(absent(v) for v in interval):
        return None
    lo, hi = interval
    return float(lo), float(hi)


def num(value: float | None, digits: int = 2) -> str:
    return DASH if absent(value) else f"{float(value):.{digits}f}"


def ci(value: float | None, interval: Sequence[float] | None = None, digits: int = 2) -> str:
    """`0.83 [0.78, 0.88]`; the bracket is left out when there is no interval."""
    bounds = _interval(interval)
    if absent(value) or bounds is None:
        return num(value, digits)
    lo, hi = bounds
    return f"{num(value, digits)} [{num(lo, digits)}, {num(hi, digits)}]"


def pct(value: float | None, digits: int = 1) -> str:
    return DASH if absent(value) else f"{100.0 * float(value):.{digits}f}%"


def signed(value: float | None, digits: int = 2) -> str:
    return DASH if absent(value) else f"{float(value):+.{digits}f}"


def delta(value: float | None, interval: Sequence[float] | None = None, digits: int = 2) -> Markup:
    """`+0.02 [-0.01, +0.05]` in a span classed by sign; `sig` when the CI excludes zero."""
    if absent(value):
        return Markup(DASH)
    value = float(value)
    text = signed(value, digits)
    classes = ["delta", "up" if value > 0 else "down" if value < 0 else "flat"]
    bounds = _interval(interval)
    if bounds is not None:
        lo, hi = bounds
        text += f" [{signed(lo, digits)}, {signed(hi, digits)}]"
        if lo > 0 or hi < 0:
            classes.append("sig")
    return Markup('<span class="{}">{}</span>').format(" ".join(classes), escape(text))


def change(figure: Change) -> Markup:
    """A before/after figure's change with its paired CI (see `delta`)."""
    return delta(figure.delta, figure.delta_ci)


def pvalue(p: float | None) -> str:
    if absent(p):
        return DASH
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def seconds(value: float | None) -> str:
    """Stage timings: `4.0 s`, `2 min 30 s`."""
    if absent(value):
        return DASH
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest:02d} s"


def value(item: object) -> str:
    """A config or environment value as a person writes it: lists comma-joined, JSON words."""
    if absent(item) or (isinstance(item, list | tuple | dict) and not item):
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
    "any_absent": any_absent,
    "value": value,
    "num": num,
    "ci": ci,
    "pct": pct,
    "delta": delta,
    "change": change,
    "pvalue": pvalue,
    "seconds": seconds,
}


def template_environment() -> jinja2.Environment:
    """The report templates' environment: strict (an unknown name fails), autoescaped, with
    FILTERS and the `absent` test; each page adds its own filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("medxai.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.tests["absent"] = absent
    return env
