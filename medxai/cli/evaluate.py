"""`medxai evaluate`: ImageNet deletion/insertion and the COCO pointing game (torchrun-ready).

Run under `torchrun --nproc-per-node K -m medxai evaluate ...` to shard images over ranks;
rank 0 writes the same files as one process.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medxai.cli.common import (
    AUC_KEYS,
    ImageSize,
    LearningRate,
    ModelImport,
    OutDir,
    Ranking,
    Resolution,
    RunOptions,
    check_choice,
    check_run,
    console,
    methods_option,
    print_auc_table,
    print_table,
    progress_task,
    with_run_options,
)
from medxai.cli.inputs import import_model
from medxai.errors import MedxaiError

if TYPE_CHECKING:
    from medxai.data.coco import CocoInstances

GROUP_HELP = "Benchmarks: ImageNet deletion/insertion and the COCO pointing game."
DELETION_INSERTION_METHODS = ("gradcam", "igos", "igos++", "sigcam")
POINTING_GAME_METHODS = ("gradcam", "sigcam")

ModelName = Annotated[
    str, typer.Option(help="Zoo name (resnet50, vgg19, densenet201, inception_v3, "
                      "efficientnet-lite0) or a medxai checkpoint file.")
]  # fmt: skip
Weights = Annotated[Path | None, typer.Option(help="Local weights file (nothing is downloaded).")]
Normalise = Annotated[str, typer.Option(help="imagenet, lite or none (with --model-import).")]
NImages = Annotated[int, typer.Option(min=0, max=10_000_000, help="Seeded sample (0: all).")]


def _model(model: str, weights: Path | None, model_import: str | None, num_classes: int,
           image_size: int, normalise: str, stretch: bool):  # fmt: skip
    """(module, image loader, input geometry, CAM target layer, zoo name or None).

    stretch=True resizes the whole photograph to the input size (resize=0: nothing cut off,
    as the pointing game needs); a medxai checkpoint keeps its own preprocessing.
    """
    from medxai.data.imagefolder import load_image
    from medxai.data.transforms import NORMALISATIONS, Preprocessing
    from medxai.models import zoo

    if model_import:
        if normalise not in NORMALISATIONS:
            raise MedxaiError(f"--normalize must be one of {', '.join(NORMALISATIONS)}")
        prep = Preprocessing(
            image_size, 3, intensity=normalise, resize=0 if stretch else image_size
        )
        return import_model(model_import), lambda p: load_image(p, prep), prep, None, None
    if Path(model).is_file():
        return _checkpoint_model(Path(model))
    if weights is None and model == "efficientnet-lite0":
        from medxai.models.lite import efficientnet_lite0_weights

        weights = efficientnet_lite0_weights()
    if weights is None:
        zoo.target_layer(model)  # an unknown name fails here first
        raise MedxaiError(f"--weights FILE is required for {model} (nothing is downloaded)")
    net = zoo.build_model(model, num_classes, 3, weights)
    prep = zoo.natural_preprocessing(model)
    if stretch:
        prep = replace(prep, resize=0)
    return net, lambda p: load_image(p, prep), prep, zoo.target_layer(model), model


def _checkpoint_model(path: Path):
    """_model's answer for a medxai checkpoint: the zoo's CAM layer, and the checkpoint's own
    preprocessing, both to load images and as the geometry masks follow (top crop included)."""
    from medxai.data.imagefolder import ImageRecord
    from medxai.models import zoo
    from medxai.models.checkpoint import load_checkpoint
    from pipelines.explain_images import load_batch

    net, spec = load_checkpoint(path)
    prep = spec.preprocessing

    def loader(image: Path):
        return load_batch([ImageRecord(image, "")], prep)[0]

    return net, loader, prep, zoo.target_layer(spec.name), None


@with_run_options
def deletion_insertion_command(
    data: Annotated[Path, typer.Option(help="ImageNet val folder (+ labels file) or ImageFolder.")],
    out: OutDir,
    model: ModelName = "resnet50",
    weights: Weights = None,
    model_import: ModelImport = None,
    labels: Annotated[Path | None, typer.Option(help="Labels file (default: found).")] = None,
    class_index: Annotated[Path | None, typer.Option(help="One class per line.")] = None,
    method: Annotated[
        list[str] | None, methods_option(",".join(DELETION_INSERTION_METHODS))
    ] = None,
    resolution: Resolution = 28,
    ranking: Ranking = "mask",
    n_images: NImages = 0,
    target: Annotated[str, typer.Option(help="predicted or label.")] = "predicted",
    num_classes: Annotated[int, typer.Option(min=2, max=100_000)] = 1000,
    image_size: ImageSize = 224,
    normalize: Normalise = "imagenet",
    *,
    run: RunOptions,
) -> None:
    """Deletion/insertion AUC per image and method, the papers' summary table, mean curves."""
    from medxai.data.imagefolder import load_image_dataset, sample_records
    from pipelines.imagenet_eval import EvalSettings

    methods = check_run(out, [data], method, DELETION_INSERTION_METHODS)
    check_choice("--target", target, ("predicted", "label"))
    net, loader, _, layer, _ = _model(
        model, weights, model_import, num_classes, image_size, normalize, False
    )
    records, _ = load_image_dataset(data, labels, class_index)
    records = sample_records(records, n_images, run.seed)
    settings = EvalSettings(tuple(methods), target, resolution, ranking, run.batch_size,
                            run.seed, run.target_layer or layer)  # fmt: skip
    summary = _run_deletion_insertion(net, records, loader, settings, out, run.device)
    if summary:
        _print_deletion_insertion_summary(summary, out)


