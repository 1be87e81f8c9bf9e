"""`medxai audit`: the COVIDx shortcut audit end to end, and its one-screen summary."""

from __future__ import annotations

import copy
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from medxai.cli.common import (
    Classes,
    Device,
    MaybeDetector,
    MaybeEpochs,
    MaybeImageSize,
    MaybeModel,
    MaybeRoot,
    MaybeSeed,
    MaybeShortcutStrength,
    ModelImport,
    PositiveClass,
    SourceFrom,
    TestSplits,
    console,
    methods_option,
    parse_methods,
    parse_names,
    progress_bar,
)
from medxai.cli.inputs import (
    ImportWeights,
    OnnxFile,
    PreprocessingFile,
    TorchScriptFile,
    listed_options,
    model_source,
)
from medxai.data.classes import parse_classes
from medxai.errors import MedxaiError

if TYPE_CHECKING:
    import torch

    from medxai.report.record import AuditResult


def panel(option: Any, name: str) -> Any:
    """An option type shared with other commands, shown under `name` in --help."""
    kind, info = option.__origin__, copy.copy(option.__metadata__[0])
    info.rich_help_panel = name
    return Annotated[kind, info]


Methods = Annotated[
    list[str] | None, methods_option("igos++,sigcam,gradcam; --quick: sigcam,gradcam")
]
FailOn = Enum("FailOn", {level: level for level in ("weak", "moderate", "strong")}, type=str)
DATA, MODEL, SALIENCY, TRAIN, CLEAN, RUN = (
    "Dataset", "Your model", "Saliency", "Training", "Cleaning", "Run",
)  # fmt: skip


def audit(
    root: panel(MaybeRoot, DATA) = None,
    layout: Annotated[
        str | None,
        typer.Option(
            help="Layout of --root: auto (the default), covidx, csv or folders. Without "
            "--root the audit generates the phantom.",
            rich_help_panel=DATA,
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(hidden=True, help="Old name of --layout (also 'phantom').")
    ] = None,
    test_split: panel(TestSplits, DATA) = None,
    classes: panel(Classes, DATA) = None,
    source_from: panel(SourceFrom, DATA) = None,
    ties_from: Annotated[
        str | None,
        typer.Option(
            metavar="SPLIT",
            help="The split whose films tie each source to the classes it sends, for the "
            "transplants and the source row (default: the training split; without one, the "
            "test split itself, which the report flags).",
            rich_help_panel=DATA,
        ),
    ] = None,
    regions: Annotated[
        Path | None,
        typer.Option(
            help="Your own regions to test as cues (devices, ECG leads, rulers): a CSV "
            "image,kind,x0,y0,x1,y1 or a folder FOLDER/<kind>/<image>.png of masks.",
            rich_help_panel=DATA,
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            rich_help_panel=DATA,
            help="Run the verdict stages on N test films only (whole patients, the classes in "
            "turn, drawn with --seed); cleaning still covers every film. The report states "
            "the sample and how much wider its intervals are.",
        ),
    ] = None,
    patient_pattern: Annotated[
        str | None,
        typer.Option(
            help="How to find the patient in a file name, so a patient's films are resampled "
            "together: a regular expression whose group is the patient id, e.g. '^([^_]+)_' "
            "(the part before the first _). Default: the split file's or manifest's patient id; "
            "in a folder tree every film is its own patient.",
            rich_help_panel=DATA,
        ),
    ] = None,
    shortcut_strength: panel(MaybeShortcutStrength, DATA) = None,
    n_per_class: Annotated[
        int | None,
        typer.Option(min=10, max=100_000, help="Phantom images per class.", rich_help_panel=DATA),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Audit this medxai checkpoint (a model.pt).", rich_help_panel=MODEL),
    ] = None,
    model_import: panel(ModelImport, MODEL) = None,
    torchscript: panel(TorchScriptFile, MODEL) = None,
    onnx: panel(OnnxFile, MODEL) = None,
    weights: panel(ImportWeights, MODEL) = None,
    preprocessing: panel(PreprocessingFile, MODEL) = None,
    method: panel(Methods, SALIENCY) = None,
    n_explain: Annotated[
        int | None,
        typer.Option(min=1, max=1000, help="Images explained per class.", rich_help_panel=SALIENCY),
    ] = None,
    model: panel(MaybeModel, TRAIN) = None,
    epochs: panel(MaybeEpochs, TRAIN) = None,
    image_size: panel(MaybeImageSize, TRAIN) = None,
    positive_class: panel(PositiveClass, TRAIN) = None,
    retrain: Annotated[
        bool | None,
        typer.Option(
            help="Train a model on the cleaned data and compare (default: yes when "
            "the audit trains its own model, no for a user's model).",
            rich_help_panel=TRAIN,
        ),
    ] = None,
    detector: panel(MaybeDetector, CLEAN) = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="A YAML file of settings, nested as audit.json's config (data, model, train, "
            "explain, clean, ...); the options given here override it.",
            rich_help_panel=RUN,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Report folder (default reports/<dataset>-<time>/).", rich_help_panel=RUN
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            help="Small sizes for a fast look, under a time budget of a few minutes (--budget).",
            rich_help_panel=RUN,
        ),
    ] = False,
    budget: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            metavar="MINUTES",
            rich_help_panel=RUN,
            help="Time budget: the saliency and sanity sizes (RISE masks, iterations, films "
            "explained, sanity films), then the verdict's test films (sampled as --sample "
            "does, down to 60) are cut to fit the cost estimate; the report says what was cut.",
        ),
    ] = None,
    device: panel(Device, RUN) = "auto",
    seed: panel(MaybeSeed, RUN) = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            rich_help_panel=RUN,
            help="A CI gate: exit 4 when any verdict row reaches this level or a higher one, "
            "5 when none does but a row is inconclusive, 6 when the verdict is not applicable "
            "(the model did not learn), else 0 (docs/ci.md).",
        ),
    ] = None,
    pdf: Annotated[
        bool,
        typer.Option(
            "--pdf",
            help="Also print the report to OUT/report.pdf (headless Chromium): figures "
            "embedded, a page per section, the settings on the last page.",
            rich_help_panel=RUN,
        ),
    ] = False,
) -> None:
    """Audit end to end: train (or take the user's model), explain, measure text reliance,
    clean, optionally retrain, report."""
    import time

    from medxai import distributed
    from medxai.device import resolve_device
    from medxai.report.pdf import PDF_NAME, find_printer, write_pdf
    from pipelines.audit import audit_config

    options = {"checkpoint": checkpoint, "import": model_import, "torchscript": torchscript,
               "onnx": onnx}  # fmt: skip
    source = model_source(options, weights, preprocessing)
    if source is None and (weights or preprocessing):
        raise MedxaiError(
            f"--weights and --preprocessing describe a user's model: give {listed_options(options)}"
        )
    printer = find_printer() if pdf else None  # a missing Chromium stops before the audit
    if dataset is not None:
        console.print("--dataset is deprecated: name the layout with --layout", style="yellow")
    settings = audit_config(
        quick, config, dataset=layout or dataset, root=str(root) if root else None,
        model=model, source=source, classes=parse_classes(classes) or None,
        positive_class=positive_class, source_from=source_from, retrain=retrain,
        regions=str(regions) if regions is not None else None, patient_pattern=patient_pattern,
        sample=sample, ties_from=ties_from,
        methods=parse_methods(method) or None, n_explain=n_explain, epochs=epochs,
        image_size=image_size, detector=detector, test_splits=parse_names(test_split) or None,
        shortcut_strength=shortcut_strength, n_per_class=n_per_class, seed=seed, budget=budget,
    )  # fmt: skip
    name = settings.data.dataset
    out = out or Path("reports") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_device = distributed.init_from_env(resolve_device(device))
    if not distributed.is_main():  # under torchrun: run rank 0's sharded steps, then stop
        distributed.serve()
        distributed.shutdown()
        return
    console.print(
        f"audit of {name} on {run_device} → {out} (interrupted? the same command with "
        f"--out {out} resumes it)",
        highlight=False,
    )
    result = _run_audit(settings, out, run_device)
    distributed.stop_serving()  # only after a run that ended well: a failed rank 0 exits and
    distributed.shutdown()  # torchrun stops the others
    print_audit_summary(result, out)
    if printer is not None:
        pdf_file = write_pdf(out / "index.html", out / PDF_NAME, printer)
        console.print(f"PDF {pdf_file}", highlight=False, soft_wrap=True)
    if fail_on is not None:
        raise typer.Exit(_gate(result, fail_on.value))
    from medxai.metrics.shortcut import INCONCLUSIVE

    if result.shortcut.overall == INCONCLUSIVE:
        raise typer.Exit(INCONCLUSIVE_EXIT)


