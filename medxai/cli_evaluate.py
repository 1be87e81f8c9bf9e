"""`medxai evaluate`: ImageNet deletion/insertion and the COCO pointing game (torchrun-ready).

Run under `torchrun --nproc-per-node K -m medxai evaluate ...` to shard images over ranks;
rank 0 writes the same files as one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medxai.errors import MedxaiError

app = typer.Typer(
    help="Benchmarks: ImageNet deletion/insertion and the COCO pointing game.",
    no_args_is_help=True,
)

Methods = Annotated[list[str] | None, typer.Option("--method", help="Saliency method (repeat).")]
ModelName = Annotated[
    str, typer.Option(help="Zoo name (resnet50, vgg19, densenet201, inception_v3, "
                      "efficientnet-lite0) or a medxai checkpoint file.")
]  # fmt: skip
Weights = Annotated[Path | None, typer.Option(help="Local weights file (nothing is downloaded).")]
ModelImport = Annotated[
    str | None, typer.Option(help="Instead of --model: package.module:factory.")
]
ImageSize = Annotated[int, typer.Option(min=16, max=1024, help="Input size (with --model-import).")]
Normalise = Annotated[str, typer.Option(help="imagenet, lite or none (with --model-import).")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
Resolution = Annotated[int, typer.Option(min=1, max=1024, help="Mask resolution: 7, 14, 28…")]
NImages = Annotated[int, typer.Option(min=0, max=10_000_000, help="Seeded sample (0: all).")]
TargetLayer = Annotated[str | None, typer.Option(help="Module name for CAMs.")]
BatchSize = Annotated[int, typer.Option(min=1, max=1024, help="Images per batch (and per rank).")]
Seed = Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Sample and method seed.")]


def _methods(methods: list[str] | None, default: list[str]) -> tuple[str, ...]:
    from medxai.explain import method_names

    chosen = methods or default
    known = set(method_names())
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise MedxaiError(f"unknown method {unknown[0]!r}; choose from {', '.join(sorted(known))}")
    return tuple(chosen)


def _model(model: str, weights: Path | None, model_import: str | None, num_classes: int,
           image_size: int, normalise: str, stretch: bool):  # fmt: skip
    """(module, image loader, input geometry, CAM target layer, zoo name or None)."""
    from medxai.cli import _import_model
    from medxai.data.imagefolder import NORMALISATIONS, NaturalPreprocessing, load_image
    from medxai.models import zoo

    if model_import:
        if normalise not in NORMALISATIONS:
            raise MedxaiError(f"--normalize must be one of {', '.join(NORMALISATIONS)}")
        prep = NaturalPreprocessing(image_size, image_size, normalise, stretch)
        return _import_model(model_import), lambda p: load_image(p, prep), prep, None, None
    if Path(model).is_file():
        from medxai.models.checkpoint import load_checkpoint
        from pipelines.explain_images import ImageItem, load_batch

        net, spec = load_checkpoint(model)
        size = spec.preprocessing.image_size

        def loader(path: Path):
            return load_batch([ImageItem(path, "")], spec.preprocessing)[0]

        prep = NaturalPreprocessing(size, size, stretch=True)  # the geometry masks follow
        return net, loader, prep, zoo.target_layer(spec.name), None
    if weights is None and model == "efficientnet-lite0":
        from medxai.models.lite import efficientnet_lite0_weights

        weights = efficientnet_lite0_weights()
    if weights is None:
        zoo.target_layer(model)  # an unknown name fails here first
        raise MedxaiError(f"--weights FILE is required for {model} (nothing is downloaded)")
    net = zoo.build_model(model, num_classes, 3, weights)
    prep = zoo.natural_preprocessing(model)
    if stretch:
        prep = NaturalPreprocessing(prep.crop, prep.crop, prep.normalise, True)
    return net, lambda p: load_image(p, prep), prep, zoo.target_layer(model), model


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    from medxai.cli import console

    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command("deletion-insertion")
def deletion_insertion_command(
    data: Annotated[Path, typer.Option(help="ImageNet val folder (+ labels file) or ImageFolder.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    model: ModelName = "resnet50",
    weights: Weights = None,
    model_import: ModelImport = None,
    labels: Annotated[Path | None, typer.Option(help="Labels file (default: found).")] = None,
    class_index: Annotated[Path | None, typer.Option(help="One class per line.")] = None,
    method: Methods = None,
    resolution: Resolution = 28,
    ranking: Annotated[str, typer.Option(help="mask (iGOS++ code) or pixel (AOP).")] = "mask",
    n_images: NImages = 0,
    target: Annotated[str, typer.Option(help="predicted or label.")] = "predicted",
    num_classes: Annotated[int, typer.Option(min=2, max=100_000)] = 1000,
    image_size: ImageSize = 224,
    normalize: Normalise = "imagenet",
    target_layer: TargetLayer = None,
    batch_size: BatchSize = 8,
    device: Device = "auto",
    seed: Seed = 0,
) -> None:
    """Deletion/insertion AUC per image and method, the papers' summary table, mean curves."""
    from medxai import distributed
    from medxai.cli import progress_bar
    from medxai.data.imagefolder import load_image_dataset, sample_records
    from medxai.device import resolve_device
    from medxai.outputs import check_output
    from pipelines.imagenet_eval import EvalSettings, evaluate_deletion_insertion

    check_output(out, [data])

    methods = _methods(method, ["gradcam", "igos", "igos++", "sigcam"])
    if ranking not in ("pixel", "mask"):
        raise MedxaiError(f"--ranking must be pixel or mask, got {ranking!r}")
    if target not in ("predicted", "label"):
        raise MedxaiError(f"--target must be predicted or label, got {target!r}")
    net, loader, _, layer, _ = _model(
        model, weights, model_import, num_classes, image_size, normalize, False
    )
    records, _ = load_image_dataset(data, labels, class_index)
    records = sample_records(records, n_images, seed)
    settings = EvalSettings(methods, target, resolution, ranking, batch_size, seed,
                            target_layer or layer)  # fmt: skip
    run_device = distributed.init_from_env(resolve_device(device))
    try:
        with progress_bar() as bar:
            task = bar.add_task("deletion/insertion", total=None, visible=distributed.is_main())
            summary = evaluate_deletion_insertion(
                net, records, loader, settings, out, run_device,
                progress=lambda k, total: bar.update(task, advance=k, total=total),
            )  # fmt: skip
    finally:
        distributed.shutdown()
    if summary:
        _table(
            f"deletion/insertion AUC over {summary[0]['images']} images "
            f"({summary[0]['ranking']} ranking)",
            ["method", "deletion ↓", "insertion ↑", "over-all ↑"],
            [[s["method"], *(f"{s[k]:.4f}" for k in ("deletion_auc", "insertion_auc", "overall"))]
             for s in summary],
        )  # fmt: skip
        from medxai.cli import console

        console.print(f"wrote {out / 'summary.md'}, {out / 'per_image.csv'}, {out / 'curves.png'}")


