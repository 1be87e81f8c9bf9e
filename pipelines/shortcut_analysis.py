"""Stage 4 of the audit: how much of the model's decisions rests on burned-in text.

Text is detected on every test image (once; the cleaning stage reuses the boxes). The model
alone then answers, per image with text and for its own decision: does blurring only the
text change it more often than blurring another film's text boxes (a control of the same
kind of size and place, where this film has no text), and does the text alone over the
blurred image reproduce it more often than the blurred image alone (region-only insertion,
iGOS++ paper Fig. 12)? Those causal tests decide the verdict; the saliency maps of the
explained images add how much saliency lands on the text.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from data_cleaning.clean import detection_image
from data_cleaning.detect import TextDetector
from medxai.data.covidx import Record
from medxai.data.transforms import Preprocessing
from medxai.explain.perturb import blurred_baseline
from medxai.metrics.shortcut import (
    RelianceThresholds,
    boxes_to_masks,
    region_tests,
    saliency_share,
    text_reliance,
)
from pipelines.explain_images import read_batch, slug

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TestImage:
    """A test image, with its path relative to the dataset root (the cleaner's key)."""

    record: Record
    relative: str


def detect_text(
    images: Sequence[TestImage],
    root: Path,
    detector: TextDetector,
    journal: Path,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[Box]]:
    """Boxes per relative path; appended to `journal` per image, so a killed run resumes."""
    found: dict[str, list[Box]] = {}
    text = journal.read_text(encoding="utf-8") if journal.is_file() else ""
    if text and not text.endswith("\n"):
        journal.write_text(text + "\n", encoding="utf-8")  # end a line torn by a kill
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # the torn line
        found[entry["relative"]] = [tuple(b) for b in entry["boxes"]]
    todo = [image for image in images if image.relative not in found]
    if progress and len(found):
        progress(len(images) - len(todo))
    with open(journal, "a", encoding="utf-8") as out:
        for image in todo:
            boxes = [
                tuple(map(int, b)) for b in detector.detect(detection_image(root / image.relative))
            ]
            found[image.relative] = boxes
            out.write(json.dumps({"relative": image.relative, "boxes": boxes}) + "\n")
            out.flush()
            if progress:
                progress(1)
    return {image.relative: found[image.relative] for image in images}


def region_test_rows(
    model: nn.Module,
    images: Sequence[TestImage],
    boxes: dict[str, list[Box]],
    prep: Preprocessing,
    classes: Sequence[str],
    device: torch.device,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict], np.ndarray]:
    """Per test image: its decision and the region tests on it; and the text-frequency map."""
    rows: list[dict] = []
    frequency = np.zeros((prep.image_size, prep.image_size))
    model = model.to(device).eval()
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch, shapes = read_batch([image.record.path for image in chunk], prep)
        batch = batch.to(device)
        mapped = [
            prep.map_boxes(boxes[i.relative], shape) for i, shape in zip(chunk, shapes, strict=True)
        ]
        masks = boxes_to_masks(mapped, (prep.image_size, prep.image_size), device)
        frequency += masks.float().sum((0, 1)).cpu().numpy()
        with torch.no_grad():
            decided = model(batch).argmax(1)
        control = masks.roll(1, 0) & ~masks  # where the previous film has text, this one not
        tests = region_tests(
            model, batch, decided, masks, control=control, baseline=blurred_baseline(batch),
            batch_size=batch_size,
        )  # fmt: skip
        area = masks.flatten(1).float().mean(1)
        for k, image in enumerate(chunk):
            row = {
                "file": image.record.filename,
                "relative": image.relative,
                "label": image.record.label,
                "source": image.record.source,
                "predicted": classes[int(decided[k])],
                "shape": list(shapes[k]),
                "boxes": [list(b) for b in boxes[image.relative]],  # original pixels
                "n_boxes": len(mapped[k]),
                "text_area_share": float(area[k]),
            }
            if mapped[k]:
                row |= {
                    "original_score": float(tests.original_score[k]),
                    "baseline_score": float(tests.baseline_score[k]),
                    "baseline_prediction": classes[int(tests.baseline_prediction[k])],
                    "inserted_score": float(tests.inserted_score[k]),
                    "inserted_prediction": classes[int(tests.inserted_prediction[k])],
                    "deleted_score": float(tests.deleted_score[k]),
                    "deleted_prediction": classes[int(tests.deleted_prediction[k])],
                    "control_area_share": float(control[k].float().mean()),
                    "control_deleted_score": float(tests.control_deleted_score[k]),
                    "control_deleted_prediction": classes[int(tests.control_deleted_prediction[k])],
                }
            rows.append(row)
        if progress:
            progress(len(chunk))
    return rows, frequency / max(len(images), 1)


