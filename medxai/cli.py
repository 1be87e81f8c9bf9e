"""The `medxai` command line: the composition root that parses options and calls the library.

Every user error (a `MedxaiError` or a bad option) is printed as one line and exits 2.
"""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medxai import __version__
from medxai.cli_evaluate import app as evaluate_app
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

# Upper bounds of numeric options: past them a run would only exhaust memory or time.
MAX_IMAGE_SIZE = 1024  # model input side
MAX_BATCH = 1024
MAX_EPOCHS = 10_000
MAX_WORKERS = 64
MAX_SEED = 2**32 - 1


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
    n_per_class: Annotated[
        int, typer.Option(min=1, max=100_000, help="Images per class (train + test).")
    ] = 300,
    size: Annotated[int, typer.Option(min=64, max=2048, help="Image side in pixels.")] = 224,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Random seed; same arguments, same bytes.")
    ] = 0,
    shortcut_strength: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="1: COVID-19 only from COVID sources; 0: source ⟂ label."
        ),
    ] = 1.0,
    test_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Share of each class that goes to test.")
    ] = 0.2,
    workers: Annotated[
        int, typer.Option(min=0, max=MAX_WORKERS, help="Processes (0: one per core).")
    ] = 0,
) -> None:
    """Write a phantom COVIDx dataset: synthetic radiographs with a planted text shortcut."""
    from medxai.data.phantom import synthesize
    from medxai.outputs import check_output

    check_output(out)

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
    workers: Annotated[int, typer.Option(min=1, max=MAX_WORKERS, help="Reader threads.")] = 4,
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


def _load_splits(root: Path, splits: list[str], image_dir: list[str] | None) -> dict:
    """Records of the splits, after every line and dataset-wide check (a user error if not)."""
    from medxai.data.covidx import read_splits

    index = read_splits(root, list(dict.fromkeys(splits)), _parse_image_dirs(image_dir or []))
    index.raise_problems()
    for warning in index.warnings:
        err_console.print(f"warning: {warning}", highlight=False, soft_wrap=True, markup=False)
    return index.records


def _load_split(root: Path, split: str, image_dir: list[str] | None):
    return _load_splits(root, [split], image_dir)[split]