def _print_deletion_insertion_summary(summary: list[dict], out: Path) -> None:
    print_auc_table(
        f"deletion/insertion AUC over {summary[0]['images']} images "
        f"({summary[0]['ranking']} ranking)",
        [(s["method"], [s[k] for k in AUC_KEYS]) for s in summary],
    )
    console.print(f"wrote {out / 'summary.md'}, {out / 'per_image.csv'}, {out / 'curves.png'}")


def _run_deletion_insertion(net, records, loader, settings, out: Path, device: str) -> list:
    from medxai import distributed
    from medxai.device import resolve_device
    from pipelines.imagenet_eval import evaluate_deletion_insertion

    run_device = distributed.init_from_env(resolve_device(device))
    try:
        with progress_task("deletion/insertion", visible=distributed.is_main()) as progress:
            return evaluate_deletion_insertion(
                net, records, loader, settings, out, run_device, progress=progress
            )
    finally:
        distributed.shutdown()


@with_run_options
def pointing_game_command(
    coco_root: Annotated[Path, typer.Option(help="Folder of the evaluation images.")],
    annotations: Annotated[Path, typer.Option(help="COCO instances JSON of those images.")],
    out: OutDir,
    model: ModelName = "resnet50",
    weights: Weights = None,
    model_import: ModelImport = None,
    head: Annotated[
        Path | None,
        typer.Option(help="Fine-tuned head (default OUT/head.pt); reused when present."),
    ] = None,  # fmt: skip
    head_layer: Annotated[str | None, typer.Option(help="Output layer (default: zoo's).")] = None,
    finetune_epochs: Annotated[
        int, typer.Option(min=0, max=10_000, help="0: keep the model's head.")
    ] = 20,
    train_annotations: Annotated[Path | None, typer.Option(help="COCO JSON to fine-tune on.")] = (
        None
    ),
    train_root: Annotated[Path | None, typer.Option(help="Its images (default --coco-root).")] = (
        None
    ),
    lr: LearningRate = 1e-3,
    method: Annotated[list[str] | None, methods_option(",".join(POINTING_GAME_METHODS))] = None,
    resolution: Resolution = 28,
    n_images: NImages = 0,
    image_size: ImageSize = 224,
    normalize: Normalise = "imagenet",
    *,
    run: RunOptions,
) -> None:
    """Fine-tune the output layer on COCO (BCE), then the pointing game per category."""
    from medxai.data.coco import CocoInstances
    from medxai.models import zoo
    from pipelines.coco_pointing import PointingSettings

    methods = check_run(out, [coco_root], method, POINTING_GAME_METHODS)
    coco = CocoInstances(annotations, coco_root)
    net, loader, prep, layer, name = _model(
        model, weights, model_import, len(coco.names), image_size, normalize, True
    )
    head_layer = head_layer or (zoo.head_layer(name) if name else "fc")
    head = head or out / "head.pt"
    ids = _sample_ids(coco, n_images, run.seed)
    settings = PointingSettings(
        tuple(methods), run.batch_size, run.seed, resolution, run.target_layer or layer
    )
    coco.check_images(ids)
    train = None
    if not head.is_file() and finetune_epochs > 0:
        train = _finetune_set(coco, annotations, train_annotations, train_root or coco_root)
    plan = _Head(head_layer, head, train, finetune_epochs, lr)
    summary = _run_pointing_game(net, plan, coco, ids, loader, prep, settings, out, run.device)
    if summary:
        _print_pointing_summary(summary, out)


