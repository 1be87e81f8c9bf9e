"""Which films are the same: one dataset or not, the test films both audits used, and each
film's patient (for resampling patients with their films)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medxai.report.record import AuditResult
from medxai.statistics.bootstrap import Clusters
from pipelines.compare.folders import AuditFolder


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