@app.command("pointing-game")
def pointing_game_command(
    coco_root: Annotated[Path, typer.Option(help="Folder of the evaluation images.")],
    annotations: Annotated[Path, typer.Option(help="COCO instances JSON of those images.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
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
    lr: Annotated[float, typer.Option(min=0.0, max=10.0)] = 1e-3,
    method: Methods = None,
    resolution: Resolution = 28,
    n_images: NImages = 0,
    image_size: ImageSize = 224,
    normalize: Normalise = "imagenet",
    target_layer: TargetLayer = None,
    batch_size: BatchSize = 8,
    device: Device = "auto",
    seed: Seed = 0,
) -> None:
    """Fine-tune the output layer on COCO (BCE), then the pointing game per category."""
    import random

    from medxai import distributed
    from medxai.cli import console, progress_bar
    from medxai.data.coco import CocoInstances
    from medxai.device import resolve_device
    from medxai.models import zoo
    from medxai.outputs import check_output
    from pipelines.coco_pointing import PointingSettings, finetune_head, pointing_game

    check_output(out, [coco_root])
    methods = _methods(method, ["gradcam", "sigcam"])
    coco = CocoInstances(annotations, coco_root)
    net, loader, prep, layer, name = _model(
        model, weights, model_import, len(coco.names), image_size, normalize, True
    )
    head_layer = head_layer or (zoo.head_layer(name) if name else "fc")
    head = head or out / "head.pt"
    ids = coco.image_ids()
    if n_images and n_images < len(ids):
        ids = sorted(random.Random(seed).sample(ids, n_images))
    settings = PointingSettings(methods, batch_size, seed, resolution, target_layer or layer)
    coco.check_images(ids)
    train = None
    if not head.is_file() and finetune_epochs > 0:
        if train_annotations is None:
            raise MedxaiError("fine-tuning needs --train-annotations (or give --head)")
        train = CocoInstances(train_annotations, train_root or coco_root)
        if train.names != coco.names:
            raise MedxaiError(f"{train_annotations}: categories differ from {annotations}'s")
        train.check_images(train.image_ids())
    run_device = distributed.init_from_env(resolve_device(device))
    try:
        with progress_bar() as bar:
            show = distributed.is_main()
            if head.is_file() or train is not None:
                out.mkdir(parents=True, exist_ok=True)
                task = bar.add_task("head features", total=None, visible=show)
                finetune_head(
                    net, head_layer, train or coco, loader, head, run_device,
                    epochs=finetune_epochs, lr=lr, seed=seed,
                    progress=lambda k, t: bar.update(task, advance=k, total=t),
                )  # fmt: skip
            task = bar.add_task("pointing game", total=None, visible=show)
            summary = pointing_game(
                net, coco, ids, loader, prep, settings, out, run_device,
                progress=lambda k, total: bar.update(task, advance=k, total=total),
            )  # fmt: skip
    finally:
        distributed.shutdown()
    if summary:
        _table(
            "pointing game (mean accuracy over categories)",
            ["method", "accuracy ↑", "categories", "pairs"],
            [[s["method"], f"{s['mean_accuracy']:.4f}", str(s["categories"]), str(s["pairs"])]
             for s in summary],
        )  # fmt: skip
        console.print(f"wrote {out / 'summary.md'}, {out / 'per_category.csv'}")
