"""The residual check read only around the inpainted boxes, against the whole film read again.

The fused detector's residual check runs DB only on windows around the inpainted boxes
(`data_cleaning.detect.recheck_windows`): elsewhere the cleaned film is the original. Does it
still find what a cleaning left behind? On the real radiographs with burned-in text of
`benchmarks/bench_detection.py` (tuning and held-out splits, films of 512, 1024 and 2000
px), every box the detector finds is inpainted only in its left half, so each film keeps
the right half of its text; both checks are then run on the cleaned film:

- remnant found: the share of the remaining text pixels (the right halves) that the
  check's boxes cover — what a residual check is for;
- boxes: how many each returns; seconds per film of each; the share of films whose windows
  covered too much of the film, so the windowed check read it whole.

The windows' reach (RECHECK_REACH, and each box's own width and height) and the share past
which the film is read whole (RECHECK_MOST) were chosen on the tuning split and the first
48 held-out scenes (docs/benchmarks.md says how); held-out scenes 48-71 (`--start 48`) were
drawn after, and are the figures to quote.

    .venv/bin/python benchmarks/bench_recheck.py [--splits tuning heldout] [--per-height 8]
        [--start 0] [--tag TAG]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from data_cleaning.burnin import scenes
from data_cleaning.detect import make_detector
from data_cleaning.inpaint import boxes_to_mask, inpaint

RESULTS = Path(__file__).parent / "results"


def left_halves(boxes) -> list[tuple[int, int, int, int]]:
    return [(x0, y0, (x0 + x1) // 2, y1) for x0, y0, x1, y1 in boxes]


def covered(boxes, truth: np.ndarray) -> int:
    return int(((boxes_to_mask(truth.shape, boxes, 0) > 0) & truth).sum())


def measure(detector, split: str, heights: list[int], per_height: int, start: int = 0) -> dict:
    totals = dict(remnant=0, whole=0, windowed=0, whole_boxes=0, windowed_boxes=0,
                  whole_s=0.0, windowed_s=0.0, read_whole=0, films=0)  # fmt: skip
    for scene in scenes(split, heights, per_height, start):
        rgb = np.repeat(scene.image[..., None], 3, axis=2)
        boxes = detector.detect(rgb)
        if not boxes:
            continue
        half = left_halves(boxes)
        cleaned = inpaint(scene.image, boxes_to_mask(scene.image.shape, half, 0))
        remnant = (scene.labels > 0) & (boxes_to_mask(scene.image.shape, half, 0) == 0)
        cleaned_rgb = np.repeat(cleaned[..., None], 3, axis=2)
        began = time.perf_counter()
        whole = [b for b, _ in detector.detect_labeled(cleaned_rgb, near=half)]
        middle = time.perf_counter()
        windowed = detector.recheck(cleaned_rgb, half)
        end = time.perf_counter()
        read_whole = detector.recheck_plan(cleaned_rgb, half)[2] is None
        totals["remnant"] += int(remnant.sum())
        totals["whole"] += covered(whole, remnant)
        totals["windowed"] += covered(windowed, remnant)
        totals["whole_boxes"] += len(whole)
        totals["windowed_boxes"] += len(windowed)
        totals["whole_s"] += middle - began
        totals["windowed_s"] += end - middle
        totals["read_whole"] += int(read_whole)
        totals["films"] += 1
    n = max(totals["films"], 1)
    return {
        "split": split if not start else f"{split} from scene {start}",
        "films": totals["films"],
        "remnant found, whole film": totals["whole"] / max(totals["remnant"], 1),
        "remnant found, windows": totals["windowed"] / max(totals["remnant"], 1),
        "boxes/film, whole film": totals["whole_boxes"] / n,
        "boxes/film, windows": totals["windowed_boxes"] / n,
        "s/film, whole film": totals["whole_s"] / n,
        "s/film, windows": totals["windowed_s"] / n,
        "films read whole by the windowed check": totals["read_whole"] / n,
    }


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="*", default=["tuning", "heldout"])
    parser.add_argument("--heights", type=int, nargs="*", default=[512, 1024, 2000])
    parser.add_argument("--per-height", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first scene of each height")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    detector = make_detector("fused")
    detector.detect(np.zeros((64, 64, 3), np.uint8))
    rows = [measure(detector, s, args.heights, args.per_height, args.start) for s in args.splits]
    text = (
        f"# The residual check on windows against the whole film ({time.strftime('%Y-%m-%d')})"
        f"\n\nFused detector, {args.threads} thread(s); films of {args.heights} px, "
        f"{args.per_height} per height and split; each found box inpainted in its left half "
        "only.\n\n" + table(rows) + "\n"
    )
    print(text)
    stem = RESULTS / f"recheck{args.tag}"
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
