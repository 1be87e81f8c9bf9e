"""Render an audit (the audit.json dict plus its pictures) into one self-contained HTML page.

Figures go to OUT/figures/*.png and are referenced relatively, so OUT can be zipped and
shared; the page has no scripts and no external URLs. audit.json itself is the pipeline's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from medxai.atomic import atomic_write_text
from medxai.report.artifacts import AuditArtifacts
from medxai.report.figures import cleaning_figure, gallery_figure, mean_maps_figure
from medxai.report.format import FILTERS
from medxai.report.plots import per_group_figure, region_figure, share_vs_area_figure

FIGURES = "figures"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("medxai.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def _confusion(matrix: list[list[int]]) -> list[list[dict]]:
    """Cells with their row share, which shades the cell (rows = true classes)."""
    rows = []
    for row in matrix:
        total = sum(row) or 1
        rows.append([{"count": int(c), "share": round(c / total, 3)} for c in row])
    return rows


def _evaluations(audit: dict, model: str) -> dict[str, dict]:
    """Split -> metrics for one model; falls back to the primary split's top-level entry."""
    per_split = (audit.get("evaluations") or {}).get(model) or {}
    if per_split:
        return per_split
    primary = (audit.get("dataset") or {}).get("primary_test_split") or "test"
    return {primary: audit[model]} if audit.get(model) else {}


def _metrics_view(metrics: dict) -> dict:
    return {**metrics, "confusion": _confusion(metrics.get("confusion") or [])}


def _figures(out: Path, audit: dict, artifacts: AuditArtifacts) -> dict[str, Any]:
    """Write every figure the data allows; return their paths relative to OUT."""
    folder = out / FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    shortcut = audit.get("shortcut") or {}
    evidence = shortcut.get("evidence") or {}
    methods = list((audit.get("config") or {}).get("methods") or evidence.get("saliency") or [])
    found: dict[str, Any] = {"gallery": [], "cleaning": []}

    def rel(path: Path) -> str:
        return path.relative_to(out).as_posix()

    for i, item in enumerate(artifacts.gallery):
        found["gallery"].append(rel(gallery_figure(item, folder / f"gallery-{i:02d}.png")))
    for i, example in enumerate(artifacts.cleaning_examples):
        found["cleaning"].append(rel(cleaning_figure(example, folder / f"cleaning-{i:02d}.png")))
    if artifacts.mean_maps or artifacts.text_frequency is not None:
        path = folder / "mean-maps.png"
        found["mean_maps"] = rel(
            mean_maps_figure(artifacts.mean_maps, artifacts.text_frequency, path)
        )
    if shortcut.get("explained") and methods:
        path = folder / "share-vs-area.png"
        found["share"] = rel(share_vs_area_figure(shortcut["explained"], methods, path))
    if evidence.get("region_insertion") or shortcut.get("images"):
        path = folder / "region-tests.png"
        found["region"] = rel(region_figure(evidence, shortcut.get("images") or [], path))
    for key, title in (("per_source", "per source"), ("per_class", "per class")):
        if evidence.get(key):
            path = folder / f"{key.replace('_', '-')}.png"
            found[key] = rel(per_group_figure(evidence[key], path, title))
    return found


def _context(audit: dict, artifacts: AuditArtifacts, figures: dict[str, Any]) -> dict:
    dataset = audit.get("dataset") or {}
    baseline = {s: _metrics_view(m) for s, m in _evaluations(audit, "baseline").items()}
    cleaned = {s: _metrics_view(m) for s, m in _evaluations(audit, "cleaned").items()}
    classes = dataset.get("classes") or list(
        next(iter(baseline.values()), {}).get("per_class") or []
    )
    shortcut = audit.get("shortcut") or None
    explained = {e["file"]: e for e in (shortcut or {}).get("explained") or []}
    gallery = [
        {"item": item, "src": src, "numbers": explained.get(item.file, {}).get("methods", {})}
        for item, src in zip(artifacts.gallery, figures["gallery"], strict=True)
    ]
    cleaning = [
        {"example": example, "src": src}
        for example, src in zip(artifacts.cleaning_examples, figures["cleaning"], strict=True)
    ]
    return {
        "audit": audit,
        "dataset": dataset,
        "classes": classes,
        "primary": dataset.get("primary_test_split"),
        "config": audit.get("config") or {},
        "data": audit.get("data") or {},
        "shortcut": shortcut,
        "evidence": (shortcut or {}).get("evidence") or {},
        "baseline": baseline,
        "cleaned": cleaned,
        "comparison": audit.get("comparison") or {},
        "cleaning": audit.get("cleaning") or None,
        "timings": audit.get("timings") or {},
        "environment": audit.get("environment") or {},
        "figures": figures,
        "gallery": gallery,
        "cleaning_examples": cleaning,
        "has_text_frequency": artifacts.text_frequency is not None,
    }


def write_report(out: Path, audit: dict, artifacts: AuditArtifacts) -> Path:
    """Write OUT/figures/*.png and OUT/index.html (atomically); return the index path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(out, audit, artifacts)
    html = _environment().get_template("audit.html.j2").render(_context(audit, artifacts, figures))
    index = out / "index.html"
    atomic_write_text(index, html)
    return index
