"""Paired figures (B − A) on the shared films: the region tests of every region kind, the text
transplant, and the models' accuracy and macro-F1, each with a bootstrap interval."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from medxai.report.comparison import PairedFigure
from medxai.report.record import AuditResult, RegionRow
from medxai.statistics.bootstrap import bootstrap_mean
from medxai.statistics.classification import Evaluation, PairedComparison, paired_comparison
from pipelines.audit.region_tests import Outcomes, matched
from pipelines.compare.films import Patients
from pipelines.compare.folders import AuditFolder

POOLED = "all test films"  # the verdict stages' films, when no split's decisions are kept


@dataclass(frozen=True)
class Pairing:
    """How paired figures are resampled: the films' patients, resamples, confidence, seed."""

    patients: Patients
    n_bootstrap: int
    confidence: float
    seed: int

    def figure(
        self, group: str, figure: str, films: Sequence[str], a: np.ndarray, b: np.ndarray,
        offset: int, note: str = "",
    ) -> PairedFigure:  # fmt: skip
        """Per-film values of A and B on the same `films`: means, and B − A with its CI."""
        if not len(films):
            return PairedFigure(group, figure, 0, 0, "film", None, None, None, None, note)
        clusters = self.patients.of_films(films)
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        delta, ci = bootstrap_mean(
            b - a, self.n_bootstrap, self.confidence, self.seed + offset, clusters
        )
        return PairedFigure(
            group, figure, len(films), clusters.count, clusters.unit, float(a.mean()),
            float(b.mean()), delta, ci, note,
        )  # fmt: skip


def kind_rows(result: AuditResult) -> dict[str, tuple[str, list[RegionRow]]]:
    """Per region kind: its cue and its per-film rows (text's are `shortcut.images`)."""
    return {
        name: (kind.cue, result.shortcut.images if name == "text" else kind.rows)
        for name, kind in result.shortcut.kinds.items()
    }


# per film, the figure the region tests average: (name, outcome of the regions − of the control)
REGION_FIGURES: tuple[tuple[str, Callable[[Outcomes], np.ndarray]], ...] = (
    ("flip excess", lambda o: o.flipped.astype(float) - o.control_flipped),
    ("insertion gain", lambda o: o.inserted_keeps.astype(float) - o.control_keeps),
    ("drop excess", lambda o: o.deletion_drop - o.control_drop),
)


def paired_regions(
    a: AuditResult, b: AuditResult, shared: Sequence[str], pairing: Pairing
) -> list[PairedFigure]:
    """Each region kind's tests on the shared films that carry it, with a matched control,
    in both audits."""
    kinds_a, kinds_b = kind_rows(a), kind_rows(b)
    out = []
    for name, (cue, rows) in kinds_a.items():
        if name not in kinds_b:
            continue
        in_a = {r.relative: r for r in rows}
        in_b = {r.relative: r for r in kinds_b[name][1]}
        films = [
            f for f in shared if f in in_a and f in in_b and matched(in_a[f]) and matched(in_b[f])
        ]
        outcome_a = Outcomes.of([in_a[f] for f in films])
        outcome_b = Outcomes.of([in_b[f] for f in films])
        note = "" if films else f"no shared film carries {cue} with a matched control in both"
        for k, (figure, per_film) in enumerate(REGION_FIGURES):
            values_a = per_film(outcome_a) if films else np.empty(0)
            values_b = per_film(outcome_b) if films else np.empty(0)
            out.append(pairing.figure(name, figure, films, values_a, values_b, len(out) + k, note))
    return out


def paired_transplant(
    a: AuditResult, b: AuditResult, shared: Sequence[str], pairing: Pairing, offset: int
) -> list[PairedFigure]:
    """The text transplant on the shared films transplanted in both audits: follow excess
    (donor text followed − the same boxes blank) and the target classes' probability shift."""
    rows_a = {r.relative: r for r in a.shortcut.evidence.transplant.rows}
    rows_b = {r.relative: r for r in b.shortcut.evidence.transplant.rows}
    films = [f for f in shared if f in rows_a and f in rows_b]
    note = "" if films else "no shared film was transplanted in both audits"
    figures = (
        ("follow excess", lambda r: r.follow - r.blank_follow),
        ("probability shift", lambda r: r.swap_target_prob - r.blank_target_prob),
    )
    out = []
    for k, (figure, value) in enumerate(figures):
        a_values = np.array([value(rows_a[f]) for f in films])
        b_values = np.array([value(rows_b[f]) for f in films])
        out.append(
            pairing.figure("text transplant", figure, films, a_values, b_values, offset + k, note)
        )
    return out


