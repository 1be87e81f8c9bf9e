"""`medxai clean`: detect burned-in text, inpaint it, write a cleaned copy of the dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from medxai.cli.common import (
    Classes,
    DatasetRoot,
    DatasetSplits,
    Detector,
    Device,
    Layout,
    SourceFrom,
    Workers,
    console,
    parse_names,
    progress_task,
)
from medxai.errors import MedxaiError


def clean(
    root: DatasetRoot,
    out: Annotated[Path, typer.Option(help="Where the cleaned copy goes (not inside --root).")],
    layout: Layout = "auto",
    classes: Classes = None,
    source_from: SourceFrom = "none",
    splits: DatasetSplits = None,
    detector: Detector = "fused",
    text_threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="CRAFT text confidence.")
    ] = 0.7,
    radius: Annotated[int, typer.Option(min=1, max=100, help="Telea inpainting radius.")] = 10,
    dilate: Annotated[int, typer.Option(min=0, max=100, help="Grow text boxes by PX pixels.")] = 4,
    workers: Workers = 1,
    device: Device = "auto",
) -> None:
    """Detect burned-in text, inpaint it (Telea) and write a cleaned copy (same layout) +
    manifest."""
    from data_cleaning.clean import CleanSettings, clean_dataset, summary_lines
    from data_cleaning.detect import DEFAULT_DETECTOR, DETECTORS
    from medxai import distributed
    from medxai.device import resolve_device

    detector = DEFAULT_DETECTOR if detector == "auto" else detector
    if detector not in DETECTORS:
        raise MedxaiError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    run_device = distributed.init_from_env(resolve_device(device))  # torchrun: images dealt
    settings = CleanSettings(
        detector=detector, text_threshold=text_threshold, radius=radius, dilate=dilate,
        gpu=run_device.type == "cuda",
    )  # fmt: skip
    show = distributed.is_main()
    with progress_task("cleaning", visible=show) as progress:
        summary = clean_dataset(
            root, out, parse_names(splits) or None, settings, workers,
            progress=progress if show else None, layout=layout, classes=classes,
            source_from=source_from,
        )  # fmt: skip
    distributed.shutdown()
    if show:
        print_clean_summary(summary_lines(summary, out))
    raise typer.Exit(1 if summary.failed else 0)


def print_clean_summary(lines: list[str]) -> None:
    """The lines of data_cleaning.clean.summary_lines, their 'warning' and 'failed' in colour."""
    colours = {"warning": "yellow", "failed": "red"}
    for line in lines:
        first, _, rest = line.partition(" ")
        colour = colours.get(first)
        text = f"[{colour}]{first}[/{colour}] {escape(rest)}" if colour else escape(line)
        console.print(text, highlight=False, soft_wrap=True)