def _with_text(rows: Sequence[dict]) -> list[dict]:
    return [row for row in rows if row["n_boxes"]]


def _test_arrays(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    return {
        "flipped": np.array([r["deleted_prediction"] != r["predicted"] for r in rows]),
        "control_flipped": np.array(
            [r["control_deleted_prediction"] != r["predicted"] for r in rows]
        ),
        "inserted_keeps": np.array([r["inserted_prediction"] == r["predicted"] for r in rows]),
        "baseline_keeps": np.array([r["baseline_prediction"] == r["predicted"] for r in rows]),
        "deletion_drop": np.array([r["original_score"] - r["deleted_score"] for r in rows]),
    }


def breakdown(rows: Sequence[dict], key: str) -> dict[str, dict]:
    """Region-test rates per source (or class) over that group's images with text."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[str(row[key] or "-")].append(row)
    out = {}
    for name, members in sorted(groups.items()):
        text = _with_text(members)
        entry = {
            "n": len(members),
            "n_with_text": len(text),
            "text_area_share": float(np.mean([r["text_area_share"] for r in members])),
        }
        if text:
            arrays = _test_arrays(text)
            entry |= {
                "flip_rate": float(arrays["flipped"].mean()),
                "control_flip_rate": float(arrays["control_flipped"].mean()),
                "keeps_class_rate": float(arrays["inserted_keeps"].mean()),
                "baseline_keeps_class_rate": float(arrays["baseline_keeps"].mean()),
                "mean_drop": float(arrays["deletion_drop"].mean()),
            }
        out[name] = entry
    return out


def saliency_rows(
    explained: Sequence[dict],
    rows: dict[str, dict],
    maps_dir: Path,
    methods: Sequence[str],
    prep: Preprocessing,
    top_k: float,
) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """Per method: each explained image's saliency share in its text; and the mean map.

    `rows`: the region-test rows by relative path (they carry each image's boxes and shape).
    """
    shares: dict[str, dict] = {}
    mean_maps: dict[str, np.ndarray] = {}
    size = (prep.image_size, prep.image_size)
    mapped = [
        prep.map_boxes(rows[e["relative"]]["boxes"], tuple(rows[e["relative"]]["shape"]))
        for e in explained
    ]
    masks = boxes_to_masks(mapped, size)
    for method in methods:
        maps = np.stack([np.load(maps_dir / f"{e['name']}__{slug(method)}.npy") for e in explained])
        mean_maps[method] = maps.mean(0)
        share = saliency_share(torch.from_numpy(maps)[:, None], masks, top_k)
        shares[method] = {key: value.tolist() for key, value in share.items()}
    return shares, mean_maps


def summarise_saliency(shares: dict[str, dict], with_text: np.ndarray) -> dict[str, dict]:
    """Mean figures per method over the explained images that carry text."""
    out = {}
    for method, share in shares.items():
        pick = {key: np.asarray(values)[with_text] for key, values in share.items()}
        n = int(with_text.sum())
        out[method] = {"n": n} | {
            key: (float(np.nanmean(values)) if n else None) for key, values in pick.items()
        }
    return out


def verdict(
    rows: Sequence[dict], thresholds: RelianceThresholds, n_bootstrap: int, seed: int
) -> dict:
    """The region-test evidence over all test images with text, and the verdict it gives."""
    text = _with_text(rows)
    result = text_reliance(
        **_test_arrays(text), thresholds=thresholds, n_bootstrap=n_bootstrap, seed=seed
    )
    if not text:
        result["summary"] = "No burned-in text was detected on the test images: nothing to rely on."
        return result
    deletion, insertion = result["region_deletion"], result["region_insertion"]
    flips = (
        f"blurring only the text changes {deletion['flip_rate']:.0%} of its decisions on "
        f"{len(text)} test images with text ({deletion['control_flip_rate']:.0%} when another "
        f"film's text boxes are blurred instead)"
    )
    if result["relies_on_text"]:
        result["summary"] = (
            f"The model relies on burned-in text ({result['strength']}): {flips}, and the text "
            f"alone reproduces {insertion['keeps_class_rate']:.0%} of them "
            f"({insertion['baseline_keeps_class_rate']:.0%} without it)."
        )
    else:
        result["summary"] = (
            f"No evidence that the model relies on burned-in text: {flips}, and the text alone "
            f"adds {insertion['gain']:+.0%} to how often the blurred image keeps the decision."
        )
    return result
