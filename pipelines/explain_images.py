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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medxai.atomic import atomic_write_bytes, atomic_write_text
from medxai.data.covidx import Record
from medxai.data.imageio import read_image, to_channels, write_png
from medxai.data.transforms import Preprocessing, build_transforms
from medxai.errors import MedxaiError
from medxai.explain import get_explainer
from medxai.explain.perturb import blurred_baseline
from medxai.explain.registry import method_parameters
from medxai.metrics.causal import deletion_insertion
from medxai.report.figures import heatmap_overlay

SCORE_FIELDS = (
    "image", "label", "target", "target_name", "method", "deletion_auc", "insertion_auc",
    "overall", "ranking", "seconds",
)  # fmt: skip


@dataclass(frozen=True)
class ImageItem:
    """One image to explain: where it is, a unique output name, and its label if known."""

    path: Path
    name: str
    label: int | None = None


def items_from_paths(paths: Sequence[Path]) -> list[ImageItem]:
    names = [Path(p).stem for p in paths]
    unique = len(set(names)) == len(names)
    return [
        ImageItem(Path(p), name if unique else f"{i:05d}_{name}")
        for i, (p, name) in enumerate(zip(paths, names, strict=True))
    ]


def items_from_records(records: Sequence[Record], classes: Sequence[str]) -> list[ImageItem]:
    index = {name: i for i, name in enumerate(classes)}
    return [ImageItem(r.path, Path(r.filename).stem, index.get(r.label)) for r in records]


def slug(method: str) -> str:
    """A method name as a file-name part: igos++ → igospp, aop:gradcam+igos → aop-gradcam_igos."""
    name = method.replace("++", "pp").replace(":", "-").replace("+", "_")
    return re.sub(r"[^A-Za-z0-9_.-]", "", name)


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


def load_batch(items: Sequence[ImageItem], prep: Preprocessing) -> torch.Tensor:
    return read_batch([item.path for item in items], prep)[0]


def explain_images(
    model: nn.Module,
    items: Sequence[ImageItem],
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
) -> list[dict]:
    """Run every method on every image; returns (and writes) the rows of scores.csv.

    `target_layer` names the module CAM methods read (default: found automatically).
    """
    explainers = {m: _build(m, resolution, batch_size, seed, target_layer) for m in methods}
    for folder in ("maps", "overlays", "curves"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    model = model.to(device).eval()
    rows: list[dict] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        images = load_batch(chunk, prep).to(device)
        targets = _targets(model, images, chunk, target)
        chunk_rows: list[list[dict]] = [[] for _ in chunk]  # image-major order in scores.csv
        baseline = blurred_baseline(images)  # the same for every method's causal scores
        for method, explainer in explainers.items():
            paths = [out / "maps" / f"{item.name}__{slug(method)}.npy" for item in chunk]
            if all(p.is_file() for p in paths):
                maps = torch.from_numpy(np.stack([np.load(p) for p in paths]))[:, None]
                seconds = float("nan")
            else:
                maps = explainer(model, images, targets).cpu()
                seconds = explainer.stats["seconds"] / len(chunk)
                _write_maps(paths, maps, images.cpu(), out, chunk, method)
            scores = deletion_insertion(
                model, images, targets, maps.to(device),
                ranking=ranking, resolution=resolution, baseline=baseline,
            )  # fmt: skip
            _write_curves(out / "curves", chunk, method, scores)
            for k, item in enumerate(chunk):
                t = int(targets[k])
                chunk_rows[k].append({
                    "image": item.name, "label": "" if item.label is None else item.label,
                    "target": t, "target_name": classes[t] if classes else str(t),
                    "method": method, "deletion_auc": float(scores.deletion[k]),
                    "insertion_auc": float(scores.insertion[k]),
                    "overall": float(scores.overall[k]), "ranking": scores.ranking,
                    "seconds": seconds,
                })  # fmt: skip
            if progress:
                progress(len(chunk))
        rows += [row for image_rows in chunk_rows for row in image_rows]
    write_scores(out / "scores.csv", rows)
    return rows


def _build(method: str, resolution: int, batch_size: int, seed: int, layer: str | None, **extra):
    """The method with the shared settings; `extra` parameters go only to methods taking them."""
    accepted = method_parameters(method)
    params: dict = {"batch_size": max(batch_size, 32), "seed": seed}
    if "resolution" in accepted:
        params["resolution"] = resolution
    if layer and "target_layer" in accepted:
        params["target_layer"] = layer
    params.update({k: v for k, v in extra.items() if k in accepted})
    return get_explainer(method, **params)


def _targets(model: nn.Module, images: torch.Tensor, chunk, target: str) -> torch.Tensor:
    if target == "predicted":
        with torch.no_grad():
            return model(images).argmax(1)
    if target == "label":
        if any(item.label is None for item in chunk):
            raise MedxaiError("--target label needs labelled images (a dataset --root/--split)")
        return torch.tensor([item.label for item in chunk], device=images.device)
    if target.isdigit():
        return torch.full((len(chunk),), int(target), device=images.device)
    raise MedxaiError(f"--target must be predicted, label or a class index; got {target!r}")


def _write_maps(paths, maps, images, out: Path, chunk, method: str) -> None:
    for path, saliency, image, item in zip(paths, maps, images, chunk, strict=True):
        buffer = io.BytesIO()
        np.save(buffer, saliency[0].numpy().astype(np.float32))
        atomic_write_bytes(path, buffer.getvalue())
        overlay = heatmap_overlay(image.numpy(), saliency[0].numpy())
        write_png(out / "overlays" / f"{item.name}__{slug(method)}.png", overlay)


def _write_curves(folder: Path, chunk, method: str, scores) -> None:
    """One .npz per image: the deletion and insertion curves over the moved fraction."""
    for k, item in enumerate(chunk):
        buffer = io.BytesIO()
        np.savez(
            buffer,
            fractions=scores.fractions.cpu().numpy(),
            deletion=scores.deletion_curve[k].cpu().numpy(),
            insertion=scores.insertion_curve[k].cpu().numpy(),
        )
        atomic_write_bytes(folder / f"{item.name}__{slug(method)}.npz", buffer.getvalue())


def write_scores(path: Path, rows: Sequence[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SCORE_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
