"""COCO pointing game with the SIGCAM protocol.

1. Fine-tune only the output layer for COCO's multi-label classes with BCEWithLogitsLoss
   (the backbone is frozen in eval mode, so its pooled features are computed once and the
   head is trained on them; `finetune_head`). The head is saved and reused when present.
2. For every image and every class with sigmoid score > 0.5, a hit when the most salient
   pixel lies in any of that class's instance masks; accuracy per category and their mean.

Writes OUT/pointing.csv (image, category, score, method, hit, peak), OUT/per_category.csv,
OUT/summary.csv and OUT/summary.md. Per-image results under OUT/results/ make it resumable;
under torchrun, batches are dealt to ranks and rank 0 writes the one-process files.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medxai import distributed
from medxai.atomic import atomic_write_bytes, atomic_write_text
from medxai.data.coco import CocoInstances
from medxai.data.transforms import Preprocessing
from medxai.errors import MedxaiError
from medxai.explain.base import Explainer, no_map_message
from medxai.metrics.pointing import category_accuracy, pointing_hits
from pipelines.eval_common import Progress, evaluate_methods, markdown_table, write_csv

Loader = Callable[[Path], torch.Tensor]
ROW_FIELDS = ("image_id", "category", "score", "method", "hit", "peak_y", "peak_x", "note")


@dataclass(frozen=True)
class PointingSettings:
    """Methods and their settings; theta/lam are the AOP paper's COCO values for SIGCAM/AOP."""

    methods: tuple[str, ...]
    batch_size: int = 8
    seed: int = 0
    resolution: int = 28
    target_layer: str | None = None
    min_score: float = 0.5
    theta: float = 0.6
    lam: float = 0.25


def _head(model: nn.Module, name: str, classes: int) -> nn.Linear:
    try:
        head = model.get_submodule(name)
    except AttributeError as err:
        raise MedxaiError(f"the model has no output layer named {name!r}") from err
    if not isinstance(head, nn.Linear) or head.out_features != classes:
        raise MedxaiError(f"output layer {name!r} must be a Linear with {classes} outputs")
    return head


def _features(model, head, coco, ids, loader, batch_size, device, progress) -> torch.Tensor:
    """Inputs of the head for every image id (sharded, gathered, in `ids` order), (N, F)."""
    store: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda m, args, out: store.append(args[0].detach()))
    mine: list[tuple[int, torch.Tensor]] = []
    batches = distributed.deal_batches(list(ids), batch_size)
    try:
        with torch.no_grad():
            for batch in batches:
                model(torch.stack([loader(coco.image_path(i)) for i in batch]).to(device))
                mine += list(zip(batch, store.pop().cpu(), strict=True))
                if progress:
                    progress(len(batch), sum(len(b) for b in batches))
    finally:
        handle.remove()
    rows = dict(distributed.gather_objects(mine))
    return torch.stack([rows[i] for i in ids])


def finetune_head(
    model: nn.Module,
    head_name: str,
    coco: CocoInstances,
    loader: Loader,
    head_path: Path,
    device: torch.device,
    *,
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: Progress | None = None,
) -> bool:
    """Load the head from `head_path`, or train it (BCEWithLogitsLoss) and save it there.

    Returns True when it trained. Every rank trains the same head on the same gathered
    features, so no rank waits for another's file.
    """
    model = model.to(device).eval()
    head = _head(model, head_name, len(coco.names))
    if head_path.is_file():
        try:
            state = torch.load(head_path, map_location=device, weights_only=True)
            head.load_state_dict(state)
        except Exception as err:  # torch raises many types for foreign or corrupt files
            raise MedxaiError(f"{head_path}: not a head for this model ({err})") from err
        return False
    ids = coco.image_ids()
    coco.check_images(ids)
    feats = _features(model, head, coco, ids, loader, batch_size, device, progress).to(device)
    labels = torch.from_numpy(np.stack([coco.labels(i) for i in ids])).to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        order = torch.randperm(len(ids), generator=generator).to(device)
        for start in range(0, len(ids), batch_size):
            pick = order[start : start + batch_size]
            optimizer.zero_grad()
            loss_fn(head(feats[pick]), labels[pick]).backward()
            optimizer.step()
    if distributed.is_main():
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in head.state_dict().items()}, buffer)
        atomic_write_bytes(head_path, buffer.getvalue())
    return True


def _class_mask(coco: CocoInstances, image_id: int, k: int, prep: Preprocessing):
    mask = torch.from_numpy(coco.class_mask(image_id, k))[None].float()
    return prep.geometry(mask, nearest=True)[0] > 0.5  # (S, S) in model-input coordinates