def _metric_figures(group: str, comparison: PairedComparison) -> list[PairedFigure]:
    mcnemar = comparison.mcnemar
    test = (
        f"McNemar ({mcnemar.method}): only A right on {mcnemar.only_a_correct}, only B on "
        f"{mcnemar.only_b_correct}, p = {mcnemar.p_value:.3g}"
    )
    n, clusters, unit = comparison.n, comparison.n_clusters or comparison.n, comparison.unit
    changes = {"accuracy": (comparison.accuracy, test), "macro-F1": (comparison.macro_f1, "")}
    return [
        PairedFigure(group, figure, n, clusters, unit, c.before, c.after, c.delta, c.delta_ci, note)
        for figure, (c, note) in changes.items()
    ]


def _paired_decisions(
    group: str, films: list[tuple[str, str, str, str]], classes: list[str], pairing: Pairing
) -> list[PairedFigure]:
    """(file, label, A's decision, B's decision) per shared film -> accuracy and macro-F1
    over `classes` (films naming another class are left out)."""
    index = {name: k for k, name in enumerate(classes)}
    films = [film for film in films if all(name in index for name in film[1:])]
    if not films:
        note = "no shared film with both decisions among the classes"
        return [
            PairedFigure(group, f, 0, 0, "film", None, None, None, None, note)
            for f in ("accuracy", "macro-F1")
        ]
    files, labels, decided_a, decided_b = zip(*films, strict=True)
    comparison = paired_comparison(
        [index[c] for c in labels], [index[c] for c in decided_a], [index[c] for c in decided_b],
        classes, pairing.n_bootstrap, pairing.confidence, pairing.seed,
        pairing.patients.of_files(files),
    )  # fmt: skip
    return _metric_figures(group, comparison)


def paired_metrics(
    a: AuditFolder, b: AuditFolder, shared: Sequence[str], pairing: Pairing
) -> tuple[list[PairedFigure], str]:
    """Accuracy and macro-F1 of both models on the same films, per test split when both
    runs keep their evaluation (else over the verdict stages' films pooled); and a note."""
    if set(a.result.model.classes) != set(b.result.model.classes):
        return [], "the models' classes differ: their metrics are not paired"
    if a.evaluated is None or b.evaluated is None:
        rows_a = {r.relative: r for r in a.result.shortcut.images}
        rows_b = {r.relative: r for r in b.result.shortcut.images}
        films = [
            (rows_a[f].file, rows_a[f].label, rows_a[f].predicted, rows_b[f].predicted)
            for f in shared
        ]
        missing = a.missing or b.missing
        note = (
            f"{missing}, so the decisions on each test split are not at hand: accuracy and "
            f"macro-F1 are paired over the verdict stages' {len(films)} shared films pooled"
        )
        return _paired_decisions(POOLED, films, a.result.dataset.classes, pairing), note
    out = []
    for split, evaluation_a in a.evaluated.splits.items():
        evaluation_b = b.evaluated.splits.get(split)
        if evaluation_b is None:
            continue
        named_a, named_b = _named(evaluation_a, a), _named(evaluation_b, b)
        films = [
            (file, label, decided, named_b[file][1])
            for file, (label, decided) in named_a.items()
            if file in named_b and named_b[file][0] == label
        ]
        out += _paired_decisions(split, films, a.result.model.classes, pairing)
    return out, ""


def _named(evaluation: Evaluation, run: AuditFolder) -> dict[str, tuple[str, str]]:
    """File -> (label, decision) as class names (the evaluation holds the model's indices)."""
    names = run.result.model.classes
    return {
        file: (names[label], names[decided])
        for file, label, decided in zip(
            evaluation.files, evaluation.labels, evaluation.predictions, strict=True
        )
    }
