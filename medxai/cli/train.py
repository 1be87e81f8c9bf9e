"""`medxai train` and `medxai evaluate-model`: fit a classifier, score a checkpoint."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from medxai.cli.common import (
    MAX_BATCH,
    MAX_EPOCHS,
    Channels,
    Classes,
    DatasetRoot,
    Device,
    Epochs,
    ImageDirs,
    ImageSize,
    Layout,
    LearningRate,
    Model,
    PositiveClass,
    Root,
    Seed,
    SourceFrom,
    Split,
    TestSplits,
    console,
    err_console,
    parse_names,
    processes_option,
    progress_bar,
)
from medxai.cli.inputs import load_split, screened
from medxai.errors import MedxaiError

if TYPE_CHECKING:
    import torch

    from medxai.data.records import Record, SplitIndex
    from medxai.models.training import TrainConfig, TrainState
    from medxai.statistics.classification import ClassScores, Evaluation


def train(
    root: DatasetRoot,
    out: Annotated[Path, typer.Option(help="Run folder: model.pt, metrics.json, last.pt.")],
    layout: Layout = "auto",
    classes: Classes = None,
    source_from: SourceFrom = "none",
    dataset: Annotated[str, typer.Option(hidden=True, help="Old name: see --layout.")] = "covidx",
    train_split: Annotated[
        str | None,
        typer.Option(help="Training split (default train.txt, or the split named train*)."),
    ] = None,
    test_split: TestSplits = None,
    model: Model = "covidnet-s",
    epochs: Epochs = 10,
    batch_size: Annotated[
        int, typer.Option(min=2, max=MAX_BATCH, help="Images per batch (at least 2).")
    ] = 32,
    image_size: ImageSize = 224,
    channels: Channels = 1,
    lr: LearningRate = 1e-3,
    balance: Annotated[
        str,
        typer.Option(
            help="auto (COVID-Net's batch share only when the positive class is a minority "
            "below that share, else class weights), covid-share, class-weights or none."
        ),
    ] = "auto",
    positive_class: PositiveClass = None,
    covid_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of positive-class images a batch.")
    ] = 0.3,
    val_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Validation share (by patient).")
    ] = 0.1,
    patience: Annotated[
        int, typer.Option(min=1, max=MAX_EPOCHS, help="Early stop after N flat epochs.")
    ] = 5,
    top_crop: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="COVID-Net top-band crop (0: off).")
    ] = 0.0,
    weights: Annotated[Path | None, typer.Option(help="Local state-dict to start from.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    skip_unreadable: Annotated[bool, typer.Option(help="Skip (and list) bad images.")] = False,
    device: Device = "auto",
    workers: Annotated[
        int,
        processes_option(
            "DataLoader worker processes (0: this process, each image decoded once, kept in "
            "memory up to 256 MiB and in a file under OUT past it; the fastest on a CPU)."
        ),
    ] = 0,
    seed: Seed = 0,
) -> None:
    """Train a classifier; keep the best by validation macro-F1; write RUN/metrics.json."""
    from medxai.data.classes import class_order, parse_classes
    from medxai.data.layouts import dataset_root
    from medxai.models.training import TrainConfig, positive_index
    from medxai.outputs import check_output

    if dataset != "covidx":
        raise MedxaiError(f"unknown dataset {dataset!r}; name the layout with --layout")
    given = parse_classes(classes)
    check_output(out, [dataset_root(root)])
    index, train_name, tests = _read_training_data(
        root, layout, given, source_from, train_split, parse_names(test_split)
    )
    records = screened(index.records[train_name], skip_unreadable)
    learned = class_order((r.label for r in records), given)
    positive_index(learned, positive_class)  # an unknown class stops here, before any output
    tested = {split: index.records[split] for split in tests}
    _check_test_labels(tested, learned)
    config = TrainConfig(
        model=model, epochs=epochs, batch_size=batch_size, image_size=image_size,
        channels=channels, top_crop=top_crop, lr=lr, val_fraction=val_fraction,
        balance=balance, covid_share=covid_share, patience=patience, seed=seed,
        weights=str(weights) if weights else None, classes=given, positive_class=positive_class,
    )  # fmt: skip
    _train_and_score(config, records, tested, out, device, resume, workers)


def _read_training_data(
    root: Path, layout: str, classes: tuple[str, ...] | None, source_from: str,
    train_split: str | None, tests: list[str],
) -> tuple[SplitIndex, str, list[str]]:  # fmt: skip
    """The dataset's training and test splits, every line and dataset-wide check passed.

    COVIDx reads only those split files (default train.txt and, when there, test.txt);
    the other layouts read every split, then take the one named train* and, unless test
    splits are named, the one named test (else the first test*)."""
    from medxai.data.layouts import detect_layout, read_dataset

    covidx = (detect_layout(root) if layout == "auto" else layout) == "covidx"
    if covidx:
        train_split = train_split or "train.txt"
        present = [s for s in ("test.txt",) if (root / s).exists() or (root / s).is_symlink()]
        tests = tests or present
        index = read_dataset(root, "covidx", [train_split, *tests], classes)
    else:
        named = [train_split, *tests] if train_split and tests else None
        index = read_dataset(root, layout, named, classes, source_from)
    index.raise_problems()
    for warning in index.warnings:
        err_console.print(f"warning: {warning}", highlight=False, soft_wrap=True, markup=False)
    train_split = train_split or index.train_split()
    if not tests and not covidx:
        found = index.test_splits()
        tests = [s for s in found if Path(s).stem == "test"] or found[:1]
    for split in [train_split, *tests]:
        if split not in index.records:
            raise MedxaiError(f"{index.listing or root}: no split {split!r} among "
                              f"{', '.join(index.records)}")  # fmt: skip
    return index, train_split, tests


def _check_test_labels(tests: dict[str, list[Record]], classes: tuple[str, ...]) -> None:
    """A test image whose class the model does not learn stops the run before it trains."""
    from medxai.data.needs import unlearned_problem
    from medxai.data.records import unlearned_labels

    unlearned = unlearned_labels((r for records in tests.values() for r in records), classes)
    if unlearned:
        raise MedxaiError(unlearned_problem(unlearned[0], classes))


def _train_and_score(
    config: TrainConfig, records: list, tests: dict[str, list], out: Path, device: str,
    resume: bool, workers: int,
) -> None:  # fmt: skip
    """Fit (sharded under torchrun), then on rank 0 score the best model on every test split."""
    from medxai import distributed
    from medxai.device import resolve_device
    from medxai.models.training import evaluate_checkpoint, write_metrics
    from medxai.outputs import output_lock

    run_device = distributed.init_from_env(resolve_device(device))
    show = distributed.is_main()
    with output_lock(out) if show else nullcontext():
        state = _fit(config, records, out, run_device, resume, workers, show)
    if show:
        results = {
            split: evaluate_checkpoint(out / "model.pt", split_records, run_device, config.seed)
            for split, split_records in tests.items()
        }
        write_metrics(out / "metrics.json", results, state)
        for split, evaluation in results.items():
            console.print(_score_line(split, evaluation))
        console.print(
            f"best epoch {state.best_epoch}; batch balancing {state.balance}; "
            f"wrote {out / 'model.pt'}",
            highlight=False,
        )
        if state.warning:
            err_console.print(f"[bold red]{state.warning}[/bold red]", highlight=False)
    distributed.shutdown()


def _fit(
    config: TrainConfig, records: list, out: Path, run_device: torch.device, resume: bool,
    workers: int, show: bool,
) -> TrainState:  # fmt: skip
    from medxai.models.training import fit

    with progress_bar() as bar:
        task = bar.add_task("training", total=None, visible=show)

        def on_batch(n: int, loss: float) -> None:
            bar.update(task, advance=n, description=f"training (loss {loss:.3f})")

        def on_epoch(entry: dict) -> None:
            bar.console.print(
                f"epoch {entry['epoch']}: loss {entry['loss']:.4f}, val accuracy "
                f"{entry['val_accuracy']:.3f}, val macro-F1 {entry['val_macro_f1']:.3f} "
                f"({entry['seconds']:.0f} s)"
            )

        state, _ = fit(config, records, out, run_device, resume, workers, on_epoch, on_batch)
    return state


def _score_line(split: str, evaluation: Evaluation) -> str:
    metrics = evaluation.metrics
    return f"{split}: accuracy {metrics.accuracy:.4f}, macro-F1 {metrics.macro_f1:.4f}"


def evaluate_model(
    checkpoint: Annotated[Path, typer.Option(help="A model.pt written by medxai train.")],
    root: Root,
    split: Split = "test.txt",
    out: Annotated[Path | None, typer.Option(help="Write the metrics JSON here.")] = None,
    image_dir: ImageDirs = None,
    device: Device = "auto",
    seed: Seed = 0,
) -> None:
    """Score a checkpoint on any split: accuracy, per-class P/R/F1 with bootstrap 95% CIs."""
    from medxai.atomic import atomic_write_text
    from medxai.device import resolve_device
    from medxai.models.training import evaluate_checkpoint
    from medxai.outputs import check_output

    if out:
        check_output(out, [root], is_file=True)
        if not out.parent.is_dir():
            raise MedxaiError(f"--out {out}: folder {out.parent} does not exist")

    records = load_split(root, split, image_dir)
    evaluation = evaluate_checkpoint(checkpoint, records, resolve_device(device), seed)
    if out:
        atomic_write_text(out, _evaluation_json(evaluation))
    print_evaluation(f"{checkpoint} on {split}", evaluation)


def _evaluation_json(evaluation: Evaluation) -> str:
    """The metrics (as in RUN/metrics.json) and the predicted class index of every image."""
    import json

    from medxai.codec import encode

    payload = {**encode(evaluation.metrics), "predictions": evaluation.predictions}
    return json.dumps(payload, indent=2) + "\n"


def print_evaluation(title: str, evaluation: Evaluation) -> None:
    """Per-class precision, recall and F1 with their CIs, and the support."""
    metrics = evaluation.metrics
    table = Table(title=f"{title} (accuracy {metrics.accuracy:.4f})")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, scores in metrics.per_class.items():
        cells = [_with_ci(scores, k) for k in ("precision", "recall", "f1")]
        table.add_row(name, *cells, str(scores.support))
    console.print(table)


def _with_ci(scores: ClassScores, name: str) -> str:
    value = f"{getattr(scores, name):.3f}"
    if scores.ci is None:
        return value
    lo, hi = getattr(scores.ci, name)
    return f"{value} [{lo:.3f}, {hi:.3f}]"
