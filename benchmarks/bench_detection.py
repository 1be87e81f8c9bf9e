"""Text detection on real radiographs with procedurally burned-in text.

Films: the real CR radiographs shipped with pydicom-data (RG1 chest, RG3 leg with its own
"R" marker), cropped and resized to each film height; text burned in by
data_cleaning.burnin (lone markers and words, 1.5-10% of film height, white and dark,
near edges and over the body). Seeds and fonts of the tuning and held-out splits are
disjoint: tune on `--split tuning`, report `--split heldout`.

Printed per detector: text-pixel recall (cleaning mask = boxes grown by --dilate), lone-glyph
recall (a glyph is found when the mask covers half its pixels), lone recall per glyph size,
polarity, place and film height, words found, false boxes per film (touching no text),
spill (share of the pixels more than --dilate + 2 px from any text's ink box that the mask
covers, i.e. that inpainting changes) and the same beyond a box margin of a quarter of
the text height, residual after cleaning (the detector run again on the inpainted film: boxes
per film and share of text pixels still detected) and films/s per film height.

    flock /tmp/medxai-bench.lock .venv/bin/python benchmarks/bench_detection.py --split heldout
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import cv2
import numpy as np
import torch

from data_cleaning.burnin import Scene, scenes
from data_cleaning.detect import DETECTORS, make_detector, recheck
from data_cleaning.inpaint import boxes_to_mask, inpaint

SIZE_BINS = ((0.015, 0.02), (0.02, 0.03), (0.03, 0.05), (0.05, 0.11))
FOUND_SHARE = 0.5  # an item is found when the mask covers this share of its pixels
BOX_MARGIN = 0.25  # a text box's usual margin, as a share of the text height


def _grown(box, by: int, shape) -> tuple[slice, slice]:
    x0, y0, x1, y1 = box
    return slice(max(0, y0 - by), min(shape[0], y1 + by)), slice(max(0, x0 - by), x1 + by)


def score_scene(scene: Scene, boxes, dilate: int) -> dict:
    """Per-scene counts: pixels, items found, false boxes, spill."""
    shape = scene.image.shape
    mask = boxes_to_mask(shape, boxes, dilate) > 0
    truth = scene.labels > 0
    near = np.zeros(shape, bool)
    box_margin = np.zeros(shape, bool)
    for item in scene.items:
        near[_grown(item.box, dilate + 2, shape)] = True
        height = item.box[3] - item.box[1]
        box_margin[_grown(item.box, dilate + int(BOX_MARGIN * height), shape)] = True
    false = 0
    for box in boxes:
        if not near[_grown(box, 0, shape)].any():
            false += 1
    found = []
    for k, item in enumerate(scene.items, start=1):
        pixels = scene.labels == k
        found.append((item, (mask & pixels).sum() >= FOUND_SHARE * pixels.sum()))
    return {
        "tp": int((mask & truth).sum()),
        "text": int(truth.sum()),
        "spill": int((mask & ~near).sum()),
        "away": int((~near).sum()),
        "spill_box": int((mask & ~box_margin).sum()),
        "away_box": int((~box_margin).sum()),
        "false": false,
        "found": found,
    }


def residual(scene: Scene, boxes, dilate: int, detector) -> tuple[int, int]:
    """Boxes the detector still finds on the inpainted film, and text pixels under them."""
    cleaned = inpaint(scene.image, boxes_to_mask(scene.image.shape, boxes, dilate))
    inpainted = [(x0 - dilate, y0 - dilate, x1 + dilate, y1 + dilate) for x0, y0, x1, y1 in boxes]
    again = recheck(detector, np.repeat(cleaned[..., None], 3, axis=2), inpainted)
    under = boxes_to_mask(scene.image.shape, again, 0) > 0
    return len(again), int((under & (scene.labels > 0)).sum())


def measure(detector, samples: list[Scene], dilate: int, with_residual: bool) -> dict:
    totals = defaultdict(int)
    seconds = defaultdict(float)
    films = defaultdict(int)
    hits = defaultdict(lambda: [0, 0])
    for scene in samples:
        rgb = np.repeat(scene.image[..., None], 3, axis=2)
        start = time.perf_counter()
        boxes = detector.detect(rgb)
        height = scene.image.shape[0]
        seconds[height] += time.perf_counter() - start
        films[height] += 1
        s = score_scene(scene, boxes, dilate)
        for key in ("tp", "text", "spill", "away", "spill_box", "away_box", "false"):
            totals[key] += s[key]
        for item, ok in s["found"]:
            for key in _strata(item, height):
                hits[key][0] += ok
                hits[key][1] += 1
            if not ok and item.kind == "lone":
                totals.setdefault("missed", []).append(
                    f"{item.text}@{height}px/{item.size:.3f}/{item.polarity}/{item.place}/{item.font}"
                )
        if with_residual:
            count, still = residual(scene, boxes, dilate, detector)
            totals["residual"] += count
            totals["still"] += still
    return _summary(totals, hits, seconds, films, len(samples), with_residual)


def _strata(item, height: int) -> list[str]:
    if item.kind == "word":
        return ["word"]
    keys = ["lone", f"lone {item.polarity}", f"lone {item.place}", f"lone @{height}px"]
    keys += [f"lone {lo:.1%}-{hi:.0%}" for lo, hi in SIZE_BINS if lo <= item.size < hi]
    if item.size >= 0.02:
        keys += ["lone >=2%", f"lone >=2% {item.polarity}", f"lone >=2% {item.place}"]
    return keys


def _summary(totals, hits, seconds, films, n: int, with_residual: bool) -> dict:
    row = {
        "text-px recall": totals["tp"] / max(totals["text"], 1),
        **{k: f"{a}/{b} ({a / b:.2f})" for k, (a, b) in sorted(hits.items())},
        "false boxes/film": totals["false"] / n,
        "spill": totals["spill"] / max(totals["away"], 1),
        "spill beyond box margin": totals["spill_box"] / max(totals["away_box"], 1),
    }
    if with_residual:
        row["residual boxes/film"] = totals["residual"] / n
        row["residual text px"] = totals["still"] / max(totals["text"], 1)
    for height in sorted(seconds):
        row[f"films/s @{height}px"] = films[height] / seconds[height]
    row["missed"] = totals.get("missed", [])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tuning", "heldout"), default="heldout")
    parser.add_argument("--heights", type=int, nargs="*", default=[224, 512, 1024, 2000])
    parser.add_argument("--per-height", type=int, default=8)
    parser.add_argument("--dilate", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--detectors", nargs="*", default=list(DETECTORS))
    parser.add_argument("--no-residual", action="store_true")
    parser.add_argument("--show-missed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    samples = scenes(args.split, args.heights, args.per_height)
    lone = sum(i.kind == "lone" for s in samples for i in s.items)
    print(
        f"{args.split}: {len(samples)} films ({args.per_height} per height {args.heights}), "
        f"{lone} lone glyphs, dilate {args.dilate}, {args.device}, {args.threads} threads",
        flush=True,
    )
    for name in args.detectors:
        detector = make_detector(name, gpu=args.device == "cuda")
        detector.detect(np.zeros((64, 64, 3), np.uint8))  # warm-up: first-call set-up
        row = measure(detector, samples, args.dilate, not args.no_residual)
        missed = row.pop("missed")
        print(f"\n## {name}", flush=True)
        for key, value in row.items():
            print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
        if args.show_missed:
            print("  missed lone glyphs:", ", ".join(missed) or "none", flush=True)


if __name__ == "__main__":
    main()
