"""`medxai compare`: two audits of one dataset side by side, and what changed film by film.

Each audit's verdict rows, reliance figures and metrics are shown as it reported them. The
paired differences (B − A) rest on the test films both audits used, matched by their path
under the dataset root (and the same label): per film, a figure of B minus the same figure of
A, averaged, with a percentile bootstrap that resamples patients with their films
(medxai.statistics.bootstrap). audit.json records, per film, the region tests of every region
kind, the text transplant and each film's decision; which patient a film belongs to, and each
test split's decisions, come from the run's own stage record of the model's evaluation
(OUT/stages/evaluate_baseline.json). Without it films are resampled one by one and the
metrics are paired over the verdict stages' films pooled.

    from pipelines.compare import compare_audits
    comparison = compare_audits("reports/v1", "reports/v2")
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from medxai import __version__
from medxai.codec import decode
from medxai.errors import MedxaiError
from medxai.outputs import check_output, output_lock
from medxai.paths import is_inside
from medxai.report.comparison import (
    COMPARE_SCHEMA,
    AuditComparison,
    AuditSide,
    Figure,
    FigureRow,
    PairedFigure,
    VerdictPair,
    write_comparison,
)
from medxai.report.record import SCHEMA, AuditResult, EvaluatedSplits, RegionRow
from medxai.statistics.bootstrap import Clusters, bootstrap_mean
from medxai.statistics.classification import Evaluation, PairedComparison, paired_comparison
from pipelines.audit.config import AuditConfig
from pipelines.audit.region_tests import Outcomes, matched
from pipelines.audit.run import read_audit

AUDIT = "audit.json"
EVALUATION = Path("stages") / "evaluate_baseline.json"  # the model on every test film
POOLED = "all test films"  # the verdict stages' films, when no split's decisions are kept
UNPAIRED = (
    "The source-following gap and the tone and frame transplants are recorded as totals, "
    "not per film, and each audit explains its own few films for the saliency figures: these "
    "are shown side by side, unpaired."
)


@dataclass(frozen=True)
class AuditFolder:
    """One audit's folder read back: its record and, when the folder still holds it, the
    model's decision on every film of each test split (with each film's patient)."""

    folder: Path
    result: AuditResult[AuditConfig]
    evaluated: EvaluatedSplits | None
    missing: str = ""  # why `evaluated` is None


def read_run(folder: Path | str) -> AuditFolder:
    """An audit's output folder; a missing, unreadable or foreign audit.json is one error."""
    folder = Path(folder)
    path = folder / AUDIT
    if not folder.is_dir():
        raise MedxaiError(f"{folder}: no such folder; give the output folder of a medxai audit")
    if not path.is_file():
        raise MedxaiError(f"{path}: not found; {folder} is not the output folder of an audit")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MedxaiError(f"{path}: unreadable ({err})") from err
    schema = stored.get("schema") if isinstance(stored, dict) else None
    if not isinstance(schema, str) or not schema.startswith("medxai-audit"):
        raise MedxaiError(f"{path}: not a medxai audit record (schema {schema!r})")
    if schema != SCHEMA:
        raise MedxaiError(
            f"{path}: written as {schema}, this medxai reads {SCHEMA}; re-run that audit"
        )
    result = read_audit(path)
    evaluated, missing = _evaluated(folder, result)
    return AuditFolder(folder, result, evaluated, missing)