def _gate(result: AuditResult, fail_on: str) -> int:
    """--fail-on: the gate's line on the console, and its exit code."""
    from medxai.report.gate import gate

    decided = gate(result.shortcut.table, result.shortcut.applicable, fail_on)
    console.print(f"--fail-on {fail_on}: {escape(decided.message)}", highlight=False)
    return decided.code


def _run_audit(settings, out: Path, run_device: torch.device) -> AuditResult:
    """run_audit(...) with its stages, progress and log lines shown on the console."""
    from pipelines.audit import Hooks, run_audit

    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def progress(what: str, advance: int, total: int | None) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], advance=advance, total=total)

        hooks = Hooks(
            stage=lambda name: bar.console.print(f"[bold]stage[/bold] {name}"),
            progress=progress,
            log=lambda line: bar.console.print(line, highlight=False),
        )
        return run_audit(settings, out, run_device, hooks)


INCONCLUSIVE_EXIT = 3  # the audit ran, but its evidence could not settle the verdict


def print_audit_summary(result: AuditResult, out: Path) -> None:
    """The verdict, accuracy and macro-F1 before → after cleaning per test split, the time."""
    from medxai.metrics.shortcut import LEVELS

    verdict = result.shortcut
    colour = (
        "yellow" if not verdict.applicable
        else "red" if verdict.overall in LEVELS[1:] else "green" if verdict.cleared else "yellow"
    )  # fmt: skip
    console.print(f"[bold {colour}]{escape(verdict.headline)}[/bold {colour}]", highlight=False)
    for row in verdict.table:
        console.print(f"  {escape(row.cue)}: {row.level}", highlight=False)
    console.print(f"[{colour}]{escape(verdict.summary)}[/{colour}]", highlight=False)
    for split, change in result.comparison.items():
        console.print(
            f"{escape(split)}: accuracy {change.accuracy.before:.3f} → "
            f"{change.accuracy.after:.3f}, macro-F1 {change.macro_f1.before:.3f} → "
            f"{change.macro_f1.after:.3f} (baseline → cleaned)",
            highlight=False,
        )
    console.print(f"{result.timings['total']:.0f} s; report {out / 'index.html'}", highlight=False)
