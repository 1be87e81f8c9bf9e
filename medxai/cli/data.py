"""`medxai synth` and `medxai data-check`: make a phantom dataset, validate a dataset."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medxai.cli.common import (
    Classes,
    DatasetRoot,
    DatasetSplits,
    ImageDirs,
    Layout,
    Seed,
    ShortcutStrength,
    SourceFrom,
    Workers,
    console,
    parse_names,
    processes_option,
    progress_task,
)
from medxai.cli.inputs import parse_image_dirs

if TYPE_CHECKING:
    from medxai.data.check import DatasetReport
    from medxai.data.phantom import SynthSummary
    from medxai.data.traits import SplitTraitCheck
    from medxai.statistics.predictability import TraitPredictability

TRAITS_SEED = 0  # the films data-check measures: the same on every run


def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the dataset to.")] = Path(
        "data/phantom"
    ),
    n_per_class: Annotated[
        int, typer.Option(min=1, max=100_000, help="Images per class (train + test).")
    ] = 300,
    size: Annotated[int, typer.Option(min=64, max=2048, help="Image side in pixels.")] = 224,
    seed: Seed = 0,
    shortcut_strength: ShortcutStrength = 1.0,
    test_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Share of each class that goes to test.")
    ] = 0.2,
    workers: Annotated[int, processes_option("Processes (0: one per core).")] = 0,
) -> None:
    """Write a phantom COVIDx dataset: synthetic radiographs with a planted text shortcut."""
    from medxai.data.phantom import synthesize
    from medxai.outputs import check_output

    check_output(out)

    total_guess = n_per_class * 3 + 3 * round(test_fraction * n_per_class)
    with progress_task("synthesising", total_guess) as progress:
        summary = synthesize(
            out,
            n_per_class=n_per_class,
            size=size,
            seed=seed,
            shortcut_strength=shortcut_strength,
            test_fraction=test_fraction,
            workers=workers,
            progress=progress,
        )
    _print_synth_summary(summary)


def _print_synth_summary(summary: SynthSummary) -> None:
    table = Table(title=f"phantom COVIDx at {summary.out}")
    classes = sorted({c for counts in summary.counts.values() for c in counts})
    table.add_column("split")
    for name in classes:
        table.add_column(name, justify="right")
    for split, counts in summary.counts.items():
        table.add_row(split, *(str(counts.get(c, 0)) for c in classes))
    console.print(table)
    rate = summary.n_images / summary.seconds if summary.seconds else float("inf")
    console.print(f"{summary.n_images} images in {summary.seconds:.1f} s ({rate:.0f} images/s)")


def data_check(
    root: DatasetRoot,
    layout: Layout = "auto",
    classes: Classes = None,
    source_from: SourceFrom = "none",
    splits: DatasetSplits = None,
    image_dir: ImageDirs = None,
    decode: Annotated[
        bool, typer.Option(help="Decode every image (--no-decode: only check they exist).")
    ] = True,
    workers: Workers = 4,
    traits: Annotated[
        bool,
        typer.Option(
            help="Measure each film's acquisition traits (size, depth, format, intensity, "
            "sharpness, noise, border) and print those that predict the label "
            "(--no-traits: skip)."
        ),
    ] = True,
    traits_sample: Annotated[
        int,
        typer.Option(
            min=0,
            max=1_000_000,
            help="Films measured per split for the traits, drawn with a fixed seed "
            "(0: every film).",
        ),
    ] = 2000,
) -> None:
    """Validate a dataset (COVIDx split files, CSV manifest or folder tree): the layout read
    and why; exit 0 only when every line and image is fine and training and the audit would
    take it. Then, before any model: which acquisition traits of the films predict their
    label."""
    from medxai.data.check import check_dataset
    from medxai.data.layouts import read_dataset

    image_dirs = parse_image_dirs(image_dir)
    names = parse_names(splits) or None
    index = read_dataset(root, layout, names, classes, source_from, image_dirs)  # errors: 2
    with progress_task("checking images") as progress:
        report = check_dataset(
            root, decode=decode, workers=workers, progress=progress, index=index, classes=classes
        )  # fmt: skip
    print_check_report(report)
    if traits and decode:
        from medxai.data.traits import check_traits

        with progress_task("measuring traits") as progress:
            checks = check_traits(report, traits_sample or None, TRAITS_SEED, workers,
                                  progress=progress)  # fmt: skip
        print_trait_checks(checks)
    elif traits:
        console.print("traits: not measured (--no-decode decodes no image)", highlight=False)
    raise typer.Exit(0 if report.ok else 1)


# -- the data-check report ---------------------------------------------------------------
def print_check_report(report: DatasetReport) -> None:
    if report.layout_why:
        console.print(f"layout: {report.layout}, {report.layout_why}", highlight=False,
                      soft_wrap=True, markup=False)  # fmt: skip
    _print_count_tables(report)
    _print_confound(report)
    _print_split_formats(report)
    _print_problems(report)
    for note in [*report.notes, *report.needs.notes]:
        console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    for warning in [*report.warnings, *report.needs.warnings]:
        console.print(f"warning: {warning}", highlight=False, soft_wrap=True, markup=False)
    for (a, b), patients in report.shared_patients().items():
        console.print(
            f"[yellow]warning[/yellow] {len(patients)} patient(s) in both {a} and {b} "
            f"(e.g. {', '.join(sorted(patients)[:3])})",
            highlight=False,
            soft_wrap=True,
        )
    problems = (
        len(report.problems)
        + len(report.needs.problems)
        + sum(len(s.line_problems) + len(s.unreadable) for s in report.splits)
    )
    verdict = "[green]all is well[/green]" if report.ok else f"[red]{problems} problem(s)[/red]"
    console.print(verdict)


def _print_count_tables(report: DatasetReport) -> None:
    """Images per split and class, then per source and class (a confound shows up here)."""
    classes = report.label_order()
    per_split = Table(title=f"{report.layout} dataset at {report.location or report.root}")
    per_source = Table(title="images per source and class (all splits)")
    for name in ("split", "images", *classes, "problems"):
        per_split.add_column(name, justify="left" if name == "split" else "right")
    for name in ("source", *classes):
        per_source.add_column(name, justify="left" if name == "source" else "right")
    by_source: dict[str, Counter] = {}
    for split in report.splits:
        counts = split.classes
        problems = len(split.line_problems) + len(split.unreadable)
        per_split.add_row(
            split.split, str(len(split.records)), *(str(counts[c]) for c in classes), str(problems)
        )
        for record in split.records:
            by_source.setdefault(record.source or "-", Counter())[record.label] += 1
    for source, counts in sorted(by_source.items()):
        per_source.add_row(source, *(str(counts[c]) for c in classes))
    console.print(per_split)
    console.print(per_source)


def _print_confound(report: DatasetReport) -> None:
    """Per split: can the label be read off the source alone? (before any model)"""
    classes = report.label_order()
    table = Table(
        title="source ↔ label, per split (bias-corrected Cramér's V: 1 = the source determines"
        " it; large from 0.5/√(min(sources, classes) − 1))"
    )
    columns = ("split", "sources", "Cramér's V", "level", "label from source", "majority label")
    for name in (*columns, ""):
        table.add_column(name, justify="left" if name in ("split", "") else "right")
    for split in report.splits:
        c = split.confound(classes)
        flag = "[red]confound: the source nearly determines the class[/red]" if c.strong else ""
        table.add_row(
            split.split, str(c.n_sources), f"{c.cramers_v:.2f}", c.level,
            f"{c.source_accuracy:.0%}", f"{c.majority_accuracy:.0%}", flag,
        )  # fmt: skip
    console.print(table)


def _counter_text(counter: Counter, limit: int = 4) -> str:
    items = counter.most_common(limit)
    text = ", ".join(f"{k}: {v}" for k, v in items)
    return text + (f", … ({len(counter) - limit} more)" if len(counter) > limit else "")


def _print_split_formats(report: DatasetReport) -> None:
    for split in report.splits:
        sizes = Counter({f"{w}×{h}": n for (w, h), n in split.sizes.items()})
        depths = Counter({f"{d}-bit": n for d, n in split.bit_depths.items()})
        burned = f"; DICOM Burned In Annotation {_counter_text(split.burned_in)}"
        console.print(
            f"{split.split}: images in {split.image_dir}; formats {_counter_text(split.formats)}; "
            f"depths {_counter_text(depths)}; sizes {_counter_text(sizes)}"
            f"{burned if split.burned_in else ''}",
            highlight=False,
            soft_wrap=True,
        )


def _print_problems(report: DatasetReport) -> None:
    for problem in report.problems:
        console.print(
            f"[red]malformed[/red] {escape(str(problem))}", highlight=False, soft_wrap=True
        )
    for problem in report.needs.problems:
        console.print(f"[red]unusable[/red] {escape(problem)}", highlight=False, soft_wrap=True)
    for split in report.splits:
        for problem in split.line_problems:
            console.print(
                f"[red]malformed[/red] {escape(str(problem))}", highlight=False, soft_wrap=True
            )
        for skipped in split.unreadable:
            record = skipped.record
            at = f"{split.split}:{record.line}" if record.line else split.split
            console.print(
                f"[red]unreadable[/red] {escape(str(record.path))} ({escape(at)}): "
                f"{escape(skipped.reason)}",
                highlight=False,
                soft_wrap=True,
            )


# -- the acquisition traits --------------------------------------------------------------
def print_trait_checks(checks: list[SplitTraitCheck]) -> None:
    """Per split: the traits that predict the label alone, with their figures."""
    for check in checks:
        traits, found = check.traits, check.predictability
        aside = []
        if traits.sampled < traits.n_films:
            aside.append(f"a sample of {traits.sampled} drawn with seed {traits.seed}")
        if traits.failed:
            aside.append(f"{len(traits.failed)} could not be measured")
        where = f"{traits.split}: {len(traits.films)} of {traits.n_films} films measured"
        where += f" ({'; '.join(aside)})" if aside else ""
        for failure in traits.failed:
            console.print(
                f"[yellow]traits skipped[/yellow] {escape(failure.file)}: {escape(failure.reason)}",
                highlight=False,
                soft_wrap=True,
            )
        if found.note:
            console.print(f"traits, {where}: {found.note}", highlight=False, soft_wrap=True)
            continue
        rule = (f"flagged when the {found.settings.confidence:.0%} interval's lower bound is "
                f"above {found.settings.margin:+.2f}")  # fmt: skip
        verdict = (
            f"[red]{len(found.flagged)} acquisition trait(s) predict the label[/red]"
            if found.flagged
            else "[green]no acquisition trait predicts the label[/green]"
        )
        console.print(
            f"traits, {where}: {verdict} ({len(found.rows)} measured; {rule})",
            highlight=False,
            soft_wrap=True,
        )
        if not found.flagged:
            continue
        table = Table(
            title=f"acquisition traits that predict the label ({escape(traits.split)})",
            caption=f"balanced accuracy of a depth-{found.settings.max_depth} tree on the "
            f"trait alone ({found.settings.folds}-fold), over chance (1/{len(found.classes)}), "
            "with its interval; per class: median (mode for categories)",
        )
        for name in ("trait", "over chance [CI]", "within source [CI]"):
            table.add_column(escape(name), justify="left" if name == "trait" else "right")
        for name in found.classes:
            table.add_column(escape(name), justify="right")
        for name in found.flagged:
            row = found.row(name)
            table.add_row(name, _with_interval(row.score, row.ci),
                          _within_source(row), *_typical(row, found.classes))  # fmt: skip
        console.print(table)


def _with_interval(value: float, interval: tuple[float, float]) -> str:
    return escape(f"{value:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}]")


def _within_source(row: TraitPredictability) -> str:
    if row.within_source is None or row.within_source_ci is None:
        return "-"
    return (f"{_with_interval(row.within_source, row.within_source_ci)} "
            f"({row.within_source_sources} src)")  # fmt: skip


def _typical(row: TraitPredictability, classes: list[str]) -> list[str]:
    if row.kind == "categorical":
        return [escape(row.class_modes.get(c, "-")) for c in classes]
    return [f"{row.class_medians[c]:.3g}" if c in row.class_medians else "-" for c in classes]
