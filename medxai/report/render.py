"""Render an audit (its `AuditResult` plus its pictures) into one self-contained HTML page.

Figures go to OUT/figures/*.png and are referenced relatively, so OUT can be zipped and
shared; the page has no scripts and no external URLs. audit.json itself is the pipeline's.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import jinja2

from medxai.atomic import atomic_write_text
from medxai.metrics.shortcut import TransplantFollow
from medxai.report.artifacts import AuditArtifacts
from medxai.report.figures import (
    cleaning_figure,
    gallery_figure,
    mean_maps_figure,
    sanity_figure,
)
from medxai.report.format import template_environment
from medxai.report.plots import per_group_figure, region_figure, share_vs_area_figure
from medxai.report.record import AuditResult, Transplant

FIGURES = "figures"


def _environment() -> jinja2.Environment:
    env = template_environment()
    env.filters["confusion"] = _confusion
    return env


def _confusion(matrix: list[list[int]]) -> list[list[dict]]:
    """Cells with their row share, which shades the cell (rows = true classes)."""
    rows = []
    for row in matrix:
        total = sum(row) or 1
        rows.append([{"count": int(c), "share": round(c / total, 3)} for c in row])
    return rows


def _table(record: object) -> dict[str, object]:
    """A record's fields by name, for a two-column table."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _settings(record: object, prefix: str = "") -> dict[str, object]:
    """Nested settings as one two-column table: "train.epochs" → 20."""
    rows: dict[str, object] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if is_dataclass(value):
            rows |= _settings(value, f"{prefix}{f.name}.")
        else:
            rows[f"{prefix}{f.name}"] = value
    return rows


def _figures(out: Path, audit: AuditResult, artifacts: AuditArtifacts) -> dict[str, Any]:
    """Write every figure; return their paths relative to OUT."""
    folder = out / FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    shortcut, evidence = audit.shortcut, audit.shortcut.evidence

    def rel(path: Path) -> str:
        return path.relative_to(out).as_posix()

    found: dict[str, Any] = {
        "gallery": [
            rel(gallery_figure(item, folder / f"gallery-{i:02d}.png"))
            for i, item in enumerate(artifacts.gallery)
        ],
        "cleaning": [
            rel(cleaning_figure(example, folder / f"cleaning-{i:02d}.png"))
            for i, example in enumerate(artifacts.cleaning_examples)
        ],
        "mean_maps": rel(
            mean_maps_figure(
                artifacts.mean_maps, artifacts.text_frequency, folder / "mean-maps.png"
            )
        ),
        "share": rel(
            share_vs_area_figure(
                shortcut.explained, audit.config.explain.methods, folder / "share-vs-area.png"
            )
        ),
        "region": rel(
            region_figure(evidence.region_insertion, shortcut.images, folder / "region-tests.png")
        ),
    }
    found["sanity"] = {
        method: rel(sanity_figure(check, artifacts.sanity_maps[method], folder / f"sanity-{k}.png"))
        for k, (method, check) in enumerate(audit.sanity.methods.items())
        if method in artifacts.sanity_maps
    }
    for key, title in (("per_source", "per source"), ("per_class", "per class")):
        path = folder / f"{key.replace('_', '-')}.png"
        found[key] = rel(per_group_figure(getattr(evidence, key), path, title))
    return found


def _context(audit: AuditResult, artifacts: AuditArtifacts, figures: dict[str, Any]) -> dict:
    explained = {e.file: e for e in audit.shortcut.explained}
    return {
        "audit": audit,
        "dataset": audit.dataset,
        "classes": audit.dataset.classes,
        "primary": audit.dataset.primary_test_split,
        "config": audit.config,
        "config_table": _settings(audit.config) | {"detector used": audit.detector_used},
        "environment_table": _table(audit.environment),
        "phantom_table": _table(audit.dataset.phantom) if audit.dataset.phantom else None,
        "data": audit.data,
        "shortcut": audit.shortcut,
        "evidence": audit.shortcut.evidence,
        "baseline": audit.evaluations.baseline,
        "cleaned": audit.evaluations.cleaned,
        "comparison": audit.comparison,
        "cleaning": audit.cleaning,
        "timings": audit.timings,
        "estimates": _estimates(audit),
        "figures": figures,
        "gallery": [
            {"item": item, "src": src, "numbers": explained[item.file].methods}
            for item, src in zip(artifacts.gallery, figures["gallery"], strict=True)
        ],
        "cleaning_examples": [
            {"example": example, "src": src}
            for example, src in zip(artifacts.cleaning_examples, figures["cleaning"], strict=True)
        ],
        "has_text_frequency": artifacts.text_frequency is not None,
        "follow_rows": _follow_rows(audit.shortcut.evidence.transplant),
    }


def _estimates(audit: AuditResult) -> dict[str, float]:
    """Stage -> estimated seconds; the total too, beside the measured total."""
    if audit.estimate is None:
        return {}
    stages = {s.stage: s.seconds for s in audit.estimate.stages}
    return stages | {"total": audit.estimate.total}


def _follow_rows(moved: Transplant) -> list[tuple[str, TransplantFollow]]:
    """The transplant's follow figures: all test films, then each split."""
    if moved.pooled is None:
        return []
    return [("all test films", moved.pooled)] + [
        (split, part.follow) for split, part in moved.per_split.items()
    ]


def write_report(out: Path, audit: AuditResult, artifacts: AuditArtifacts) -> Path:
    """Write OUT/figures/*.png and OUT/index.html (atomically); return the index path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(out, audit, artifacts)
    html = _environment().get_template("audit.html.j2").render(_context(audit, artifacts, figures))
    index = out / "index.html"
    atomic_write_text(index, html)
    return index
