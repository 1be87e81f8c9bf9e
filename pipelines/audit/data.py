"""The audit's data stage: the phantom (when no dataset is given), the dataset read once, and
its check (counts, formats, sources, unreadable files) — handed on as one `Data` value."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from medxai.data.check import DatasetReport, check_dataset
from medxai.data.classes import class_order
from medxai.data.layouts import dataset_root, read_dataset
from medxai.data.records import Record, SplitIndex, patient_rule, with_patients
from medxai.data.sampling import balanced_patients
from medxai.data.traits import check_traits
from medxai.errors import DatasetError
from medxai.report.record import (
    DataSummary,
    FileNote,
    PhantomSummary,
    SplitCounts,
    TestSample,
    Ties,
)
from medxai.statistics.bootstrap import Clusters
from medxai.statistics.predictability import TraitReport
from pipelines.audit.config import COVIDX_HELP, AuditConfig
from pipelines.audit.context import Run
from pipelines.audit.inputs import TestImage

BALANCED_SPLIT = "test_balanced.txt"
TRAIT_SAMPLE = 2000  # films per split whose acquisition traits are measured


@dataclass(frozen=True)
class Data:
    """The dataset as every later stage sees it: readable records only."""

    root: Path  # the folder the images are relative to; never written
    index: SplitIndex
    train_split: str | None  # None: a test set alone (a user's model, no training)
    tests: list[str]  # the test splits, the primary one first
    classes: list[str]
    summary: DataSummary
    records: dict[str, list[Record]]  # split -> its readable records (tests: as sampled)
    test: dict[str, list[TestImage]]  # test split -> its readable images (as sampled)
    ties: Ties  # the split the source–class ties are counted on
    sample: TestSample | None = None  # set when --sample drew fewer than all test films

    @property
    def ties_counts(self) -> dict[str, dict[str, int]]:
        """Films per source and class of the ties' split ("-": source unknown)."""
        return self.summary.splits[self.ties.split].sources

    @property
    def known(self) -> set[str]:
        """Every readable film of the dataset, by its path relative to the root."""
        return {self.index.relative(r) for rows in self.records.values() for r in rows}

    @property
    def n_films(self) -> int:
        """Every film the split files list, readable or not: what the cleaning covers."""
        return sum(len(rows) for rows in self.index.records.values())

    @cached_property
    def patients(self) -> dict[str, str]:
        """Every test film's patient, by its relative path."""
        return {i.relative: i.record.patient_id for i in self.test_images}

    def clusters(self, relatives: Sequence[str]) -> Clusters:
        """The test films' patients, for a bootstrap that resamples patients with their films
        ("film" is the unit when no two films share a patient)."""
        return Clusters.of([self.patients.get(r) for r in relatives])

    @property
    def test_images(self) -> list[TestImage]:
        """Every test image once, in split order."""
        return list({i.relative: i for split in self.test.values() for i in split}.values())


def location(config: AuditConfig, out: Path) -> Path:
    """What the dataset is read from: its folder, or its CSV manifest."""
    return out / "dataset" if config.data.dataset == "phantom" else Path(config.data.root)


def find_root(config: AuditConfig, out: Path) -> Path:
    """The folder the images are relative to (a CSV manifest's folder), checked to exist."""
    where, data = location(config, out), config.data
    if data.dataset == "phantom":
        return where
    if not where.exists():
        raise DatasetError(f"{where}: dataset root not found; {COVIDX_HELP}")
    if data.dataset == "covidx" and config.trains and not (where / data.train_split).is_file():
        raise DatasetError(f"{where / data.train_split}: split file not found; {COVIDX_HELP}")
    return dataset_root(where)


def load_data(run: Run, root: Path) -> Data:
    """Phantom → the dataset read once (its first problem stops the run) → the data check."""
    if run.config.data.dataset == "phantom":
        run.cache.run("dataset", PhantomSummary, lambda: make_phantom(run, root))
    index = read_index(run, root)
    train, tests = split_names(run.config, index)
    tied = ties_split(run.config, index, train, tests)
    run.hooks.log(f"layout: {index.layout}, {index.layout_why}")
    summary = run.cache.run("data_check", DataSummary, lambda: check(run, index))
    bad = {u.file for u in summary.unreadable}
    records = {
        split: [r for r in rows if str(r.path) not in bad] for split, rows in index.records.items()
    }
    classes = list(index.classes or class_order(r.label for r in records.get(train, [])))
    test = {s: [TestImage(r, index.relative(r)) for r in records[s]] for s in tests}
    found = ties(tied, run.config.data.ties_from is not None, tests, summary)
    run.hooks.log(found.note)
    data = Data(root, index, train, tests, classes, summary, records, test, found)
    return sampled(data, run.config.data.sample, run.config.seed)


