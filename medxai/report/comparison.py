"""Two audits side by side (`medxai compare`): the record comparison.json holds and the page
that shows it. Differences read B − A; the paired ones rest on the films both audits tested,
with patients resampled together (pipelines/compare/ builds the record)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup

from medxai.atomic import atomic_write_text
from medxai.codec import write_record
from medxai.report.format import DASH, template_environment
from medxai.report.record import VerdictRow
from medxai.statistics.bootstrap import Interval

COMPARE_SCHEMA = "medxai-compare-1"
PAGE, RECORD = "index.html", "comparison.json"


@dataclass(frozen=True)
class AuditSide:
    """One of the two audits, as the page names it."""

    folder: str
    created: str
    medxai_version: str
    dataset: str
    root: str
    model: str  # the audited model in one line
    overall: str  # the audit's highest verdict level
    headline: str
    n_films: int  # test films the verdict stages used
    patients: bool  # whether the run folder still says which patient each film is


@dataclass(frozen=True)
class VerdictPair:
    """One cue's verdict row in each audit (None: that audit has no such row)."""

    kind: str
    cue: str
    a: VerdictRow | None
    b: VerdictRow | None


@dataclass(frozen=True)
class Figure:
    """A figure as its audit reported it, over that audit's own films."""

    value: float | None
    ci: Interval | None
    n: int  # films (or patients) it rests on


@dataclass(frozen=True)
class FigureRow:
    """One figure of each audit, unpaired (None: not in that audit)."""

    group: str  # a cue (text, border, …) or a test split
    figure: str
    a: Figure | None
    b: Figure | None


@dataclass(frozen=True)
class PairedFigure:
    """A per-film figure on the films both audits tested: each audit's mean over them, and the
    mean of the per-film differences B − A with its cluster-bootstrap interval."""

    group: str
    figure: str
    n: int  # shared films
    n_clusters: int  # the patients (or films) resampled
    unit: str  # "patient" or "film"
    a: float | None  # None: no shared film
    b: float | None
    delta: float | None
    delta_ci: Interval | None
    note: str = ""  # why there is no difference, or a test beside it (McNemar)

    @property
    def settled(self) -> bool:
        """The interval excludes zero."""
        return self.delta_ci is not None and (self.delta_ci[0] > 0 or self.delta_ci[1] < 0)


@dataclass(frozen=True)
class AuditComparison:
    """Two audits of one dataset (two models, or one model before and after a change)."""

    schema: str
    medxai_version: str
    created: str
    a: AuditSide
    b: AuditSide
    same_dataset: bool
    dataset_note: str  # how the datasets were judged the same, or why they are not
    n_shared: int  # test films in both audits (by path under the dataset root, same label)
    resampled: str  # what the paired intervals resample, "15 patients (18 films)"
    verdict: list[VerdictPair]
    reliance: list[FigureRow]
    metrics: list[FigureRow]
    paired: list[PairedFigure]  # reliance figures, per film
    paired_metrics: list[PairedFigure]  # accuracy and macro-F1 on the same films
    summary: list[str]  # the paired differences whose interval excludes zero, in words
    limitations: list[str]  # what could not be paired, and why
    confidence: float
    n_bootstrap: int
    seed: int


def fig(value: float | None, sign: bool = False) -> str:
    """Three decimals, or three significant digits where a figure is too small for them (a
    probability shift of 1e-4 is not 0.000)."""
    if value is None or not math.isfinite(value):
        return DASH
    plus = "+" if sign else ""
    if value and abs(value) < 5e-4:
        return f"{value:{plus}.2e}"
    return f"{value:{plus}.3f}"


def fig_ci(value: float | None, interval: Sequence[float] | None = None) -> str:
    """`0.123 [0.100, 0.150]`, the bracket left out without an interval."""
    if value is None or not interval:
        return fig(value)
    return f"{fig(value)} [{fig(interval[0])}, {fig(interval[1])}]"


def fig_delta(value: float | None, interval: Sequence[float] | None = None) -> Markup:
    """`-0.125 [-0.200, -0.050]`, classed `sig` (bold) when the interval excludes zero."""
    if value is None:
        return Markup(DASH)
    text, settled = fig(value, True), False
    if interval:
        text += f" [{fig(interval[0], True)}, {fig(interval[1], True)}]"
        settled = interval[0] > 0 or interval[1] < 0
    return Markup('<span class="delta{}">{}</span>').format(" sig" * settled, text)


def _environment() -> jinja2.Environment:
    env = template_environment()
    env.filters.update(fig=fig, fig_ci=fig_ci, fig_delta=fig_delta)
    return env


def render_comparison(comparison: AuditComparison) -> str:
    """The comparison page's HTML (self-contained: no scripts, no figures, no URLs)."""
    return _environment().get_template("compare.html.j2").render(c=comparison)


def write_comparison(out: Path, comparison: AuditComparison) -> Path:
    """OUT/index.html and OUT/comparison.json, each written atomically; the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    write_record(out / RECORD, comparison)
    page = out / PAGE
    atomic_write_text(page, render_comparison(comparison))
    return page
