"""Explain a model's decisions on a set of images with several methods, and score the maps.

For every image and method: OUT/maps/<image>__<method>.npy (saliency at model input size,
float32 in [0, 1]), OUT/overlays/<image>__<method>.png (heatmap over the radiograph),
OUT/curves/<image>__<method>.npz (deletion/insertion curves), and one row of
OUT/scores.csv (deletion/insertion AUC with the ranking used). Maps already on disk are
reused, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from math import nan
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medxai import distributed
from medxai.atomic import atomic_write_bytes, atomic_write_text
from medxai.data.covidx import Record
from medxai.data.imagefolder import ImageRecord
from medxai.data.imageio import read_image, to_channels, write_png
from medxai.data.transforms import Preprocessing, build_transforms
from medxai.errors import MedxaiError
from medxai.explain.base import Explainer, no_map_message
from medxai.explain.perturb import blurred_baseline
from medxai.explain.registry import build_explainer
from medxai.metrics.causal import CausalScores, deletion_insertion_maps
from medxai.report.figures import heatmap_overlay


@dataclass(frozen=True)
class ScoreRow:
    """One row of scores.csv: one image explained by one method, and its causal scores.

    `label` is None for an unlabelled image (an empty cell in the CSV); `seconds` is the
    method's time per image, NaN when the map was read back from disk. `note` says why the
    method found no map for the image (its AUCs are then NaN: the map ranks nothing), else "".
    """

    image: str
    label: int | None
    target: int
    target_name: str
    method: str
    deletion_auc: float
    insertion_auc: float
    overall: float
    ranking: str
    seconds: float
    note: str = ""


SCORE_FIELDS = tuple(f.name for f in fields(ScoreRow))


def items_from_paths(paths: Sequence[Path]) -> list[ImageRecord]:
    names = [Path(p).stem for p in paths]
    unique = len(set(names)) == len(names)
    return [
        ImageRecord(Path(p), name if unique else f"{i:05d}_{name}")
        for i, (p, name) in enumerate(zip(paths, names, strict=True))
    ]


def items_from_records(records: Sequence[Record], classes: Sequence[str]) -> list[ImageRecord]:
    index = {name: i for i, name in enumerate(classes)}
    return [ImageRecord(r.path, Path(r.filename).stem, index.get(r.label)) for r in records]


def slug(method: str) -> str:
    """A method name as a file-name part: igos++ → igospp, aop:gradcam+igos → aop-gradcam_igos."""
    name = method.replace("++", "pp").replace(":", "-").replace("+", "_")
    return re.sub(r"[^A-Za-z0-9_.-]", "", name)


def map_path(folder: Path, image_name: str, method: str) -> Path:
    """An image's saliency map for one method: FOLDER/<image>__<slug(method)>.npy."""
    return folder / f"{image_name}__{slug(method)}.npy"


def curve_path(folder: Path, image_name: str, method: str) -> Path:
    """Its deletion/insertion curves: FOLDER/<image>__<slug(method)>.npz."""
    return folder / f"{image_name}__{slug(method)}.npz"


def overlay_path(folder: Path, image_name: str, method: str) -> Path:
    """Its heatmap over the image: FOLDER/<image>__<slug(method)>.png."""
    return folder / f"{image_name}__{slug(method)}.png"


def no_map_path(folder: Path, image_name: str, method: str) -> Path:
    """Why the method found no map for the image, when it found none: FOLDER/<...>.nomap.txt."""
    return folder / f"{image_name}__{slug(method)}.nomap.txt"