def sampled(data: Data, n: int | None, seed: int, cause: str = "") -> Data:
    """The verdict stages' test films: `n` of them, whole patients, classes in turn
    (`medxai.data.sampling`); the index, and so the cleaning, keeps every film. `cause`
    says what asked for the sample when `--sample` did not; a sample of a sample keeps the
    first one's total."""
    images = data.test_images
    if n is None or n >= len(images):
        return data
    chosen = balanced_patients(
        [i.relative for i in images], [i.record.patient_id for i in images],
        [i.record.label for i in images], n, seed,
    )  # fmt: skip
    test = {s: [i for i in split if i.relative in chosen] for s, split in data.test.items()}
    records = data.records | {s: [i.record for i in split] for s, split in test.items()}
    kept = [i for i in images if i.relative in chosen]
    sample = TestSample(
        requested=n, n_films=len(kept),
        n_total=data.sample.n_total if data.sample else len(images),
        n_patients=len({i.record.patient_id or i.relative for i in kept}),
        per_class=dict(Counter(i.record.label for i in kept)), seed=seed, cause=cause,
    )  # fmt: skip
    return replace(data, records=records, test=test, sample=sample)


def make_phantom(run: Run, root: Path) -> PhantomSummary:
    from medxai.data.phantom import synthesize

    p = run.config.phantom
    total = 3 * p.n_per_class + 3 * round(0.2 * p.n_per_class)
    summary = synthesize(
        root, n_per_class=p.n_per_class, size=p.size, seed=p.seed,
        shortcut_strength=p.shortcut_strength, progress=run.progress("synthesising phantom", total),
    )  # fmt: skip
    return PhantomSummary(summary.n_images, summary.counts)


def read_index(run: Run, root: Path) -> SplitIndex:
    """COVIDx: the training split and the test splits only (test.txt, and test_balanced.txt
    if there); other layouts: every split."""
    data, splits = run.config.data, None
    layout = "covidx" if data.dataset == "phantom" else data.dataset
    if layout == "covidx":
        train = (
            [data.train_split] if run.config.trains or (root / data.train_split).is_file() else []
        )
        splits = list(dict.fromkeys([*train, *covidx_tests(run.config, root), data.ties_from]))
        splits = [split for split in splits if split is not None]
        for split in splits:
            if not (root / split).is_file():
                raise DatasetError(f"{root / split}: split file not found; {COVIDX_HELP}")
    where = location(run.config, run.out)
    index = read_dataset(where, layout, splits, data.classes or None, data.source_from)
    index.raise_problems()
    if data.patient_pattern:
        rule = patient_rule(data.patient_pattern)
        index.records = {split: with_patients(rs, rule) for split, rs in index.records.items()}
    return index


def covidx_tests(config: AuditConfig, root: Path) -> list[str]:
    if config.data.test_splits:
        return list(config.data.test_splits)
    return ["test.txt"] + ([BALANCED_SPLIT] if (root / BALANCED_SPLIT).is_file() else [])


def split_names(config: AuditConfig, index: SplitIndex) -> tuple[str | None, list[str]]:
    """The training split (the configured one if the dataset has it, else its train* split;
    None when it has none and the audit trains nothing) and the test splits (the configured
    ones, else every test* split)."""
    data = config.data
    train = data.train_split if data.train_split in index.records else index.find_train_split()
    if train is None and config.trains:
        index.train_split()  # the one-line error: the audit trains a model on it
    tests = list(data.test_splits) or index.test_splits()
    missing = [s for s in tests if s not in index.records]
    if missing or not tests:
        where = index.listing or index.root
        raise DatasetError(
            f"{where}: no test split {missing or '(a split named test*)'} among "
            f"{', '.join(index.records)}"
        )
    return train, tests