def _evaluated(folder: Path, result: AuditResult) -> tuple[EvaluatedSplits | None, str]:
    """The stage record of the model's evaluation, when present and the one audit.json
    reports (its metrics the same)."""
    path = folder / EVALUATION
    if not path.is_file():
        return None, f"{path} is gone"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        evaluated = decode(EvaluatedSplits, stored["result"], str(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, MedxaiError):
        return None, f"{path} is unreadable"
    reported = result.evaluations.baseline
    agrees = set(reported) == set(evaluated.splits) and all(
        (e.metrics.n, e.metrics.accuracy) == (reported[s].n, reported[s].accuracy)
        for s, e in evaluated.splits.items()
    )
    return (evaluated, "") if agrees else (None, f"{path} is not the evaluation audit.json reports")


# -- which films are the same ------------------------------------------------------------
def same_dataset(a: AuditResult, b: AuditResult) -> tuple[bool, str]:
    """Whether two audits ran on one dataset: the same root, or the same films per split,
    class and source (a copy elsewhere); and how that was judged."""
    da, db = a.dataset, b.dataset
    if sorted(da.classes) != sorted(db.classes):
        return False, (
            f"different datasets: the classes differ ({', '.join(da.classes)} against "
            f"{', '.join(db.classes)})"
        )
    if da.root == db.root:
        return True, f"the same dataset ({da.root})"
    if a.data.splits == b.data.splits:
        return True, (
            f"the same dataset at two places ({da.root}, {db.root}): every split holds the "
            "same images per class and source"
        )
    return False, (
        f"different datasets: {da.root} and {db.root} hold different images per split, class "
        "or source"
    )


def shared_films(a: AuditResult, b: AuditResult) -> tuple[list[str], int]:
    """The test films both audits used (paths under the dataset root, A's order), and how many
    films of the same path carry another label in the other audit (left out)."""
    labels_b = {row.relative: row.label for row in b.shortcut.images}
    both = [row for row in a.shortcut.images if row.relative in labels_b]
    shared = [row.relative for row in both if row.label == labels_b[row.relative]]
    return shared, len(both) - len(shared)


@dataclass(frozen=True)
class Patients:
    """Each film's patient, by file name (as the split lists it) and by path under the root."""

    by_file: dict[str, str | None]
    file_of: dict[str, str]  # relative path -> file name

    @classmethod
    def of(cls, runs: Sequence[AuditFolder]) -> Patients:
        """From every run's evaluation; a file name given two patients names none."""
        by_file: dict[str, str | None] = {}
        for run in runs:
            evaluations = run.evaluated.splits.values() if run.evaluated else ()
            for evaluation in evaluations:
                for file, patient in zip(evaluation.files, evaluation.patients, strict=False):
                    if by_file.setdefault(file, patient) != patient:
                        by_file[file] = None
        file_of = {r.relative: r.file for run in runs for r in run.result.shortcut.images}
        return cls(by_file, file_of)

    @property
    def known(self) -> bool:
        return any(self.by_file.values())

    def of_files(self, files: Sequence[str]) -> Clusters:
        return Clusters.of([self.by_file.get(f) for f in files])

    def of_films(self, relatives: Sequence[str]) -> Clusters:
        return self.of_files([self.file_of.get(r, "") for r in relatives])


# -- paired figures ---------------------------------------------------------------------------
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


# -- unpaired figures ----------------------------------------------------------------------
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


def summary(paired: Sequence[PairedFigure]) -> list[str]:
    """The paired differences whose interval excludes zero, in words."""
    return [
        f"{p.group}, {p.figure}: {'lower' if p.delta < 0 else 'higher'} in B "
        f"({p.a:.3g} → {p.b:.3g}; B − A {p.delta:+.3g}, CI {p.delta_ci[0]:+.3g} to "
        f"{p.delta_ci[1]:+.3g}, over {p.n} shared films, {p.n_clusters} {p.unit}s)"
        for p in paired
        if p.settled
    ]


def compare_audits(
    run_a: Path | str, run_b: Path | str, n_bootstrap: int = 1000, seed: int = 0,
    confidence: float = 0.95,
) -> AuditComparison:  # fmt: skip
    """Two audits side by side; paired differences (B − A) over the films both used."""
    if n_bootstrap < 1:
        raise MedxaiError(f"n_bootstrap must be at least 1; got {n_bootstrap}")
    a, b = read_run(run_a), read_run(run_b)
    same, dataset_note = same_dataset(a.result, b.result)
    shared, relabelled = shared_films(a.result, b.result) if same else ([], 0)
    patients = Patients.of([a, b])
    pairing = Pairing(patients, n_bootstrap, confidence, seed)
    limitations = [UNPAIRED]
    paired: list[PairedFigure] = []
    decisions: list[PairedFigure] = []
    if not same:
        limitations.append(f"{dataset_note}: nothing is paired.")
    elif not shared:
        limitations.append("The audits share no test film: nothing is paired.")
    else:
        paired = paired_regions(a.result, b.result, shared, pairing)
        paired += paired_transplant(a.result, b.result, shared, pairing, len(paired))
        decisions, note = paired_metrics(a, b, shared, pairing)
        limitations += [note + "."] * bool(note)
        if not patients.known:
            limitations.append(
                f"Neither run folder says which patient each film is ({a.missing}; "
                f"{b.missing}): the paired intervals resample films one by one, too narrow "
                "where a patient has several films."
            )
    if relabelled:
        limitations.append(
            f"{relabelled} film(s) of the same path carry another label in the other audit: "
            "left out of the pairing."
        )
    return AuditComparison(
        schema=COMPARE_SCHEMA, medxai_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        a=audit_side(a), b=audit_side(b), same_dataset=same, dataset_note=dataset_note,
        n_shared=len(shared), resampled=patients.of_films(shared).describe(),
        verdict=verdict_pairs(a.result, b.result),
        reliance=side_by_side(reliance_figures(a.result), reliance_figures(b.result)),
        metrics=side_by_side(metric_figures(a.result), metric_figures(b.result)),
        paired=paired, paired_metrics=decisions, summary=summary([*paired, *decisions]),
        limitations=limitations, confidence=confidence, n_bootstrap=n_bootstrap, seed=seed,
    )  # fmt: skip


def run_compare(
    run_a: Path | str, run_b: Path | str, out: Path | str, n_bootstrap: int = 1000,
    seed: int = 0,
) -> AuditComparison:  # fmt: skip
    """The comparison of two audits into OUT (index.html, comparison.json), never into either
    audit's folder."""
    out = Path(out)
    check_output(out)
    for run in (Path(run_a), Path(run_b)):
        if run.is_dir() and is_inside(Path(os.path.realpath(out)), Path(os.path.realpath(run))):
            raise MedxaiError(f"--out {out} is inside the audit {run}; choose a folder outside it")
    comparison = compare_audits(run_a, run_b, n_bootstrap, seed)
    with output_lock(out):
        write_comparison(out, comparison)
    return comparison