def _point_batch(model, explainer, coco, batch, settings, prep, method, *, images, scores):
    """Rows per image of the batch: one per (class with score > min_score) pair."""
    pairs = (scores > settings.min_score).nonzero().tolist()  # [[b, k], ...] row-major
    per_image: list[list[dict]] = [[] for _ in batch]
    if not pairs:
        return per_image
    b_idx = torch.tensor([b for b, _ in pairs], device=images.device)
    k_idx = torch.tensor([k for _, k in pairs], device=images.device)
    maps = explainer(model, images[b_idx], k_idx).cpu()  # (P, 1, S, S)
    masks = [_class_mask(coco, batch[b], k, prep) for b, k in pairs]
    hits = pointing_hits(maps, masks)
    peaks = maps.flatten(1).argmax(1)
    width = maps.shape[-1]
    why = explainer.no_map  # a map that is no explanation points nowhere: a miss
    for j, (b, k) in enumerate(pairs):
        per_image[b].append({
            "image_id": batch[b], "category": coco.names[k], "score": float(scores[b, k]),
            "method": method, "hit": 0 if why[j] else int(hits[j]),
            "peak_y": -1 if why[j] else int(peaks[j]) // width,
            "peak_x": -1 if why[j] else int(peaks[j]) % width,
            "note": no_map_message(method, why[j]) if why[j] else "",
        })  # fmt: skip
    return per_image


def pointing_game(
    model: nn.Module,
    coco: CocoInstances,
    image_ids: Sequence[int],
    loader: Loader,
    prep: Preprocessing,
    settings: PointingSettings,
    out: Path,
    device: torch.device,
    progress: Progress | None = None,
) -> list[dict]:
    """Run the pointing game; returns the summary rows on rank 0 ([] elsewhere).

    `prep` gives the geometry that maps the class masks onto the model input.
    """
    coco.check_images(list(image_ids))
    model = model.to(device).eval()

    def compute(batch: list[int], method: str, explainer: Explainer, cache: dict):
        if not cache:
            images = torch.stack([loader(coco.image_path(i)) for i in batch]).to(device)
            with torch.no_grad():
                cache.update(images=images, scores=torch.sigmoid(model(images)).cpu())
        return _point_batch(model, explainer, coco, batch, settings, prep, method, **cache)

    per_image = evaluate_methods(
        image_ids, str, settings, out, compute, progress, theta=settings.theta, lam=settings.lam
    )
    if per_image is None:
        return []
    rows = [row for image_rows in per_image for row in image_rows]
    order = {m: i for i, m in enumerate(settings.methods)}
    cat_order = {name: i for i, name in enumerate(coco.names)}
    rows.sort(key=lambda r: (r["image_id"], cat_order[r["category"]], order[r["method"]]))
    return write_outputs(out, rows, settings.methods, coco.names)


def write_outputs(out: Path, rows, methods: Sequence[str], names: Sequence[str]) -> list[dict]:
    """pointing.csv, per_category.csv and summary.csv/.md from the sorted rows."""
    write_csv(out / "pointing.csv", ROW_FIELDS, rows)
    summary, per_category = [], []
    table: dict[str, dict[str, float]] = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        per, mean = category_accuracy([r["category"] for r in mine], [r["hit"] for r in mine])
        table[method] = per
        summary.append({"method": method, "mean_accuracy": mean, "categories": len(per),
                        "pairs": len(mine),
                        "no_map": sum(bool(r.get("note")) for r in mine)})  # fmt: skip
        for name in names:
            if name in per:
                hits = [r["hit"] for r in mine if r["category"] == name]
                per_category.append({
                    "category": name, "method": method, "pairs": len(hits),
                    "hits": sum(hits), "accuracy": per[name],
                })  # fmt: skip
    write_csv(out / "summary.csv", ("method", "mean_accuracy", "categories", "pairs", "no_map"),
              summary)  # fmt: skip
    write_csv(out / "per_category.csv", ("category", "method", "pairs", "hits", "accuracy"),
              per_category)  # fmt: skip
    means = markdown_table(
        ["method", "mean accuracy ↑", "categories", "pairs", "no map (counted as misses)"],
        [
            [s["method"], s["mean_accuracy"], s["categories"], s["pairs"], s["no_map"]]
            for s in summary
        ],
    )
    seen = [n for n in names if any(n in per for per in table.values())]
    cats = markdown_table(
        ["category", *methods],
        [[n, *(table[m].get(n, "–") for m in methods)] for n in seen],
    )
    atomic_write_text(out / "summary.md", f"Pointing game\n\n{means}\nPer category\n\n{cats}")
    return summary