def ties_split(config: AuditConfig, index: SplitIndex, train: str | None, tests: list[str]) -> str:
    """The split the source–class ties are counted on: the one named with --ties-from, else
    the training split, else the primary test split."""
    named = config.data.ties_from
    if named is not None and named not in index.records:
        raise DatasetError(
            f"{index.listing or index.root}: --ties-from {named!r}: no such split among "
            f"{', '.join(index.records)}"
        )
    return named or train or tests[0]


def ties(split: str, named: bool, tests: list[str], summary: DataSummary) -> Ties:
    """The ties' split (`named` with --ties-from, else the training split, else a test
    split: then the ties and the tests share films) and what the report says of it."""
    chosen = "--ties-from" if named else "test split" if split in tests else "training split"
    shares = split in tests
    n_sources = sum(1 for source in summary.splits[split].sources if source != "-")
    note = f"Source–class ties (which source sends which class) from {split} ({chosen}"
    note += f", {n_sources} source(s))." if n_sources else ")"
    if not n_sources:
        note += (
            f": no film of {split} names its source, so there are no ties; the text and "
            "style transplants and the source row are not measured."
        )
    elif shares:
        why = "" if named else ": the dataset has no training split"
        note += (
            f" It is a test split{why}, so the ties and the tests share films: a source's class "
            "is read off the very films it is then tested on, and with few films per source a "
            "tie may be chance. Name a split of the same sources with --ties-from to keep "
            "them apart."
        )
    return Ties(split, chosen, shares, n_sources, note)


def check(run: Run, index: SplitIndex) -> DataSummary:
    """Read every image once; log warnings and unreadable files; summarise the dataset."""
    report = check_dataset(
        index.root, list(index.records), index=index,
        progress=lambda k, n: run.hooks.progress("checking data", k, n),
    )  # fmt: skip
    for split in report.splits:
        if split.line_problems:
            raise DatasetError(str(split.line_problems[0]))
    for line in report.warnings:
        run.hooks.log(f"warning: {line}")
    for split in report.splits:
        for skipped in split.unreadable:
            run.hooks.log(f"skipping unreadable {skipped.record.path}: {skipped.reason}")
    return replace(data_summary(report), traits=acquisition_traits(run, report))


def acquisition_traits(run: Run, report: DatasetReport) -> dict[str, TraitReport]:
    """Per split, how well each acquisition trait (size, format, tone, sharpness, noise,
    border) predicts the label, on a class-balanced sample of TRAIT_SAMPLE films."""
    checks = check_traits(
        report, TRAIT_SAMPLE, run.config.seed,
        progress=lambda k, n: run.hooks.progress("acquisition traits", k, n),
    )  # fmt: skip
    for check in checks:
        for failure in check.traits.failed:
            run.hooks.log(f"traits skipped {failure.file}: {failure.reason}")
    return {check.traits.split: check.predictability for check in checks}


def _merge(counters: Iterable[Counter]) -> Counter:
    total: Counter = Counter()
    for counter in counters:
        total.update(counter)
    return total


def _split_counts(split, classes: list[str]) -> SplitCounts:
    """Images per class, and per source and class (every class listed, zeros too)."""
    return SplitCounts(
        n=len(split.records),
        classes={name: split.classes[name] for name in classes},
        sources=split.source_label_counts(classes),
    )


def data_summary(report: DatasetReport) -> DataSummary:
    """Counts per split, class and source; formats; DICOM burned-in tags; unreadable files."""
    classes = report.label_order()
    formats = _merge(s.formats for s in report.splits)
    burned = _merge(s.burned_in for s in report.splits)
    dicom = formats["dicom"]
    return DataSummary(
        splits={split.split: _split_counts(split, classes) for split in report.splits},
        classes=classes,
        formats={k.upper(): v for k, v in formats.items()},
        bit_depths={str(k): v for k, v in _merge(s.bit_depths for s in report.splits).items()},
        sizes={f"{w}x{h}": n for (w, h), n in _merge(s.sizes for s in report.splits).items()},
        burned_in_annotation={
            "YES": burned["YES"],
            "NO": burned["NO"],
            "absent": dicom - burned["YES"] - burned["NO"],
            "not DICOM": sum(formats.values()) - dicom,
        },  # fmt: skip
        unreadable=[
            FileNote(str(k.record.path), k.reason) for s in report.splits for k in s.unreadable
        ],
        shared_patients=sorted(
            {p for patients in report.shared_patients().values() for p in patients}
        ),
        confound={split.split: split.confound(classes) for split in report.splits},
    )