def read_batch(
    paths: Sequence[Path], prep: Preprocessing
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Model input (N, C, S, S) for image files, and each file's original (H, W)."""
    transform = build_transforms(prep)
    arrays, shapes = [], []
    for path in paths:
        image = read_image(path)
        shapes.append(image.shape[:2])
        arrays.append(np.asarray(transform(to_channels(image, prep.channels))))
    return torch.from_numpy(np.stack(arrays)).float(), shapes


def load_batch(items: Sequence[ImageRecord], prep: Preprocessing) -> torch.Tensor:
    return read_batch([item.path for item in items], prep)[0]


def resolve_targets(
    model: nn.Module, images: torch.Tensor, records: Sequence[ImageRecord], target: str
) -> torch.Tensor:
    """The class explained per image, (N,) on the images' device.

    "predicted": the model's top class; "label": each record's label (all must have one);
    a class index ("3"): that class for every image.
    """
    if target == "predicted":
        with torch.no_grad():
            return model(images).argmax(1)
    if target == "label":
        missing = [r.path for r in records if r.label is None]
        if missing:
            raise MedxaiError(
                f"{missing[0]}: no label for --target label "
                "(give labelled images: a dataset --root/--split or a labels file)"
            )
        return torch.tensor([r.label for r in records], device=images.device)
    if target.isdigit():
        return torch.full((len(records),), int(target), device=images.device)
    raise MedxaiError(f"--target must be predicted, label or a class index; got {target!r}")


@dataclass(frozen=True)
class _Run:
    """What every chunk of one `explain_images` call shares."""

    model: nn.Module
    out: Path
    ranking: str
    resolution: int
    classes: Sequence[str] | None
    per_step: int | None = None  # cells (or pixel rows) per curve step (None: the default)


def explain_images(
    model: nn.Module,
    items: Sequence[ImageRecord],
    methods: Sequence[str],
    prep: Preprocessing,
    out: Path,
    device: torch.device,
    classes: Sequence[str] | None = None,
    target: str = "predicted",
    resolution: int = 28,
    ranking: str = "pixel",
    batch_size: int = 8,
    seed: int = 0,
    target_layer: str | None = None,
    progress: Callable[[int], None] | None = None,
    inputs: torch.Tensor | None = None,
    targets: Sequence[int] | torch.Tensor | None = None,
    method_params: dict[str, dict[str, int]] | None = None,
    per_step: int | None = None,
) -> list[ScoreRow]:
    """Run every method on every image; returns (and writes) the rows of scores.csv.

    Rows come image by image, the methods in the given order. `target` is resolved by
    `resolve_targets`; `target_layer` names the module CAM methods read (default: found
    automatically). `inputs` (N, C, S, S) and `targets` (N,), when given, are the items'
    model inputs and explained classes already at hand (not read or resolved again);
    `method_params`: per method, parameters that replace its defaults (a time budget's cuts);
    `per_step`: the deletion/insertion curves' cells per step (None: `deletion_insertion`'s).
    """
    for given, what in ((inputs, "inputs"), (targets, "targets")):
        if given is not None and len(given) != len(items):
            raise MedxaiError(f"{len(given)} {what} for {len(items)} images")
    explainers = _explainers(methods, resolution, batch_size, seed, target_layer, method_params)
    for folder in ("maps", "overlays", "curves"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    run = _Run(model.to(device).eval(), out, ranking, resolution, classes, per_step)
    rows: list[ScoreRow] = []
    for start in range(0, len(items), batch_size):
        part = slice(start, start + batch_size)
        chunk = items[part]
        images = (load_batch(chunk, prep) if inputs is None else inputs[part]).to(device)
        if targets is None:
            chosen = resolve_targets(run.model, images, chunk, target)
        else:
            chosen = torch.as_tensor(targets[part]).to(device=device, dtype=torch.long)
        baseline = blurred_baseline(images)  # the same for every method's causal scores
        rows += _explain_chunk(run, explainers, chunk, images, chosen, baseline, progress)
    write_scores(out / "scores.csv", rows)
    return rows


def make_maps(
    model: nn.Module,
    items: Sequence[ImageRecord],
    methods: Sequence[str],
    out: Path,
    device: torch.device,
    inputs: torch.Tensor,
    targets: Sequence[int] | torch.Tensor,
    resolution: int = 28,
    batch_size: int = 8,
    seed: int = 0,
    target_layer: str | None = None,
    method_params: dict[str, dict[str, int]] | None = None,
) -> None:
    """The maps `explain_images` makes on the same arguments, written to OUT/maps without
    their scores; under torchrun each rank makes every world-size-th (method, chunk) pair
    (method by method, so a costly method's chunks spread over the ranks), and
    `explain_images` then reads them all back. The chunks are `explain_images`' own, so
    every map is the one-process run's."""
    explainers = _explainers(methods, resolution, batch_size, seed, target_layer, method_params)
    for folder in ("maps", "overlays"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    run = _Run(model.to(device).eval(), out, "", resolution, None)
    jobs = [(m, start) for m in methods for start in range(0, len(items), batch_size)]
    for method, start in distributed.deal(jobs):
        part = slice(start, start + batch_size)
        chosen = torch.as_tensor(targets[part]).to(device=device, dtype=torch.long)
        _maps(run, method, explainers[method], items[part], inputs[part].to(device), chosen)


def _explainers(
    methods: Sequence[str], resolution: int, batch_size: int, seed: int,
    target_layer: str | None, method_params: dict[str, dict[str, int]] | None,
) -> dict[str, Explainer]:  # fmt: skip
    return {
        m: build_explainer(
            m, resolution, batch_size, seed, target_layer, **(method_params or {}).get(m, {})
        )
        for m in methods
    }


def _explain_chunk(
    run: _Run,
    explainers: dict[str, Explainer],
    chunk: Sequence[ImageRecord],
    images: torch.Tensor,
    targets: torch.Tensor,
    baseline: torch.Tensor,
    progress: Callable[[int], None] | None,
) -> list[ScoreRow]:
    """Every method on one chunk: maps (made, or read back when all are on disk), then the
    causal scores of all of them in one pass; rows image by image, methods in order."""
    maps, seconds, missing = [], [], []
    for method, explainer in explainers.items():
        saliency, per_image, why = _maps(run, method, explainer, chunk, images, targets)
        maps.append(saliency.to(images.device))
        seconds.append(per_image)
        missing.append(why)
        if progress:
            progress(len(chunk))
    scored = deletion_insertion_maps(
        run.model, images, targets, maps,
        ranking=run.ranking, resolution=run.resolution, per_step=run.per_step,
        baseline=baseline,
    )  # fmt: skip
    for method, scores in zip(explainers, scored, strict=True):
        _write_curves(run.out / "curves", chunk, method, scores)
    rows = []
    for k, item in enumerate(chunk):
        t = int(targets[k])
        for method, scores, per_image, why in zip(
            explainers, scored, seconds, missing, strict=True
        ):
            auc = (scores.deletion[k], scores.insertion[k], scores.overall[k])
            deletion, insertion, overall = (nan,) * 3 if why[k] else map(float, auc)
            rows.append(ScoreRow(
                image=item.name, label=item.label, target=t,
                target_name=run.classes[t] if run.classes else str(t), method=method,
                deletion_auc=deletion, insertion_auc=insertion, overall=overall,
                ranking=scores.ranking, seconds=per_image,
                note=no_map_message(method, why[k]) if why[k] else "",
            ))  # fmt: skip
    return rows


def _maps(
    run: _Run,
    method: str,
    explainer: Explainer,
    chunk: Sequence[ImageRecord],
    images: torch.Tensor,
    targets: torch.Tensor,
) -> tuple[torch.Tensor, float, list[str | None]]:
    """One method's maps of a chunk (N, 1, H, W) on the CPU, read back when all are on disk,
    its seconds per image (NaN when read back) and, per image, why it found no map (or None)."""
    folder = run.out / "maps"
    paths = [map_path(folder, item.name, method) for item in chunk]
    if all(p.is_file() for p in paths):
        maps = torch.from_numpy(np.stack([np.load(p) for p in paths]))[:, None]
        why = [no_map_path(folder, item.name, method) for item in chunk]
        return maps, float("nan"), [w.read_text() if w.is_file() else None for w in why]
    maps = explainer(run.model, images, targets).cpu()
    _write_maps(run.out, chunk, method, maps, images.cpu(), explainer.no_map)
    return maps, explainer.stats["seconds"] / len(chunk), list(explainer.no_map)


def _write_maps(
    out: Path,
    chunk: Sequence[ImageRecord],
    method: str,
    maps: torch.Tensor,
    images: torch.Tensor,
    no_map: Sequence[str | None],
) -> None:
    """Each map as .npy (float32 at input size) and as an overlay PNG on its image; a map that
    is no explanation gets its reason (.nomap.txt) instead of an overlay."""
    for saliency, image, item, why in zip(maps, images, chunk, no_map, strict=True):
        buffer = io.BytesIO()
        np.save(buffer, saliency[0].numpy().astype(np.float32))
        atomic_write_bytes(map_path(out / "maps", item.name, method), buffer.getvalue())
        reason = no_map_path(out / "maps", item.name, method)
        if why:
            atomic_write_text(reason, why)
            overlay_path(out / "overlays", item.name, method).unlink(missing_ok=True)
            continue
        reason.unlink(missing_ok=True)
        overlay = heatmap_overlay(image.numpy(), saliency[0].numpy())
        write_png(overlay_path(out / "overlays", item.name, method), overlay)


def _write_curves(
    folder: Path, chunk: Sequence[ImageRecord], method: str, scores: CausalScores
) -> None:
    """One .npz per image: the deletion and insertion curves over the moved fraction."""
    for k, item in enumerate(chunk):
        buffer = io.BytesIO()
        np.savez(
            buffer,
            fractions=scores.fractions.cpu().numpy(),
            deletion=scores.deletion_curve[k].cpu().numpy(),
            insertion=scores.insertion_curve[k].cpu().numpy(),
        )
        atomic_write_bytes(curve_path(folder, item.name, method), buffer.getvalue())


def write_scores(path: Path, rows: Sequence[ScoreRow]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SCORE_FIELDS)
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    atomic_write_text(path, buffer.getvalue())
