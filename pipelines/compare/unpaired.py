"""Unpaired figures: each audit's verdict rows, reliance figures and metrics as it reported
them, side by side, and a summary of each audit."""

from __future__ import annotations

from medxai.report.comparison import AuditSide, Figure, FigureRow, VerdictPair
from medxai.report.record import AuditResult
from pipelines.compare.folders import AuditFolder

UNPAIRED = (
    "The source-following gap and the tone and frame transplants are recorded as totals, "
    "not per film, and each audit explains its own few films for the saliency figures: these "
    "are shown side by side, unpaired."
)


def verdict_pairs(a: AuditResult, b: AuditResult) -> list[VerdictPair]:
    rows_a = {row.kind: row for row in a.shortcut.table}
    rows_b = {row.kind: row for row in b.shortcut.table}
    kinds = list(dict.fromkeys([*rows_a, *rows_b]))
    return [
        VerdictPair(k, (rows_a.get(k) or rows_b[k]).cue, rows_a.get(k), rows_b.get(k))
        for k in kinds
    ]


def reliance_figures(result: AuditResult) -> dict[tuple[str, str], Figure]:
    """(group, figure) -> the figure as the audit reported it."""
    s = result.shortcut
    found: dict[tuple[str, str], Figure] = {}
    for name, kind in s.kinds.items():
        r = kind.reliance
        d, i, n = r.region_deletion, r.region_insertion, r.n_clusters or r.n_images
        found[(name, "flip excess")] = Figure(d.flip_excess, d.flip_excess_ci, n)
        found[(name, "insertion gain")] = Figure(i.gain, i.gain_ci, n)
        found[(name, "drop excess")] = Figure(d.drop_excess, d.drop_excess_ci, n)
    pooled = s.evidence.transplant.pooled
    if pooled is not None:
        n = pooled.n_units
        found[("text transplant", "follow excess")] = Figure(
            pooled.follow_excess, pooled.follow_excess_ci, n
        )
        found[("text transplant", "probability shift")] = Figure(
            pooled.prob_shift, pooled.prob_shift_ci, n
        )
    for trait, style in s.styles.items():
        if style.follow is not None:
            f = style.follow
            found[(f"{trait} transplant", "follow excess")] = Figure(
                f.follow_excess, f.follow_excess_ci, f.n_units
            )
    for split, following in s.source.per_split.items():
        found[("source", f"accuracy gap on {split}")] = Figure(
            following.gap, following.gap_ci, following.n_on + following.n_off
        )
    for method, saliency in s.evidence.saliency.items():
        found[("text saliency", f"{method} mass share")] = Figure(
            saliency.mass_share, None, saliency.n
        )
    return found


def metric_figures(result: AuditResult) -> dict[tuple[str, str], Figure]:
    found = {}
    for split, m in result.evaluations.baseline.items():
        found[(split, "accuracy")] = Figure(m.accuracy, m.ci.accuracy if m.ci else None, m.n)
        found[(split, "macro-F1")] = Figure(m.macro_f1, m.ci.macro_f1 if m.ci else None, m.n)
    return found


def side_by_side(
    a: dict[tuple[str, str], Figure], b: dict[tuple[str, str], Figure]
) -> list[FigureRow]:
    keys = list(dict.fromkeys([*a, *b]))
    return [FigureRow(group, figure, a.get((group, figure)), b.get((group, figure)))
            for group, figure in keys]  # fmt: skip


def audit_side(run: AuditFolder) -> AuditSide:
    r = run.result
    return AuditSide(
        folder=str(run.folder), created=r.created, medxai_version=r.medxai_version,
        dataset=r.dataset.name, root=r.dataset.root, model=r.model.description,
        overall=r.shortcut.overall, headline=r.shortcut.headline,
        n_films=len(r.shortcut.images), patients=run.evaluated is not None,
    )  # fmt: skip
