"""Pictures people look at: radiographs, saliency heatmaps, text boxes, before/after.

Every figure is a `matplotlib.figure.Figure` built directly (no pyplot state) and saved as
PNG through `save_png`, which writes atomically and without a timestamp, so the same audit
gives byte-identical figures.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from medxai.atomic import atomic_write_bytes
from medxai.boxes import Box
from medxai.report.artifacts import CleaningExample, Curves, GalleryItem
from medxai.report.format import num
from medxai.report.record import MethodSanity

PANEL_INCHES = 2.3
BOX_COLOUR = "#00e5ff"
METHOD_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def to_display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) model input, any scale → (H, W) gray in [0, 1] (min-max)."""
    gray = image.mean(axis=0) if image.ndim == 3 else image
    lo, hi = float(gray.min()), float(gray.max())
    return (gray - lo) / (hi - lo) if hi > lo else np.zeros_like(gray, dtype=np.float32)


def heatmap_overlay(
    image: np.ndarray, saliency: np.ndarray, alpha: float = 0.45, cmap: str = "jet"
) -> np.ndarray:
    """RGB uint8 (H, W, 3): the radiograph in gray with the saliency colour-mapped on top.

    Transparency follows saliency, so unimportant regions keep the plain radiograph.
    """
    gray = to_display(image)[..., None].repeat(3, axis=2)
    colour = colormaps[cmap](np.clip(saliency, 0.0, 1.0))[..., :3]
    weight = alpha * np.clip(saliency, 0.0, 1.0)[..., None] ** 0.5
    return np.round(255 * ((1 - weight) * gray + weight * colour)).astype(np.uint8)


def method_colour(index: int) -> str:
    """One colour per saliency method, the same in every chart of the report."""
    return METHOD_COLOURS[index % len(METHOD_COLOURS)]


def new_figure(columns: int, rows: int = 1, height: float = PANEL_INCHES) -> Figure:
    return Figure(figsize=(PANEL_INCHES * columns, height * rows), dpi=100, layout="constrained")


