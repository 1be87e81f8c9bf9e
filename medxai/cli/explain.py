"""`medxai explain`: saliency maps, overlays and deletion/insertion AUCs of a classifier."""

from __future__ import annotations

from math import nan
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, get_args

import typer

from medxai.cli.common import (
    AUC_KEYS,
    Channels,
    Classes,
    MaybeImageSize,
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
from medxai.cli.inputs import (
    ImportWeights,
    OnnxFile,
    PreprocessingFile,
    TorchScriptFile,
    listed_options,
    load_split,
    model_source,
    runnable_methods,
)
from medxai.data.classes import parse_classes
from medxai.errors import MedxaiError

if TYPE_CHECKING:
    import torch

    from medxai.explain.user_model import LoadedModel, ModelSource
    from pipelines.explain_images import ScoreRow

DEFAULT_METHODS = ("gradcam", "igos++")
MaybeChannels = Annotated[int | None, get_args(Channels)[1]]


@with_run_options
def explain(
    out: Annotated[Path, typer.Option(help="Folder for maps/, overlays/ and scores.csv.")],
    checkpoint: Annotated[Path | None, typer.Option(help="A model.pt from medxai train.")] = None,
    model_import: ModelImport = None,
    torchscript: TorchScriptFile = None,
    onnx: OnnxFile = None,
    weights: ImportWeights = None,
    preprocessing: PreprocessingFile = None,
    classes: Classes = None,
    image: Annotated[list[Path] | None, typer.Option(help="Image file (repeatable).")] = None,
    root: MaybeRoot = None,
    split: Split = "test.txt",
    limit: Annotated[int, typer.Option(min=0, max=1_000_000, help="At most N (0: all).")] = 0,
    method: Annotated[list[str] | None, methods_option(",".join(DEFAULT_METHODS))] = None,
    resolution: Resolution = 28,
    target: Annotated[str, typer.Option(help="predicted, label or a class index.")] = "predicted",
    ranking: Ranking = "pixel",
    image_size: MaybeImageSize = None,
    channels: MaybeChannels = None,
    *,
    run: RunOptions,
) -> None:
    """Saliency maps, overlays and deletion/insertion AUCs for images or a COVIDx split."""
    from medxai.device import resolve_device
    from medxai.outputs import output_lock
    from pipelines.explain_images import explain_images

    methods = check_run(out, [root], method, DEFAULT_METHODS)
    options = {"checkpoint": checkpoint, "import": model_import, "torchscript": torchscript,
               "onnx": onnx}  # fmt: skip
    source = model_source(options, weights, preprocessing)
    if source is None:
        raise MedxaiError(f"give one of {listed_options(options)}")
    if bool(image) == (root is not None):
        raise MedxaiError("give images with --image, or a dataset with --root/--split")
    records = load_split(root, split, None) if root is not None else None
    run_device = resolve_device(run.device)
    loaded = _load(source, parse_classes(classes), (image_size, channels), records,
                   run_device).with_target_layer(run.target_layer)  # fmt: skip
    console.print(loaded.description, highlight=False, soft_wrap=True, markup=False)
    methods = runnable_methods(loaded, methods, defaulted=not method)
    items = _items(image, records, loaded.spec.classes, limit)
    with output_lock(out), progress_task("explaining", len(items) * len(methods)) as progress:
        rows = explain_images(
            loaded.module, items, methods, loaded.spec.preprocessing, out, run_device,
            classes=loaded.spec.classes, target=target, resolution=resolution, ranking=ranking,
            batch_size=run.batch_size, seed=run.seed, target_layer=loaded.target_layer,
            progress=progress,
        )  # fmt: skip
    _print_scores(rows, methods, len(items), ranking)
    console.print(f"wrote {out / 'scores.csv'}, {out / 'maps'}, {out / 'overlays'}")


def _load(
    source: ModelSource, classes: list[str] | None, size: tuple[int | None, int | None],
    records: list | None, run_device: torch.device,
) -> LoadedModel:  # fmt: skip
    """The model through `load_user_model`. --image-size/--channels go with a model that
    has no preprocessing file; a dataset's labels name the outputs when nothing else does."""
    from medxai.data.transforms import Preprocessing
    from medxai.explain.user_model import load_user_model

    given = None
    if size != (None, None):
        own = source.model_kind.own_spec  # a medxai checkpoint
        if own or source.preprocessing is not None:
            where = "the checkpoint" if own else str(source.preprocessing)
            raise MedxaiError(f"--image-size/--channels: {where} gives the preprocessing")
        given = Preprocessing(size[0] or 224, size[1] or 1)
    labels = sorted({r.label for r in records or ()})
    return load_user_model(source, classes, run_device, preprocessing=given, numbered=True,
                           default_classes=labels if len(labels) > 1 else None)  # fmt: skip


def _items(image: list[Path] | None, records: list | None, classes: tuple[str, ...],
           limit: int) -> list:  # fmt: skip
    """The images to explain: the --image files, or the records of --root/--split."""
    from pipelines.explain_images import items_from_paths, items_from_records

    items = items_from_paths(image) if image else items_from_records(records, classes)
    return items[:limit] if limit else items


def _print_scores(rows: list[ScoreRow], methods: list[str], n_images: int, ranking: str) -> None:
    """Mean deletion/insertion AUCs per method over the images it found a map for; a line for
    each image it found none for."""
    used = rows[0].ranking if rows else ranking
    means = []
    for name in methods:
        mine = [r for r in rows if r.method == name and not r.note]
        n = len(mine)
        label = name if n == n_images else f"{name} ({n} of {n_images})"
        means.append((label, [sum(getattr(r, k) for r in mine) / n if n else nan
                              for k in AUC_KEYS]))  # fmt: skip
    print_auc_table(f"mean deletion/insertion AUC over {n_images} images ({used} ranking)", means)
    for row in rows:
        if row.note:
            console.print(f"{row.image}: {row.note}", highlight=False, markup=False)