def _sample_ids(coco: CocoInstances, n_images: int, seed: int) -> list[int]:
    """Every image id, or a seeded sample of `n_images` of them (sorted)."""
    import random

    ids = coco.image_ids()
    if n_images and n_images < len(ids):
        ids = sorted(random.Random(seed).sample(ids, n_images))
    return ids


def _print_pointing_summary(summary: list[dict], out: Path) -> None:
    print_table(
        "pointing game (mean accuracy over categories)",
        ["method", "accuracy ↑", "categories", "pairs"],
        [[s["method"], f"{s['mean_accuracy']:.4f}", str(s["categories"]), str(s["pairs"])]
         for s in summary],
    )  # fmt: skip
    console.print(f"wrote {out / 'summary.md'}, {out / 'per_category.csv'}")


@dataclass(frozen=True)
class _Head:
    """The output layer: where it is saved, and what it is fine-tuned on (None: reuse it)."""

    layer: str
    path: Path
    train: CocoInstances | None
    epochs: int
    lr: float


def _finetune_set(
    coco: CocoInstances, annotations: Path, train_annotations: Path | None, train_root: Path
) -> CocoInstances:
    """The COCO set the head is fine-tuned on, checked against the evaluation set."""
    from medxai.data.coco import CocoInstances

    if train_annotations is None:
        raise MedxaiError("fine-tuning needs --train-annotations (or give --head)")
    train = CocoInstances(train_annotations, train_root)
    if train.names != coco.names:
        raise MedxaiError(f"{train_annotations}: categories differ from {annotations}'s")
    train.check_images(train.image_ids())
    return train


def _run_pointing_game(net, head: _Head, coco, ids, loader, prep, settings, out: Path,
                       device: str) -> list:  # fmt: skip
    """Fine-tune (or load) the head when there is one to use, then play the pointing game."""
    from medxai import distributed
    from medxai.device import resolve_device
    from pipelines.coco_pointing import finetune_head, pointing_game

    run_device = distributed.init_from_env(resolve_device(device))
    try:
        show = distributed.is_main()
        if head.path.is_file() or head.train is not None:
            out.mkdir(parents=True, exist_ok=True)
            with progress_task("head features", visible=show) as progress:
                finetune_head(
                    net, head.layer, head.train or coco, loader, head.path, run_device,
                    epochs=head.epochs, lr=head.lr, seed=settings.seed, progress=progress,
                )  # fmt: skip
        with progress_task("pointing game", visible=show) as progress:
            return pointing_game(
                net, coco, ids, loader, prep, settings, out, run_device, progress=progress
            )
    finally:
        distributed.shutdown()
