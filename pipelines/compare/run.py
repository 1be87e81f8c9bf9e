"""The whole comparison: two audits read, matched and paired into one record, and written
into a folder outside both."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from medxai import __version__
from medxai.errors import MedxaiError
from medxai.outputs import check_output, output_lock
from medxai.paths import is_inside
from medxai.report.comparison import COMPARE_SCHEMA, AuditComparison, PairedFigure, write_comparison
from pipelines.compare.films import Patients, same_dataset, shared_films
from pipelines.compare.folders import read_run
from pipelines.compare.paired import Pairing, paired_metrics, paired_regions, paired_transplant
from pipelines.compare.unpaired import (
    UNPAIRED,
    audit_side,
    metric_figures,
    reliance_figures,
    side_by_side,
    verdict_pairs,
)


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
