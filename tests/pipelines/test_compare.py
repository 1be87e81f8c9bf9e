"""`medxai compare` on the shared tiny audits: model v1 against its retrained, text-blind v2
on the same films; a run against itself; known answers planted into a copy of an audit; and
what it refuses. The shared audits' folders are only read: every copy goes to tmp_path."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from medxai.codec import read_record, write_record
from medxai.errors import MedxaiError
from medxai.report.comparison import AuditComparison
from medxai.report.record import AuditResult, RegionRow
from pipelines.audit.region_tests import matched
from pipelines.compare import EVALUATION, POOLED, compare_audits, run_compare


def patients_of(dataset: Path) -> dict[str, str]:
    """File name -> patient, read straight from the phantom's split files."""
    found = {}
    for listing in dataset.glob("test*.txt"):
        for line in listing.read_text().splitlines():
            patient, file, *_ = line.split()
            found[file] = patient
    return found


def paired(comparison: AuditComparison, group: str, figure: str):
    (found,) = [p for p in comparison.paired + comparison.paired_metrics
                if (p.group, p.figure) == (group, figure)]  # fmt: skip
    return found


def audit_copy(folder: Path, result: AuditResult) -> Path:
    """An audit folder holding only `result` as audit.json (no stage records)."""
    folder.mkdir(parents=True)
    write_record(folder / "audit.json", result)
    return folder


def with_text_rows(result: AuditResult, rows: list[RegionRow]) -> AuditResult:
    return replace(result, shortcut=replace(result.shortcut, images=rows))


def test_retrained_model_relies_less_on_the_text(tiny_audit, tiny_audit_of_cleaned):
    a, b = tiny_audit.result, tiny_audit_of_cleaned.result
    comparison = compare_audits(tiny_audit.out, tiny_audit_of_cleaned.out, n_bootstrap=200)
    films = {r.relative for r in a.shortcut.images} & {r.relative for r in b.shortcut.images}
    assert comparison.same_dataset and comparison.n_shared == len(films) == 18
    # at this size neither model's decision turns on the text (flip excess 0 in both): what
    # the text still moves is the pull of the donor's classes, which v2 no longer feels
    shift = paired(comparison, "text transplant", "probability shift")
    rows_a = {r.relative: r for r in a.shortcut.evidence.transplant.rows}
    rows_b = {r.relative: r for r in b.shortcut.evidence.transplant.rows}
    both = sorted(films & set(rows_a) & set(rows_b))
    assert shift.n == len(both) > 0
    per_film = [
        (rows_b[f].swap_target_prob - rows_b[f].blank_target_prob)
        - (rows_a[f].swap_target_prob - rows_a[f].blank_target_prob)
        for f in both
    ]
    assert shift.delta == pytest.approx(np.mean(per_film))
    assert shift.delta < 0 and shift.delta_ci[1] < 0 and shift.settled
    # over every transplanted film the paired means are the audits' own figures
    if len(both) == len(rows_a) == len(rows_b):
        assert shift.a == pytest.approx(a.shortcut.evidence.transplant.pooled.prob_shift)
        assert shift.b == pytest.approx(b.shortcut.evidence.transplant.pooled.prob_shift)
    patients = patients_of(tiny_audit.out / "dataset")
    files = {r.relative: r.file for r in a.shortcut.images}
    assert shift.unit == "patient"
    assert shift.n_clusters == len({patients[files[f]] for f in both}) < shift.n
    assert any("probability shift: lower in B" in line for line in comparison.summary)


def test_metrics_are_paired_per_test_split(tiny_audit, tiny_audit_of_cleaned):
    comparison = compare_audits(tiny_audit.out, tiny_audit_of_cleaned.out, n_bootstrap=200)
    a, b = tiny_audit.result.evaluations.baseline, tiny_audit_of_cleaned.result.evaluations.baseline
    assert {p.group for p in comparison.paired_metrics} == set(a)
    for split in a:
        accuracy = paired(comparison, split, "accuracy")
        assert accuracy.n == a[split].n == b[split].n
        assert accuracy.a == pytest.approx(a[split].accuracy)
        assert accuracy.b == pytest.approx(b[split].accuracy)
        assert accuracy.delta == pytest.approx(b[split].accuracy - a[split].accuracy)
        assert "McNemar" in accuracy.note


def test_a_run_against_itself_changes_nothing(tiny_audit):
    comparison = compare_audits(tiny_audit.out, tiny_audit.out, n_bootstrap=200)
    assert comparison.n_shared == len(tiny_audit.result.shortcut.images)
    assert comparison.paired and comparison.paired_metrics
    for p in comparison.paired + comparison.paired_metrics:
        assert p.n > 0 and p.a == p.b
        assert p.delta == 0 and p.delta_ci == (0.0, 0.0), (p.group, p.figure)
    assert comparison.summary == []
    assert all(v.a == v.b for v in comparison.verdict)


