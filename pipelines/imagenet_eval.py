"""Deletion/insertion on natural images (ImageNet protocol of the iGOS++ and AOP papers).

Writes OUT/per_image.csv (one row per image and method), OUT/summary.csv and
OUT/summary.md (the papers' table: deletion, insertion, over-all = insertion - deletion per
method), OUT/curves.csv and OUT/curves.png (mean curves) and OUT/timings.csv (seconds per
image; the only output that differs between runs). Per-image results are kept under
OUT/results/, so a killed run resumes. Under torchrun, batches are dealt to ranks and rank 0
writes the same files as one process would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import nan
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import nn

from medxai.atomic import atomic_write_text
from medxai.data.imagefolder import ImageRecord
from medxai.explain.base import Explainer, no_map_message
from medxai.explain.perturb import blurred_baseline
from medxai.metrics.causal import deletion_insertion
from medxai.report.figures import save_png
from pipelines.eval_common import Progress, evaluate_methods, markdown_table, mean, write_csv
from pipelines.explain_images import resolve_targets

ROW_FIELDS = ("image", "label", "target", "method", "deletion_auc", "insertion_auc", "overall",
              "ranking", "note")  # fmt: skip
SUMMARY_FIELDS = ("method", "images", "deletion_auc", "insertion_auc", "overall", "ranking",
                  "no_map")  # fmt: skip
Loader = Callable[[Path], torch.Tensor]  # image file -> model input (C, S, S)


@dataclass(frozen=True)
class EvalSettings:
    """How maps are made and scored; `ranking` "mask" ranks cells of a resolution grid."""

    methods: tuple[str, ...]
    target: str = "predicted"  # see pipelines.explain_images.resolve_targets
    resolution: int = 28
    ranking: str = "mask"
    batch_size: int = 8
    seed: int = 0
    target_layer: str | None = None


def _score_batch(model, explainer, settings, batch, method, *, images, targets, baseline):
    maps = explainer(model, images, targets)
    scores = deletion_insertion(
        model, images, targets, maps, ranking=settings.ranking,
        resolution=settings.resolution, baseline=baseline,
    )  # fmt: skip
    seconds = explainer.stats["seconds"] / len(batch)
    why = explainer.no_map  # an image without a map gets NaN AUCs and its reason
    return [
        {
            "image": r.name,
            "label": "" if r.label is None else r.label,
            "target": int(targets[k]),
            "method": method,
            "deletion_auc": nan if why[k] else float(scores.deletion[k]),
            "insertion_auc": nan if why[k] else float(scores.insertion[k]),
            "overall": nan if why[k] else float(scores.overall[k]),
            "ranking": scores.ranking,
            "note": no_map_message(method, why[k]) if why[k] else "",
            "seconds": seconds,
            "deletion_curve": scores.deletion_curve[k].tolist(),
            "insertion_curve": scores.insertion_curve[k].tolist(),
            "fractions": scores.fractions.tolist(),
        }  # fmt: skip
        for k, r in enumerate(batch)
    ]


def evaluate_deletion_insertion(
    model: nn.Module,
    records: Sequence[ImageRecord],
    loader: Loader,
    settings: EvalSettings,
    out: Path,
    device: torch.device,
    progress: Progress | None = None,
) -> list[dict]:
    """Score every method on every record; returns the summary rows (on rank 0; [] elsewhere)."""
    model = model.to(device).eval()

    def compute(batch: list[ImageRecord], method: str, explainer: Explainer, cache: dict):
        if not cache:
            images = torch.stack([loader(r.path) for r in batch]).to(device)
            targets = resolve_targets(model, images, batch, settings.target)
            cache.update(images=images, targets=targets, baseline=blurred_baseline(images))
        return _score_batch(model, explainer, settings, batch, method, **cache)

    rows = evaluate_methods(records, lambda r: r.name, settings, out, compute, progress)
    if rows is None:
        return []
    order = {m: i for i, m in enumerate(settings.methods)}
    rows.sort(key=lambda r: (r["image"], order[r["method"]]))
    return write_outputs(out, rows, settings.methods)


def write_outputs(out: Path, rows: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """per_image.csv, summary.csv/.md, curves.csv/.png and timings.csv from the sorted rows."""
    write_csv(out / "per_image.csv", ROW_FIELDS, rows)
    summary, curves = [], []
    for method in methods:
        everyone = [r for r in rows if r["method"] == method]
        mine = [r for r in everyone if not r.get("note")]  # images it found a map for
        if not mine:
            continue
        summary.append({
            "method": method, "images": len(mine),
            **{k: mean([r[k] for r in mine]) for k in SUMMARY_FIELDS[2:5]},
            "ranking": mine[0]["ranking"], "no_map": len(everyone) - len(mine),
        })  # fmt: skip
        fractions = mine[0]["fractions"]
        for j, x in enumerate(fractions):
            curves.append({
                "method": method, "fraction": x,
                "deletion": mean([r["deletion_curve"][j] for r in mine]),
                "insertion": mean([r["insertion_curve"][j] for r in mine]),
            })  # fmt: skip
    write_csv(out / "summary.csv", SUMMARY_FIELDS, summary)
    table = markdown_table(
        ["method", "deletion ↓", "insertion ↑", "over-all ↑", "images", "no map"],
        [[s["method"], s["deletion_auc"], s["insertion_auc"], s["overall"], s["images"],
          s["no_map"]] for s in summary],
    )  # fmt: skip
    ranking = summary[0]["ranking"] if summary else ""
    atomic_write_text(out / "summary.md", f"Deletion/insertion AUC ({ranking} ranking)\n\n{table}")
    write_csv(out / "curves.csv", ("method", "fraction", "deletion", "insertion"), curves)
    timings = [
        {"method": m, "seconds_per_image": mean([r["seconds"] for r in rows if r["method"] == m])}
        for m in methods
    ]
    write_csv(out / "timings.csv", ("method", "seconds_per_image"), timings)
    plot_curves(out / "curves.png", curves, ranking)
    return summary


def plot_curves(path: Path, curves: Sequence[dict], ranking: str) -> None:
    """Mean deletion and insertion curves per method, side by side."""
    fig = Figure(figsize=(9, 3.6), dpi=100)
    axes = fig.subplots(1, 2)
    for method in dict.fromkeys(c["method"] for c in curves):
        mine = [c for c in curves if c["method"] == method]
        for ax, key in zip(axes, ("deletion", "insertion"), strict=True):
            ax.plot([c["fraction"] for c in mine], [c[key] for c in mine], label=method)
    for ax, key in zip(axes, ("deletion", "insertion"), strict=True):
        ax.set(title=f"{key} ({ranking})", xlabel="fraction of image", ylabel="p(target)")
        ax.set_ylim(0, 1)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
