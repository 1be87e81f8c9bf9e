"""Text detection and cleaning on the phantom, against its ground-truth text masks.

Prints, per detector: text-pixel recall and precision of the cleaning mask (boxes grown by
--dilate), share of text marks and of lone-letter marks found, images per second, and the
residual text after Telea inpainting: the same detector run again on the cleaned image,
its boxes as a share of the first run's, and the share of the true text pixels its boxes
cover.

    .venv/bin/python benchmarks/bench_cleaning.py --root data/phantom --n 60
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from data_cleaning.detect import (
    EASYOCR_DEFAULTS,
    CraftDetector,
    RapidDetector,
    TextDetector,
    UnionDetector,
    make_detector,
)
from data_cleaning.inpaint import boxes_to_mask, inpaint

LONE_ASPECT = 1.6  # a mark no wider than 1.6 × its height is a single glyph


def marks(truth: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """Connected text marks (letters of a word merged) and whether each is a lone glyph."""
    grown = cv2.dilate(truth.astype(np.uint8), np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(grown)
    return [
        ((labels == c) & truth, stats[c, 2] <= LONE_ASPECT * stats[c, 3]) for c in range(1, count)
    ]


def measure(detector: TextDetector, samples, dilate: int) -> dict:
    tp = fp = fn = found = total = lone_found = lone_total = boxes = residual = 0
    still = 0
    seconds = 0.0
    for image, truth in samples:
        start = time.perf_counter()
        found_boxes = detector.detect(image)
        seconds += time.perf_counter() - start
        mask = boxes_to_mask(truth.shape, found_boxes, dilate)
        covered = mask > 0
        tp += int((covered & truth).sum())
        fp += int((covered & ~truth).sum())
        fn += int((~covered & truth).sum())
        for mark, lone in marks(truth):
            hit = (covered & mark).sum() >= 0.5 * mark.sum()
            found, total = found + hit, total + 1
            lone_found, lone_total = lone_found + (hit and lone), lone_total + lone
        cleaned = inpaint(image, mask)
        again = detector.detect(cleaned)
        boxes, residual = boxes + len(found_boxes), residual + len(again)
        still += int(((boxes_to_mask(truth.shape, again, 0) > 0) & truth).sum())
    return {
        "recall": tp / max(tp + fn, 1),
        "precision": tp / max(tp + fp, 1),
        "marks": found / max(total, 1),
        "lone": f"{lone_found}/{lone_total}",
        "images/s": len(samples) / seconds,
        "residual boxes": residual / max(boxes, 1),
        "re-detected text px": still / max(tp + fn, 1),
    }


def load(root: Path, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    names = [line.split()[1] for line in (root / "test.txt").read_text().splitlines()][:n]
    samples = []
    for name in names:
        image = cv2.cvtColor(cv2.imread(str(root / "test" / name)), cv2.COLOR_BGR2RGB)
        truth = cv2.imread(str(root / "text_masks" / "test" / name), cv2.IMREAD_GRAYSCALE) > 0
        samples.append((image, truth))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/phantom"))
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--dilate", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="run only detectors whose name starts so")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gpu = args.device == "cuda"
    samples = load(args.root, args.n)
    craft = CraftDetector(gpu=gpu)
    detectors = {
        "fused (recommended default)": make_detector("fused"),
        "craft-paper": make_detector("craft-paper", gpu=gpu),
        "craft (medxai settings)": craft,
        "craft (EasyOCR defaults)": CraftDetector(EASYOCR_DEFAULTS, gpu=gpu),
        "rapidocr": RapidDetector(),
        "both (union)": UnionDetector([craft, RapidDetector()]),
    }
    print(f"{len(samples)} images from {args.root}, dilate {args.dilate} px, {args.device}, "
          f"{args.threads} threads")  # fmt: skip
    header = ("detector", "recall", "precision", "marks", "lone", "images/s", "residual boxes",
              "re-detected text px")  # fmt: skip
    print(" | ".join(header))
    for name, detector in detectors.items():
        if args.only and not name.startswith(tuple(args.only)):
            continue
        row = measure(detector, samples, args.dilate)
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        print(" | ".join([name, *cells]), flush=True)


if __name__ == "__main__":
    main()