def save_png(fig: Figure, path: Path) -> Path:
    """Render `fig` to PNG in memory, then write it atomically (no Software/date metadata)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _show(ax: Axes, picture: np.ndarray, title: str, **imshow) -> None:
    ax.imshow(picture, interpolation="nearest", **imshow)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_boxes(ax: Axes, boxes: Sequence[Box], style: str = "-") -> None:
    """Outline (x0, y0, x1, y1) boxes (x1/y1 exclusive) on an imshow axis."""
    for x0, y0, x1, y1 in boxes:
        ax.add_patch(
            Rectangle(
                (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0,
                fill=False, edgecolor=BOX_COLOUR, linewidth=1.2, linestyle=style,
            )
        )  # fmt: skip


def _curves(ax: Axes, curves: dict[str, Curves]) -> None:
    """Deletion (solid) and insertion (dashed) score curves, AUCs in the legend."""
    for k, (method, curve) in enumerate(curves.items()):
        colour = method_colour(k)
        for kind, y, auc, style in (
            ("deletion", curve.deletion, curve.deletion_auc, "-"),
            ("insertion", curve.insertion, curve.insertion_auc, "--"),
        ):
            y = np.asarray(y, dtype=float)
            label = f"{method} {kind[:3]}. AUC {num(auc)}"
            ax.plot(np.linspace(0, 1, y.size), y, style, color=colour, linewidth=1.2, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("fraction of pixels deleted / inserted", fontsize=7)
    ax.set_ylabel("class score", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="best", frameon=False)


def _no_map_panel(ax: Axes, method: str, message: str) -> None:
    ax.set_axis_off()
    ax.set_title(f"{method}: no map", fontsize=9)
    reason = message.split(": ", 1)[-1]
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(reason, 24)), ha="center", va="center",
            fontsize=7, transform=ax.transAxes)  # fmt: skip


def gallery_figure(item: GalleryItem, path: Path) -> Path:
    """Radiograph with text boxes, one heatmap per method, then the causal curves."""
    methods = list(item.maps)
    fig = new_figure(len(methods) + 1 + bool(item.curves))
    axes = fig.subplots(1, len(methods) + 1 + bool(item.curves), squeeze=False)[0]
    _show(axes[0], to_display(item.image), f"input: {len(item.boxes)} text box(es)", cmap="gray")
    _draw_boxes(axes[0], item.boxes)
    for ax, method in zip(axes[1:], methods, strict=False):
        if method in item.no_map:  # no explanation: say so instead of showing a flat map
            _no_map_panel(ax, method, item.no_map[method])
            continue
        if method in item.insensitive:  # failed the sanity check: no colour, not evidence
            _show(ax, item.maps[method], f"{method} (not model-sensitive)", cmap="gray")
        else:
            _show(ax, heatmap_overlay(item.image, item.maps[method]), method)
        _draw_boxes(ax, item.boxes, style=":")
    if item.curves:
        _curves(axes[-1], item.curves)
    return save_png(fig, path)


def mean_maps_figure(
    mean_maps: dict[str, np.ndarray], text_frequency: np.ndarray | None, path: Path
) -> Path:
    """Mean saliency per method beside the text-frequency map, each scaled from 0 to its max."""
    panels = [(f"mean {m}", a, "inferno") for m, a in mean_maps.items()]
    if text_frequency is not None:
        panels.append(("text frequency", text_frequency, "Blues"))
    fig = new_figure(len(panels), height=PANEL_INCHES + 0.8)
    for ax, (title, array, cmap) in zip(
        fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        _show(
            ax,
            np.asarray(array, dtype=float),
            title,
            cmap=cmap,
            vmin=0.0,
            vmax=max(float(np.max(array)), 1e-9),
        )
        fig.colorbar(ax.images[0], ax=ax, location="bottom", shrink=0.8)
    return save_png(fig, path)


def cleaning_figure(example: CleaningExample, path: Path) -> Path:
    """Before (detected boxes outlined), after inpainting, and where the pixels changed."""
    fig = new_figure(3)
    before, after, change = fig.subplots(1, 3)
    _show(
        before,
        example.before,
        f"before: {len(example.boxes)} text box(es)",
        cmap="gray",
        vmin=0,
        vmax=1,
    )
    _draw_boxes(before, example.boxes)
    _show(after, example.after, "after inpainting", cmap="gray", vmin=0, vmax=1)
    _draw_boxes(after, example.boxes, style=":")
    diff = np.abs(np.asarray(example.after, float) - np.asarray(example.before, float))
    _show(change, diff, "|after − before|", cmap="magma", vmin=0, vmax=max(float(diff.max()), 1e-9))
    return save_png(fig, path)


def sanity_figure(check: MethodSanity, maps: tuple[np.ndarray, np.ndarray], path: Path) -> Path:
    """Similarity to the trained model's maps against randomisation depth; a map of the
    trained model beside the same map on the randomised model."""
    fig = new_figure(3, height=2.6)
    curve, trained, random = fig.subplots(1, 3)
    depths = [d.depth for d in check.depths]
    curve.plot(depths, [d.spearman_abs for d in check.depths], "o-", label="Spearman |map|")
    curve.plot(depths, [d.ssim for d in check.depths], "s--", label="SSIM")
    curve.axhline(check.threshold, color="k", linewidth=0.8, linestyle=":")
    curve.set_xlabel("layers randomised (from the output)", fontsize=7)
    curve.set_ylim(-0.2, 1.05)
    curve.set_title(f"{check.method}: similarity", fontsize=9)
    curve.tick_params(labelsize=7)
    curve.legend(fontsize=6, frameon=False)
    _show(trained, maps[0][0], "trained model", cmap="magma")
    _show(random, maps[1][0], f"{check.verdict_depth} layers random", cmap="magma")
    return save_png(fig, path)
