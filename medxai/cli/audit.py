"""`medxai audit`: the COVIDx shortcut audit end to end, and its one-screen summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from medxai.cli.common import (
    Device,
    MaybeDetector,
    MaybeEpochs,
    MaybeImageSize,
    MaybeModel,
    MaybeRoot,
    MaybeSeed,
    MaybeShortcutStrength,
    TestSplits,
    console,
    methods_option,
    parse_methods,
    parse_names,
    progress_bar,
)

if TYPE_CHECKING:
    import torch

    from medxai.report.record import AuditConfig, AuditResult


def audit(
    dataset: Annotated[str, typer.Option(help="phantom (generated) or covidx (--root).")] = (
        "phantom"
    ),
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
) -> None:
    """COVIDx audit end to end: train, explain, measure text reliance, clean, retrain, report."""
    import time

    from medxai.device import resolve_device
    from pipelines.covidx_audit import audit_config

    config = audit_config(
        quick, dataset=dataset, root=str(root) if root else None, model=model,
        methods=parse_methods(method) or None, n_explain=n_explain, epochs=epochs,
        image_size=image_size, detector=detector, test_splits=parse_names(test_split) or None,
        shortcut_strength=shortcut_strength, phantom_n_per_class=n_per_class, seed=seed,
    )  # fmt: skip
    out = out or Path("reports") / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_device = resolve_device(device)
    console.print(
        f"audit of {dataset} on {run_device} → {out} (interrupted? the same command with "
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
