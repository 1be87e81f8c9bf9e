"""`medxai audit`: the COVIDx shortcut audit end to end, and its one-screen summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    model_source,
)
from medxai.data.classes import parse_classes
from medxai.errors import MedxaiError

if TYPE_CHECKING:
    import torch

    from medxai.report.record import AuditConfig, AuditResult


def audit(
    dataset: Annotated[
        str | None,
        typer.Option(
            help="phantom (generated; the default without --root), or the layout of "
            "--root: auto (the default with --root), covidx, csv or folders."
        ),
    ] = None,
    root: MaybeRoot = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default reports/<dataset>-<time>/).")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Small sizes for a fast look (≤ 3 min).")] = False,
    model: MaybeModel = None,
    method: Annotated[
        list[str] | None, methods_option("igos++,sigcam,gradcam; --quick: sigcam,gradcam")
    ] = None,
    n_explain: Annotated[
        int | None, typer.Option(min=1, max=1000, help="Images explained per class.")
    ] = None,
    epochs: MaybeEpochs = None,
    image_size: MaybeImageSize = None,
    detector: MaybeDetector = None,
    test_split: TestSplits = None,
    shortcut_strength: MaybeShortcutStrength = None,
    n_per_class: Annotated[
        int | None, typer.Option(min=10, max=100_000, help="Phantom images per class.")
    ] = None,
    device: Device = "auto",
    seed: MaybeSeed = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Audit this medxai checkpoint (a model.pt).")
    ] = None,
    model_import: ModelImport = None,
    torchscript: TorchScriptFile = None,
    onnx: OnnxFile = None,
    weights: ImportWeights = None,
    preprocessing: PreprocessingFile = None,
    classes: Classes = None,
    positive_class: PositiveClass = None,
    source_from: SourceFrom = "none",
    retrain: Annotated[
        bool | None,
        typer.Option(
            help="Train a model on the cleaned data and compare (default: yes when "
            "the audit trains its own model, no for a user's model)."
        ),
    ] = None,
) -> None:
    """Audit end to end: train (or take the user's model), explain, measure text reliance,
    clean, optionally retrain, report."""
    import time

    from medxai.device import resolve_device
    from pipelines.covidx_audit import audit_config

    source = model_source(
        {"checkpoint": checkpoint, "import": model_import, "torchscript": torchscript,
         "onnx": onnx}, weights, preprocessing,
    )  # fmt: skip
    if source is None and (weights or preprocessing):
        raise MedxaiError(
            "--weights and --preprocessing describe a user's model: give --checkpoint, "
            "--model-import, --torchscript or --onnx"
        )
    dataset = dataset or ("auto" if root else "phantom")
    config = audit_config(
        quick, dataset=dataset, root=str(root) if root else None, model=model,
        model_kind=source.kind if source else None,
        model_path=source.location if source else None,
        weights=str(source.weights) if source and source.weights else None,
        preprocessing=str(source.preprocessing) if source and source.preprocessing else None,
        classes=parse_classes(classes), positive_class=positive_class,
        source_from=source_from, retrain=retrain,
        methods=parse_methods(method) or None, n_explain=n_explain, epochs=epochs,
        image_size=image_size, detector=detector, test_splits=parse_names(test_split) or None,
        shortcut_strength=shortcut_strength, phantom_n_per_class=n_per_class, seed=seed,
    )  # fmt: skip
    out = out or Path("reports") / f"{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_device = resolve_device(device)
    console.print(
        f"audit of {config.dataset} on {run_device} → {out} (interrupted? the same command with "
        f"--out {out} resumes it)",
        highlight=False,
    )
    result = _run_audit(config, out, run_device)
    print_audit_summary(result, out)


def _run_audit(config: AuditConfig, out: Path, run_device: torch.device):
    """Audit(...).run() with its stages, progress and log lines shown on the console."""
    from pipelines.covidx_audit import Audit, Hooks

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
        return Audit(config, out, run_device, hooks).run()


def print_audit_summary(result: AuditResult, out: Path) -> None:
    """The verdict, accuracy and macro-F1 before → after cleaning per test split, the time."""
    verdict = result.shortcut
    colour = "yellow" if not verdict.applicable else "red" if verdict.relies_on_text else "green"
    console.print(f"[{colour}]{escape(verdict.summary)}[/{colour}]", highlight=False)
    for split, change in result.comparison.items():
        console.print(
            f"{escape(split)}: accuracy {change.accuracy.before:.3f} → "
            f"{change.accuracy.after:.3f}, macro-F1 {change.macro_f1.before:.3f} → "
            f"{change.macro_f1.after:.3f} (baseline → cleaned)",
            highlight=False,
        )
    console.print(f"{result.timings['total']:.0f} s; report {out / 'index.html'}", highlight=False)