def _screened(records: list, skip_unreadable: bool) -> list:
    """Stop at the first unreadable image, or skip them all knowingly (counted and listed)."""
    from medxai.data.check import screen_records

    good, skipped = screen_records(records, decode=skip_unreadable)
    if skipped and not skip_unreadable:
        first = skipped[0]
        raise MedxaiError(f"{first.record.path}: {first.reason} ({len(skipped)} image(s) missing)")
    for item in skipped:
        err_console.print(
            f"skipped {item.record.path}: {item.reason}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    if skipped:
        err_console.print(f"skipped {len(skipped)} of {len(records)} images")
    return good


@app.command()
def train(
    root: Annotated[Path, typer.Option(help="Dataset root (COVIDx layout).")],
    out: Annotated[Path, typer.Option(help="Run folder: model.pt, metrics.json, last.pt.")],
    dataset: Annotated[str, typer.Option(help="Dataset format.")] = "covidx",
    train_split: Annotated[str, typer.Option(help="Training split file.")] = "train.txt",
    test_split: Annotated[
        list[str] | None, typer.Option(help="Split(s) to evaluate the best model on.")
    ] = None,
    model: Annotated[str, typer.Option(help="Architecture (see README).")] = "covidnet-s",
    epochs: Annotated[int, typer.Option(min=1, max=MAX_EPOCHS)] = 10,
    batch_size: Annotated[int, typer.Option(min=2, max=MAX_BATCH)] = 32,
    image_size: Annotated[int, typer.Option(min=16, max=MAX_IMAGE_SIZE)] = 224,
    channels: Annotated[int, typer.Option(min=1, max=3)] = 1,
    lr: Annotated[float, typer.Option(min=0.0, max=10.0)] = 1e-3,
    balance: Annotated[str, typer.Option(help="covid-share, class-weights or none.")] = (
        "covid-share"
    ),
    covid_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of COVID-19 images a batch.")
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
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    workers: Annotated[
        int, typer.Option(min=0, max=MAX_WORKERS, help="DataLoader worker processes.")
    ] = 1,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 0,
) -> None:
    """Train a classifier; keep the best by validation macro-F1; write RUN/metrics.json."""
    from medxai import distributed
    from medxai.device import resolve_device
    from medxai.models.training import TrainConfig, evaluate_checkpoint, fit, write_metrics
    from medxai.outputs import check_output, output_lock

    if dataset != "covidx":
        raise MedxaiError(f"unknown dataset {dataset!r}; only covidx is supported by train")
    check_output(out, [root])
    config = TrainConfig(
        model=model, epochs=epochs, batch_size=batch_size, image_size=image_size,
        channels=channels, top_crop=top_crop, lr=lr, val_fraction=val_fraction,
        balance=balance, covid_share=covid_share, patience=patience, seed=seed,
        weights=str(weights) if weights else None,
    )  # fmt: skip
    present = [s for s in ("test.txt",) if (root / s).exists() or (root / s).is_symlink()]
    splits = test_split or present
    loaded = _load_splits(root, [train_split, *splits], None)  # every split checked up front
    records = _screened(loaded[train_split], skip_unreadable)
    run_device = distributed.init_from_env(resolve_device(device))
    show = distributed.is_main()
    with output_lock(out) if show else nullcontext(), progress_bar() as bar:
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
    if show:
        results = {
            split: evaluate_checkpoint(out / "model.pt", loaded[split], run_device, seed)
            for split in splits
        }
        write_metrics(out / "metrics.json", results, state)
        for split, metrics in results.items():
            console.print(
                f"{split}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}"
            )
        console.print(f"best epoch {state.best_epoch}; wrote {out / 'model.pt'}")
    distributed.shutdown()


@app.command("evaluate-model")
def evaluate_model(
    checkpoint: Annotated[Path, typer.Option(help="A model.pt written by medxai train.")],
    root: Annotated[Path, typer.Option(help="Dataset root (COVIDx layout).")],
    split: Annotated[str, typer.Option(help="Split file to score.")] = "test.txt",
    out: Annotated[Path | None, typer.Option(help="Write the metrics JSON here.")] = None,
    image_dir: Annotated[list[str] | None, typer.Option(help="SPLIT=DIR.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Bootstrap seed.")] = 0,
) -> None:
    """Score a checkpoint on any split: accuracy, per-class P/R/F1 with bootstrap 95% CIs."""
    import json

    from medxai.atomic import atomic_write_text
    from medxai.device import resolve_device
    from medxai.models.training import evaluate_checkpoint
    from medxai.outputs import check_output

    if out:
        check_output(out, [root], is_file=True)
        if not out.parent.is_dir():
            raise MedxaiError(f"--out {out}: folder {out.parent} does not exist")

    records = _load_split(root, split, image_dir)
    metrics = evaluate_checkpoint(checkpoint, records, resolve_device(device), seed)
    if out:
        atomic_write_text(out, json.dumps(metrics, indent=2) + "\n")
    table = Table(title=f"{checkpoint} on {split} (accuracy {metrics['accuracy']:.4f})")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, entry in metrics["per_class"].items():
        cells = [
            f"{entry[k]:.3f} [{entry['ci'][k][0]:.3f}, {entry['ci'][k][1]:.3f}]"
            for k in ("precision", "recall", "f1")
        ]
        table.add_row(name, *cells, str(entry["support"]))
    console.print(table)


def _import_model(spec: str):
    """`package.module:factory` → the nn.Module that factory() returns."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise MedxaiError(f"--model-import expects package.module:factory, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise MedxaiError(f"cannot import {spec!r}: {err}") from err
    return factory()


@app.command()
def explain(
    out: Annotated[Path, typer.Option(help="Folder for maps/, overlays/ and scores.csv.")],
    checkpoint: Annotated[Path | None, typer.Option(help="A model.pt from medxai train.")] = None,
    model_import: Annotated[
        str | None, typer.Option(help="Instead of --checkpoint: package.module:factory.")
    ] = None,
    image: Annotated[list[Path] | None, typer.Option(help="Image file (repeatable).")] = None,
    root: Annotated[Path | None, typer.Option(help="COVIDx root (with --split).")] = None,
    split: Annotated[str, typer.Option(help="Split file under --root.")] = "test.txt",
    limit: Annotated[int, typer.Option(min=0, max=1_000_000, help="At most N (0: all).")] = 0,
    method: Annotated[
        list[str] | None, typer.Option(help="Saliency method (repeatable; see README).")
    ] = None,
    resolution: Annotated[
        int, typer.Option(min=1, max=MAX_IMAGE_SIZE, help="Mask resolution: 7, 14, 28, 224…")
    ] = 28,
    target: Annotated[str, typer.Option(help="predicted, label or a class index.")] = ("predicted"),
    ranking: Annotated[str, typer.Option(help="Deletion/insertion ranking: pixel|mask.")] = (
        "pixel"
    ),
    image_size: Annotated[
        int,
        typer.Option(min=16, max=MAX_IMAGE_SIZE, help="Input size (with --model-import)."),
    ] = 224,
    channels: Annotated[
        int, typer.Option(min=1, max=3, help="Input channels (with --model-import).")
    ] = 1,
    target_layer: Annotated[str | None, typer.Option(help="Module name for CAMs.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=MAX_BATCH)] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED)] = 0,
) -> None:
    """Saliency maps, overlays and deletion/insertion AUCs for images or a COVIDx split."""
    from medxai.data.transforms import Preprocessing
    from medxai.device import resolve_device
    from medxai.explain import method_names
    from medxai.models.checkpoint import load_checkpoint
    from medxai.models.zoo import target_layer as zoo_target_layer
    from medxai.outputs import check_output, output_lock
    from pipelines.explain_images import explain_images, items_from_paths, items_from_records

    check_output(out, [root])
    methods = method or ["gradcam", "igos++"]
    known = set(method_names())
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise MedxaiError(f"unknown method {unknown[0]!r}; choose from {', '.join(sorted(known))}")
    if ranking not in ("pixel", "mask"):
        raise MedxaiError(f"--ranking must be pixel or mask, got {ranking!r}")
    if (checkpoint is None) == (model_import is None):
        raise MedxaiError("give exactly one of --checkpoint or --model-import")
    run_device = resolve_device(device)
    if checkpoint is not None:
        model, spec = load_checkpoint(checkpoint, run_device)
        prep, classes = spec.preprocessing, spec.classes
        target_layer = target_layer or zoo_target_layer(spec.name)
    else:
        model, prep, classes = (
            _import_model(model_import),
            Preprocessing(image_size, channels),
            None,
        )
    if bool(image) == (root is not None):
        raise MedxaiError("give images with --image, or a dataset with --root/--split")
    if image:
        items = items_from_paths(image)
    else:
        records = _load_split(root, split, None)
        items = items_from_records(records, classes or sorted({r.label for r in records}))
    items = items[:limit] if limit else items
    with output_lock(out), progress_bar() as bar:
        task = bar.add_task("explaining", total=len(items) * len(methods))
        rows = explain_images(
            model, items, methods, prep, out, run_device, classes=classes, target=target,
            resolution=resolution, ranking=ranking, batch_size=batch_size, seed=seed,
            target_layer=target_layer, progress=lambda k: bar.advance(task, k),
        )  # fmt: skip
    used = rows[0]["ranking"] if rows else ranking
    table = Table(title=f"mean deletion/insertion AUC over {len(items)} images ({used} ranking)")
    for column in ("method", "deletion ↓", "insertion ↑", "over-all ↑"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name in methods:
        mine = [r for r in rows if r["method"] == name]
        keys = ("deletion_auc", "insertion_auc", "overall")
        table.add_row(name, *(f"{sum(r[k] for r in mine) / len(mine):.4f}" for k in keys))
    console.print(table)
    console.print(f"wrote {out / 'scores.csv'}, {out / 'maps'}, {out / 'overlays'}")


app.add_typer(evaluate_app, name="evaluate")


@app.command()
def clean(
    root: Annotated[Path, typer.Option(help="Source dataset (COVIDx layout); never written.")],
    out: Annotated[Path, typer.Option(help="Where the cleaned copy goes (not inside --root).")],
    splits: Annotated[
        list[str] | None, typer.Option(help="Split files (default: ROOT/*.txt).")
    ] = None,
    detector: Annotated[
        str,
        typer.Option(
            help="fused (recommended: RapidOCR DB + lone-marker glyphs), craft-paper (the "
            "iGOS++ paper's EasyOCR CRAFT), craft, rapidocr or both (craft + rapidocr)."
        ),
    ] = "fused",
    text_threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="CRAFT text confidence.")
    ] = 0.7,
    radius: Annotated[int, typer.Option(min=1, max=100, help="Telea inpainting radius.")] = 10,
    dilate: Annotated[int, typer.Option(min=0, max=100, help="Grow text boxes by PX pixels.")] = 4,
    workers: Annotated[int, typer.Option(min=1, max=MAX_WORKERS, help="Processes.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (CRAFT).")] = "auto",
) -> None:
    """Detect burned-in text, inpaint it (Telea) and write a cleaned COVIDx copy + manifest."""
    from data_cleaning.clean import CleanSettings, clean_dataset
    from data_cleaning.detect import DETECTORS
    from medxai.device import resolve_device

    if detector not in DETECTORS:
        raise MedxaiError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
    settings = CleanSettings(
        detector=detector, text_threshold=text_threshold, radius=radius, dilate=dilate,
        gpu=resolve_device(device).type == "cuda",
    )  # fmt: skip
    with progress_bar() as bar:
        task = bar.add_task("cleaning", total=None)
        summary = clean_dataset(
            root, out, _split_names(splits), settings, workers,
            progress=lambda k, total: bar.update(task, advance=k, total=total),
        )  # fmt: skip
    console.print(
        f"{summary.images} images ({summary.skipped_done} already done), "
        f"{summary.with_text} with text, {summary.boxes} boxes, {len(summary.failed)} failed, "
        f"{summary.seconds:.1f} s; wrote {out}",
        highlight=False,
    )
    console.print(
        f"residual check: {summary.residual_boxes} boxes still detected on "
        f"{len(summary.with_residual)} cleaned images; {len(summary.needs_review)} need review",
        highlight=False,
    )
    for item in summary.with_residual:
        console.print(f"residual text: {escape(item['source'])} ({item['boxes']} boxes)",
                      highlight=False, soft_wrap=True)  # fmt: skip
    for item in summary.needs_review:
        console.print(f"needs review: {escape(item['source'])}: {escape(item['reason'])}",
                      highlight=False, soft_wrap=True)  # fmt: skip
    for note in summary.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    for warning in summary.warnings:
        console.print(
            f"[yellow]warning[/yellow] {escape(warning['source'])}: {escape(warning['warning'])}",
            highlight=False,
            soft_wrap=True,
        )
    for failure in summary.failed:
        console.print(
            f"[red]failed[/red] {escape(failure['source'])}: {escape(failure['reason'])}",
            highlight=False,
            soft_wrap=True,
        )
    raise typer.Exit(1 if summary.failed else 0)


@app.command()
def audit(
    dataset: Annotated[str, typer.Option(help="phantom (generated) or covidx (--root).")] = (
        "phantom"
    ),
    root: Annotated[Path | None, typer.Option(help="COVIDx root (with --dataset covidx).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default reports/<dataset>-<time>/).")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Small sizes for a fast look (≤ 3 min).")] = False,
    model: Annotated[str | None, typer.Option(help="Architecture (default covidnet-s).")] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            "--methods",
            help="Saliency method(s): repeat, or comma-separate (default igos++,sigcam,gradcam).",
        ),  # fmt: skip
    ] = None,
    n_explain: Annotated[
        int | None, typer.Option(min=1, max=1000, help="Images explained per class.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, max=MAX_EPOCHS)] = None,
    image_size: Annotated[
        int | None, typer.Option(min=16, max=MAX_IMAGE_SIZE, help="Model input size.")
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(help="auto (= fused), fused, craft-paper, craft, rapidocr, both."),
    ] = None,
    test_split: Annotated[
        list[str] | None,
        typer.Option(help="Test split (repeatable; default test.txt [+ test_balanced.txt])."),
    ] = None,
    shortcut_strength: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Phantom confound (default 1).")
    ] = None,
    n_per_class: Annotated[
        int | None, typer.Option(min=10, max=100_000, help="Phantom images per class.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int | None, typer.Option(min=0, max=MAX_SEED)] = None,
) -> None:
    """COVIDx audit end to end: train, explain, measure text reliance, clean, retrain, report."""
    import time

    from medxai.device import resolve_device
    from medxai.explain import method_names
    from pipelines.covidx_audit import Audit, Hooks, audit_config

    method = [m.strip() for value in method or [] for m in value.split(",") if m.strip()] or None
    unknown = [m for m in method or [] if m not in set(method_names())]
    if unknown:
        raise MedxaiError(f"unknown method {unknown[0]!r}; see `medxai explain --help`")
    config = audit_config(
        quick, dataset=dataset, root=str(root) if root else None, model=model, methods=method,
        n_explain=n_explain, epochs=epochs, image_size=image_size, detector=detector,
        test_splits=test_split, shortcut_strength=shortcut_strength,
        phantom_n_per_class=n_per_class, seed=seed,
    )  # fmt: skip
    out = out or Path("reports") / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_device = resolve_device(device)
    console.print(
        f"audit of {dataset} on {run_device} → {out} (interrupted? the same command with "
        f"--out {out} resumes it)",
        highlight=False,
    )
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
        result = Audit(config, out, run_device, hooks).run()
    verdict = result["shortcut"]
    colour = "red" if verdict["relies_on_text"] else "green"
    console.print(f"[{colour}]{verdict['summary']}[/{colour}]", highlight=False)
    for split, change in result["comparison"].items():
        console.print(
            f"{split}: accuracy {change['accuracy']['before']:.3f} → "
            f"{change['accuracy']['after']:.3f}, macro-F1 {change['macro_f1']['before']:.3f} → "
            f"{change['macro_f1']['after']:.3f} (baseline → cleaned)",
            highlight=False,
        )
    console.print(
        f"{result['timings']['total']:.0f} s; report {out / 'index.html'}", highlight=False
    )


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
        burned = f"; DICOM Burned In Annotation {_counter_text(split.burned_in)}"
        console.print(
            f"{split.split}: images in {split.image_dir}; formats {_counter_text(split.formats)}; "
            f"depths {_counter_text(depths)}; sizes {_counter_text(sizes)}"
            f"{burned if split.burned_in else ''}",
            highlight=False,
            soft_wrap=True,
        )
    for split in report.splits:
        for problem in split.line_problems:
            console.print(
                f"[red]malformed[/red] {escape(str(problem))}", highlight=False, soft_wrap=True
            )
        for skipped in split.unreadable:
            record = skipped.record
            console.print(
                f"[red]unreadable[/red] {escape(str(record.path))} ({split.split}:{record.line}): "
                f"{escape(skipped.reason)}",
                highlight=False,
                soft_wrap=True,
            )
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    for warning in report.warnings:
        console.print(f"warning: {warning}", highlight=False, soft_wrap=True, markup=False)
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


def _one_line(message: str) -> str:
    """A DataLoader worker re-raises our error with its traceback inside: keep our message."""
    if message.startswith("Caught ") and "medxai.errors." in message:
        return message.rsplit("medxai.errors.", 1)[1].split(": ", 1)[-1].strip()
    lines = message.strip().splitlines()
    return lines[0] if lines else message


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
        message = _one_line(str(err))
        err_console.print(
            f"medxai: error: {message}", highlight=False, soft_wrap=True, markup=False
        )
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
