"""Stage 8 of the audit: the audit.json dict and the pictures the HTML report shows."""

from __future__ import annotations

import io
import os
import platform
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medxai import __version__
from medxai.atomic import atomic_write_bytes
from medxai.data.imageio import read_image
from medxai.report import AuditArtifacts, CleaningExample, GalleryItem
from medxai.report.figures import to_display
from pipelines.explain_images import read_batch, slug

if TYPE_CHECKING:
    from pipelines.covidx_audit import Audit

PER_IMAGE_KEYS = ("files", "labels", "predictions")  # kept in the stage files, not audit.json
N_CLEANING_EXAMPLES = 3


def save_array(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    atomic_write_bytes(path, buffer.getvalue())


def _metrics(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in PER_IMAGE_KEYS}


def environment(device) -> dict:
    import cv2
    import monai
    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "monai": monai.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "device": str(device),
        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "command": " ".join(sys.argv),
    }


def assemble(
    audit: Audit, root: Path, tests: list[str], classes: list[str], data: dict, trained: dict,
    base_eval: dict, clean_eval: dict, comparison: dict, shortcut: dict, cleaning: dict,
) -> dict:  # fmt: skip
    """The audit.json dict (baseline, cleaned, shortcut, timings, and the rest; see README)."""
    c = audit.config
    phantom = None
    if c.dataset == "phantom":
        phantom = {
            "shortcut_strength": c.shortcut_strength, "n_per_class": c.phantom_n_per_class,
            "size": c.phantom_size, "seed": c.seed,
        }  # fmt: skip
    primary = tests[0]
    balanced = next((s for s in tests if "balanced" in s), None)
    shortcut = dict(shortcut)
    change = comparison[balanced or primary]["macro_f1"]
    lo, hi = change.get("delta_ci", [float("nan")] * 2)
    shortcut["summary"] += (
        f" After cleaning and retraining, macro-F1 on {balanced or primary} went from "
        f"{change['before']:.2f} to {change['after']:.2f} ({change['delta']:+.2f}, "
        f"95% CI {lo:+.2f} to {hi:+.2f})."
    )
    return {
        "schema": "medxai-audit-1",
        "medxai_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": {
            "name": c.dataset,
            "root": str(root),
            "train_split": c.train_split,
            "test_splits": tests,
            "primary_test_split": primary,
            "balanced_split": balanced,
            "classes": classes,
            "phantom": phantom,
        },
        "config": asdict(c) | {"detector_used": audit.detector, "device": str(audit.device)},
        "data": data,
        "baseline": _metrics(base_eval[primary]),
        "cleaned": _metrics(clean_eval[primary]),
        "evaluations": {
            "baseline": {s: _metrics(base_eval[s]) for s in tests},
            "cleaned": {s: _metrics(clean_eval[s]) for s in tests},
        },
        "comparison": comparison,
        "shortcut": shortcut,
        "cleaning": {k: v for k, v in cleaning.items() if k != "cleaned"}
        | {"mean_area_share": shortcut["evidence"]["mean_text_area_share"]},
        "training": {
            "baseline_best_epoch": trained["baseline"]["best_epoch"],
            "cleaned_best_epoch": trained["cleaned"]["best_epoch"],
        },
        "environment": environment(audit.device),
    }


def build_artifacts(
    audit: Audit, root: Path, cleaned: Path, explained: dict, shortcut: dict, classes: list[str]
) -> AuditArtifacts:
    """Gallery rows, mean maps, text frequency and before/after pictures for the report."""
    prep = audit.train_config().preprocessing()
    rows = {row["relative"]: row for row in shortcut["images"]}
    explain_dir, shortcut_dir = audit.out / "explain", audit.out / "shortcut"
    gallery = []
    for image, entry in zip(explained["images"], shortcut["explained"], strict=True):
        row = rows[image["relative"]]
        batch, _ = read_batch([root / image["relative"]], prep)
        maps, curves = {}, {}
        for method in audit.config.methods:
            name = f"{image['name']}__{slug(method)}"
            maps[method] = np.load(explain_dir / "maps" / f"{name}.npy")
            with np.load(explain_dir / "curves" / f"{name}.npz") as stored:
                curves[method] = {
                    "fractions": stored["fractions"], "deletion": stored["deletion"],
                    "insertion": stored["insertion"],
                    "deletion_auc": entry["methods"][method]["deletion_auc"],
                    "insertion_auc": entry["methods"][method]["insertion_auc"],
                }  # fmt: skip
        gallery.append(
            GalleryItem(
                file=image["file"],
                label=image["label"],
                predicted=entry["predicted"],
                source=image["source"],
                image=to_display(batch[0].numpy()),
                boxes=prep.map_boxes(row["boxes"], tuple(row["shape"])),
                maps=maps,
                curves=curves,
            )  # fmt: skip
        )
    mean_maps = {m: np.load(shortcut_dir / f"mean_map__{m}.npy") for m in audit.config.methods}
    return AuditArtifacts(
        gallery=gallery,
        mean_maps=mean_maps,
        text_frequency=np.load(shortcut_dir / "text_frequency.npy"),
        cleaning_examples=cleaning_examples(root, cleaned, shortcut["images"]),
    )


def _gray(path: Path) -> np.ndarray:
    image = read_image(path)
    return image.mean(axis=2) if image.ndim == 3 else image


def cleaning_examples(root: Path, cleaned: Path, rows: list[dict]) -> list[CleaningExample]:
    """A few test images with text: one per source first, most boxes first."""
    candidates = sorted((r for r in rows if r["n_boxes"]), key=lambda r: -len(r["boxes"]))
    first: dict = {}
    for row in candidates:
        first.setdefault(row["source"], row)
    picked = list(first.values())[:N_CLEANING_EXAMPLES]
    picked += [r for r in candidates if r not in picked][: N_CLEANING_EXAMPLES - len(picked)]
    return [
        CleaningExample(
            file=row["file"],
            before=_gray(root / row["relative"]),
            after=_gray(cleaned / row["relative"]),
            boxes=[tuple(b) for b in row["boxes"]],
        )  # fmt: skip
        for row in picked
        if (cleaned / row["relative"]).is_file()
    ]
