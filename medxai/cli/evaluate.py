"""`medxai evaluate`: ImageNet deletion/insertion and the COCO pointing game (torchrun-ready).

Run under `torchrun --nproc-per-node K -m medxai evaluate ...` to shard images over ranks;
rank 0 writes the same files as one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medxai.cli.common import (
    AUC_KEYS,
    LearningRate,
    MaybeImageSize,
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
from medxai.cli.inputs import (
    OnnxFile,
    PreprocessingFile,
    TorchScriptFile,
    listed_options,
    model_source,
    runnable_methods,
)
from medxai.errors import MedxaiError
from medxai.models.kinds import MODEL_KINDS, USER_KINDS

if TYPE_CHECKING:
    import torch
    from torch import nn

    from medxai.data.coco import CocoInstances
    from medxai.data.transforms import Preprocessing
    from medxai.explain.user_model import LoadedModel, ModelSource

GROUP_HELP = "Benchmarks: ImageNet deletion/insertion and the COCO pointing game."
DELETION_INSERTION_METHODS = ("gradcam", "igos", "igos++", "sigcam")
POINTING_GAME_METHODS = ("gradcam", "sigcam")

ModelName = Annotated[
    str, typer.Option(help="Zoo name (resnet50, vgg19, densenet201, inception_v3, "
                      "efficientnet-lite0) or a medxai checkpoint file.")
]  # fmt: skip
Weights = Annotated[
    Path | None,
    typer.Option(help="Local weights file for --model or --model-import (nothing is downloaded)."),
]
Normalise = Annotated[
    str | None,
    typer.Option(help="imagenet (default), lite or none (with --model-import, --torchscript, "
                 "--onnx)."),
]  # fmt: skip
NImages = Annotated[int, typer.Option(min=0, max=10_000_000, help="Seeded sample (0: all).")]


@dataclass(frozen=True)
class _ModelChoice:
    """The model options both benchmarks take (None: not given)."""

    model: str
    weights: Path | None
    model_import: str | None
    image_size: int | None
    normalize: str | None
    preprocessing: Path | None = None
    torchscript: Path | None = None
    onnx: Path | None = None


@dataclass(frozen=True)
class _Net:
    """The model to evaluate: module, image loader, input geometry, CAM target layer, zoo
    name (None for the user's models) and, for the user's models, what they support."""

    module: nn.Module
    loader: Callable[[Path], torch.Tensor]
    prep: Preprocessing
    layer: str | None
    name: str | None
    loaded: LoadedModel | None = None

    def methods(self, methods: list[str], defaulted: bool, target_layer: str | None) -> list[str]:
        """The methods that run on this model (the others printed with the reason)."""
        if self.loaded is None:
            return methods
        return runnable_methods(self.loaded.with_target_layer(target_layer), methods, defaulted)


def _model(choice: _ModelChoice, num_classes: int, stretch: bool) -> _Net:
    """The zoo model, medxai checkpoint or user's model the options name.

    stretch=True resizes the whole photograph to the input size (resize=0: nothing cut off,
    as the pointing game needs); a medxai checkpoint or preprocessing file keeps its own.
    """
    from medxai.data.imagefolder import load_image
    from medxai.models import zoo

    source = _user_source(choice)
    if source is not None:
        return _user_model(source, choice, stretch)
    if choice.preprocessing is not None:
        takes_file = [k for k in USER_KINDS if not MODEL_KINDS[k].own_spec]
        raise MedxaiError(f"--preprocessing goes with {listed_options(takes_file)}")
    model, weights = choice.model, choice.weights
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
    return _Net(net, lambda p: load_image(p, prep), prep, zoo.target_layer(model), model)


def _user_source(choice: _ModelChoice) -> ModelSource | None:
    """--model-import/--torchscript/--onnx, else --model FILE (a medxai checkpoint), else None."""
    from medxai.models.user_model import ModelSource

    options = {"import": choice.model_import, "torchscript": choice.torchscript,
               "onnx": choice.onnx}  # fmt: skip
    source = model_source(options, choice.weights, choice.preprocessing)
    if source is None and Path(choice.model).is_file():
        return ModelSource("checkpoint", choice.model, choice.weights, choice.preprocessing)
    return source


def _user_model(source: ModelSource, choice: _ModelChoice, stretch: bool) -> _Net:
    """A checkpoint keeps its own preprocessing, and its images are read as radiographs (the
    geometry masks follow, top crop included); the others read photographs."""
    from medxai.data.imagefolder import ImageRecord, load_image
    from medxai.data.transforms import NORMALISATIONS, Preprocessing
    from medxai.explain.user_model import load_user_model
    from pipelines.explain_images import load_batch

    given, own = None, source.model_kind.own_spec  # own: a medxai checkpoint's preprocessing
    if not own and source.preprocessing is None:
        size, normalize = choice.image_size or 224, choice.normalize or "imagenet"
        if normalize not in NORMALISATIONS:
            raise MedxaiError(f"--normalize must be one of {', '.join(NORMALISATIONS)}")
        given = Preprocessing(size, 3, intensity=normalize, resize=0 if stretch else size)
    elif choice.image_size is not None or choice.normalize is not None:
        where = source.location if own else source.preprocessing
        raise MedxaiError(f"--image-size/--normalize: {where} gives the preprocessing")
    loaded = load_user_model(source, None, "cpu", preprocessing=given, numbered=True)
    prep = loaded.spec.preprocessing
    if own:
        loader = lambda image: load_batch([ImageRecord(image, "")], prep)[0]  # noqa: E731
    else:
        loader = lambda image: load_image(image, prep)  # noqa: E731
    return _Net(loaded.module, loader, prep, loaded.target_layer, None, loaded)


@with_run_options
def deletion_insertion_command(
    data: Annotated[Path, typer.Option(help="ImageNet val folder (+ labels file) or ImageFolder.")],
    out: OutDir,
    model: ModelName = "resnet50",
    weights: Weights = None,
    model_import: ModelImport = None,
    torchscript: TorchScriptFile = None,
    onnx: OnnxFile = None,
    preprocessing: PreprocessingFile = None,
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
    image_size: MaybeImageSize = None,
    normalize: Normalise = None,
    *,
    run: RunOptions,
) -> None:
    """Deletion/insertion AUC per image and method, the papers' summary table, mean curves."""
    from medxai.data.imagefolder import load_image_dataset, sample_records
    from pipelines.imagenet_eval import EvalSettings

    methods = check_run(out, [data], method, DELETION_INSERTION_METHODS)
    check_choice("--target", target, ("predicted", "label"))
    choice = _ModelChoice(model, weights, model_import, image_size, normalize, preprocessing,
                          torchscript, onnx)  # fmt: skip
    net = _model(choice, num_classes, False)
    methods = net.methods(methods, not method, run.target_layer)
    records, _ = load_image_dataset(data, labels, class_index)
    records = sample_records(records, n_images, run.seed)
    settings = EvalSettings(tuple(methods), target, resolution, ranking, run.batch_size,
                            run.seed, run.target_layer or net.layer)  # fmt: skip
    summary = _run_deletion_insertion(net.module, records, net.loader, settings, out, run.device)
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
    preprocessing: PreprocessingFile = None,
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
    image_size: MaybeImageSize = None,
    normalize: Normalise = None,
    *,
    run: RunOptions,
) -> None:
    """Fine-tune the output layer on COCO (BCE), then the pointing game per category."""
    from medxai.data.coco import CocoInstances
    from medxai.models import zoo
    from pipelines.coco_pointing import PointingSettings

    methods = check_run(out, [coco_root], method, POINTING_GAME_METHODS)
    coco = CocoInstances(annotations, coco_root)
    choice = _ModelChoice(model, weights, model_import, image_size, normalize, preprocessing)
    net = _model(choice, len(coco.names), True)
    methods = net.methods(methods, not method, run.target_layer)
    head_layer = head_layer or (zoo.head_layer(net.name) if net.name else "fc")
    head = head or out / "head.pt"
    ids = _sample_ids(coco, n_images, run.seed)
    settings = PointingSettings(
        tuple(methods), run.batch_size, run.seed, resolution, run.target_layer or net.layer
    )
    coco.check_images(ids)
    train = None
    if not head.is_file() and finetune_epochs > 0:
        train = _finetune_set(coco, annotations, train_annotations, train_root or coco_root)
    plan = _Head(head_layer, head, train, finetune_epochs, lr)
    summary = _run_pointing_game(
        net.module, plan, coco, ids, net.loader, net.prep, settings, out, run.device
    )
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
