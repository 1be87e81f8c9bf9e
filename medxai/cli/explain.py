"""`medxai explain`: saliency maps, overlays and deletion/insertion AUCs of a classifier."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medxai.cli.common import (
    AUC_KEYS,
    Channels,
    ImageSize,
    MaybeRoot,
    ModelImport,
    Ranking,
    Resolution,
    RunOptions,
    Split,
    check_run,
    console,
    methods_option,
    print_auc_table,
    progress_task,
    with_run_options,
)
from medxai.cli.inputs import import_model, load_split
from medxai.errors import MedxaiError

if TYPE_CHECKING:
    import torch

    from pipelines.explain_images import ScoreRow

DEFAULT_METHODS = ("gradcam", "igos++")


@with_run_options
def explain(
    out: Annotated[Path, typer.Option(help="Folder for maps/, overlays/ and scores.csv.")],
    checkpoint: Annotated[Path | None, typer.Option(help="A model.pt from medxai train.")] = None,
    model_import: ModelImport = None,
    image: Annotated[list[Path] | None, typer.Option(help="Image file (repeatable).")] = None,
    root: MaybeRoot = None,
    split: Split = "test.txt",
    limit: Annotated[int, typer.Option(min=0, max=1_000_000, help="At most N (0: all).")] = 0,
    method: Annotated[list[str] | None, methods_option(",".join(DEFAULT_METHODS))] = None,
    resolution: Resolution = 28,
    target: Annotated[str, typer.Option(help="predicted, label or a class index.")] = "predicted",
    ranking: Ranking = "pixel",
    image_size: ImageSize = 224,
    channels: Channels = 1,
    *,
    run: RunOptions,
) -> None:
    """Saliency maps, overlays and deletion/insertion AUCs for images or a COVIDx split."""
    from medxai.device import resolve_device
    from medxai.outputs import output_lock
    from pipelines.explain_images import explain_images

    methods = check_run(out, [root], method, DEFAULT_METHODS)
    if (checkpoint is None) == (model_import is None):
        raise MedxaiError("give exactly one of --checkpoint or --model-import")
    run_device = resolve_device(run.device)
    model, prep, classes, layer = _model(
        checkpoint, model_import, image_size, channels, run.target_layer, run_device
    )
    items = _items(image, root, split, classes, limit)
    with output_lock(out), progress_task("explaining", len(items) * len(methods)) as progress:
        rows = explain_images(
            model, items, methods, prep, out, run_device, classes=classes, target=target,
            resolution=resolution, ranking=ranking, batch_size=run.batch_size, seed=run.seed,
            target_layer=layer, progress=progress,
        )  # fmt: skip
    _print_scores(rows, methods, len(items), ranking)
    console.print(f"wrote {out / 'scores.csv'}, {out / 'maps'}, {out / 'overlays'}")


def _model(
    checkpoint: Path | None, model_import: str | None, image_size: int, channels: int,
    target_layer: str | None, run_device: torch.device,
) -> tuple:  # fmt: skip
    """(model, preprocessing, class names or None, CAM layer) of either source."""
    from medxai.data.transforms import Preprocessing
    from medxai.models.checkpoint import load_checkpoint
    from medxai.models.zoo import target_layer as zoo_target_layer

    if checkpoint is not None:
        model, spec = load_checkpoint(checkpoint, run_device)
        layer = target_layer or zoo_target_layer(spec.name)
        return model, spec.preprocessing, spec.classes, layer
    return import_model(model_import), Preprocessing(image_size, channels), None, target_layer


def _items(
    image: list[Path] | None, root: Path | None, split: str, classes: list[str] | None, limit: int
) -> list:
    """The images to explain: the --image files, or the records of --root/--split."""
    from pipelines.explain_images import items_from_paths, items_from_records

    if bool(image) == (root is not None):
        raise MedxaiError("give images with --image, or a dataset with --root/--split")
    if image:
        items = items_from_paths(image)
    else:
        records = load_split(root, split, None)
        items = items_from_records(records, classes or sorted({r.label for r in records}))
    return items[:limit] if limit else items


def _print_scores(rows: list[ScoreRow], methods: list[str], n_images: int, ranking: str) -> None:
    """Mean deletion/insertion AUCs per method."""
    used = rows[0].ranking if rows else ranking
    means = []
    for name in methods:
        mine = [r for r in rows if r.method == name]
        means.append((name, [sum(getattr(r, k) for r in mine) / len(mine) for k in AUC_KEYS]))
    print_auc_table(f"mean deletion/insertion AUC over {n_images} images ({used} ranking)", means)