def test_planted_flips_give_a_known_paired_excess(tiny_audit, tmp_path):
    """In B, blurring the text flips every second tested film's decision and the control
    never does; A's films flip with neither: the paired flip excess is that share, exactly."""
    a = tiny_audit.result
    rows = a.shortcut.images
    tested = [r for r in rows if matched(r)]
    assert len(tested) >= 4
    flipped = {r.relative for r in tested[::2]}
    assert all(r.tests.deleted_prediction == r.predicted for r in tested)  # A: no flip

    def planted(row: RegionRow) -> RegionRow:
        if row.relative not in flipped:
            return row
        other = next(c for c in a.dataset.classes if c != row.predicted)
        return replace(row, tests=replace(row.tests, deleted_prediction=other))

    b = audit_copy(tmp_path / "b", with_text_rows(a, [planted(r) for r in rows]))
    comparison = compare_audits(tiny_audit.out, b, n_bootstrap=500)
    excess = paired(comparison, "text", "flip excess")
    assert excess.n == len(tested)
    assert (excess.a, excess.b) == (0.0, pytest.approx(len(flipped) / len(tested)))
    assert excess.delta == pytest.approx(len(flipped) / len(tested))
    assert excess.delta_ci[0] <= excess.delta <= excess.delta_ci[1] <= 1.0
    assert paired(comparison, "text", "insertion gain").delta == 0
    # B's folder keeps no stage records: A's still says who each patient is, and the
    # metrics are paired over the verdict films pooled, with the reason given
    assert excess.unit == "patient"
    assert {p.group for p in comparison.paired_metrics} == {POOLED}
    assert any(str(b / EVALUATION) in line for line in comparison.limitations)


def test_no_shared_film_or_another_dataset_is_shown_unpaired(tiny_audit, tmp_path):
    a = tiny_audit.result
    renamed = [replace(r, relative="elsewhere/" + r.relative) for r in a.shortcut.images]
    apart = audit_copy(tmp_path / "apart", with_text_rows(a, renamed))
    comparison = compare_audits(tiny_audit.out, apart, n_bootstrap=50)
    assert comparison.same_dataset and comparison.n_shared == 0
    assert comparison.paired == [] and comparison.paired_metrics == []
    assert any("share no test film" in line for line in comparison.limitations)

    dataset = replace(a.dataset, root="/somewhere/else")
    other = replace(a, dataset=dataset, data=replace(a.data, splits={}))
    other_folder = audit_copy(tmp_path / "other", other)
    comparison = compare_audits(tiny_audit.out, other_folder, n_bootstrap=50)
    assert not comparison.same_dataset and comparison.n_shared == 0
    assert comparison.dataset_note.startswith("different datasets")
    assert comparison.paired == [] and comparison.paired_metrics == []
    assert comparison.verdict and comparison.reliance and comparison.metrics  # still side by side


def test_writes_the_page_and_its_record(tiny_audit, tiny_audit_of_cleaned, tmp_path):
    out = tmp_path / "cmp"
    comparison = run_compare(tiny_audit.out, tiny_audit_of_cleaned.out, out, n_bootstrap=100)
    assert read_record(out / "comparison.json", AuditComparison) == comparison
    page = (out / "index.html").read_text()
    assert f"{comparison.n_shared} test films in both audits" in page
    assert "probability shift" in page and 'class="delta sig"' in page
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json", "index.html"]


def test_refuses_what_is_not_an_audit(tiny_audit, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MedxaiError, match=f"{empty / 'audit.json'}: not found"):
        compare_audits(tiny_audit.out, empty)
    with pytest.raises(MedxaiError, match="no such folder"):
        compare_audits(tmp_path / "missing", tiny_audit.out)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "audit.json").write_text(json.dumps({"schema": "someone-else", "x": 1}))
    with pytest.raises(MedxaiError, match=f"{foreign / 'audit.json'}: not a medxai audit"):
        compare_audits(tiny_audit.out, foreign)
    (foreign / "audit.json").write_text("{not json")
    with pytest.raises(MedxaiError, match=f"{foreign / 'audit.json'}: unreadable"):
        compare_audits(foreign, tiny_audit.out)


def test_never_writes_into_an_audit(tiny_audit, tmp_path):
    b = audit_copy(tmp_path / "b", tiny_audit.result)
    with pytest.raises(MedxaiError, match="inside the audit"):
        run_compare(tiny_audit.out, b, b / "comparison", n_bootstrap=10)
    assert sorted(p.name for p in b.iterdir()) == ["audit.json"]
