"""The `medxai` command line: the composition root that parses options and calls the library.

Every user error (a `MedxaiError` or a bad option) is printed as one line and exits 2.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medxai import __version__
from medxai.errors import DatasetError, MedxaiError

if TYPE_CHECKING:
    from medxai.data.check import DatasetReport

app = typer.Typer(
    name="medxai",
    help="Debug medical image classifiers: saliency, burned-in-text shortcut audits, cleaning.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def progress_bar() -> Progress:
    """The one progress-bar layout every long loop of the CLI uses."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _version(value: bool) -> None:
    if value:
        console.print(f"medxai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """medxai: find out why a medical image classifier decides what it decides."""


def _parse_image_dirs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for value in values:
        split, sep, folder = value.partition("=")
        if not sep or not split or not folder:
            raise MedxaiError(f"--image-dir expects SPLIT=DIR (e.g. test.txt=test), got {value!r}")
        pairs[split] = folder
    return pairs


def _split_names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [name for value in values for name in value.split(",") if name]


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the dataset to.")] = Path(
        "data/phantom"
    ),
    n_per_class: Annotated[int, typer.Option(min=1, help="Images per class (train + test).")] = 300,
    size: Annotated[int, typer.Option(min=64, help="Image side in pixels.")] = 224,
    seed: Annotated[int, typer.Option(help="Random seed; same arguments, same bytes.")] = 0,
    shortcut_strength: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="1: COVID-19 only from COVID sources; 0: source ⟂ label."
        ),
    ] = 1.0,
    test_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Share of each class that goes to test.")
    ] = 0.2,
    workers: Annotated[int, typer.Option(min=0, help="Processes (0: one per core).")] = 0,
) -> None:
    """Write a phantom COVIDx dataset: synthetic radiographs with a planted text shortcut."""
    from medxai.data.phantom import synthesize

    total_guess = n_per_class * 3 + 3 * round(test_fraction * n_per_class)
    with progress_bar() as bar:
        task = bar.add_task("synthesising", total=total_guess)
        summary = synthesize(
            out,
            n_per_class=n_per_class,
            size=size,
            seed=seed,
            shortcut_strength=shortcut_strength,
            test_fraction=test_fraction,
            workers=workers,
            progress=lambda k: bar.advance(task, k),
        )
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


@app.command("data-check")
def data_check(
    root: Annotated[Path, typer.Option(help="Dataset root (COVIDx layout).")],
    splits: Annotated[
        list[str] | None,
        typer.Option(help="Split files to check (repeat or comma-separate; default: ROOT/*.txt)."),
    ] = None,
    image_dir: Annotated[
        list[str] | None,
        typer.Option(help="SPLIT=DIR: where a split's images are (default train/, test/)."),
    ] = None,
    decode: Annotated[
        bool, typer.Option(help="Decode every image (--no-decode: only check they exist).")
    ] = True,
    workers: Annotated[int, typer.Option(min=1, help="Reader threads.")] = 4,
) -> None:
    """Validate a COVIDx-format dataset; exit 0 only when every line and image is fine."""

    from medxai.data.check import check_dataset

    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found")
    image_dirs = _parse_image_dirs(image_dir or [])

    with progress_bar() as bar:
        task = bar.add_task("checking images", total=None)
        report = check_dataset(
            root,
            _split_names(splits),
            image_dirs,
            decode=decode,
            workers=workers,
            progress=lambda k, total: bar.update(task, advance=k, total=total),
        )
    _print_check_report(report)
    raise typer.Exit(0 if report.ok else 1)


def _counter_text(counter: Counter, limit: int = 4) -> str:
    items = counter.most_common(limit)
    text = ", ".join(f"{k}: {v}" for k, v in items)
    return text + (f", … ({len(counter) - limit} more)" if len(counter) > limit else "")


def _print_check_report(report: DatasetReport) -> None:
    classes = report.label_order()
    per_split = Table(title=f"COVIDx dataset at {report.root}")
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
    for split in report.splits:
        sizes = Counter({f"{w}×{h}": n for (w, h), n in split.sizes.items()})
        depths = Counter({f"{d}-bit": n for d, n in split.bit_depths.items()})
        console.print(
            f"{split.split}: images in {split.image_dir}; formats {_counter_text(split.formats)}; "
            f"depths {_counter_text(depths)}; sizes {_counter_text(sizes)}",
            highlight=False,
            soft_wrap=True,
        )
    for split in report.splits:
        for problem in split.line_problems:
            console.print(f"[red]malformed[/red] {problem}", highlight=False, soft_wrap=True)
        for skipped in split.unreadable:
            record = skipped.record
            console.print(
                f"[red]unreadable[/red] {record.path} ({split.split}:{record.line}): "
                f"{skipped.reason}",
                highlight=False,
                soft_wrap=True,
            )
    for (a, b), patients in report.shared_patients().items():
        console.print(
            f"[yellow]warning[/yellow] {len(patients)} patient(s) in both {a} and {b} "
            f"(e.g. {', '.join(sorted(patients)[:3])})",
            highlight=False,
            soft_wrap=True,
        )
    problems = sum(len(s.line_problems) + len(s.unreadable) for s in report.splits)
    verdict = "[green]all is well[/green]" if report.ok else f"[red]{problems} problem(s)[/red]"
    console.print(verdict)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="medxai", standalone_mode=False)
    except typer.Abort:
        err_console.print("medxai: aborted")
        sys.exit(130)
    except typer.TyperException as err:  # bad option, missing argument, unknown command
        err_console.print(f"medxai: error: {err.format_message()}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except MedxaiError as err:
        err_console.print(f"medxai: error: {err}", highlight=False, soft_wrap=True, markup=False)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
