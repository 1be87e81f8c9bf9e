"""Benchmark the perturbation explainers: seconds per image, images through the model per
explained image, loss evaluations per iteration and peak memory.

    python benchmarks/bench_explain.py                       # small CNN + toy model, 224x224, CPU
    python benchmarks/bench_explain.py --device cuda --model resnet50 --images 16

Runs igos and igos++ at mask resolutions 28 and 224, and sigcam, at 20 iterations x 20
integration steps. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from torch import nn

from medxai.explain import get_explainer
from medxai.explain.toy import SquareEvidenceNet, box_mask, checkerboard, square_images

# (label, method, parameters); "nowarm" restarts the line search at alpha0 = 1000 every
# iteration with one candidate per round, to show what the warm start saves.
CONFIGS = [
    ("igos", "igos", {"resolution": 28}),
    ("igos", "igos", {"resolution": 224}),
    ("igos++", "igos++", {"resolution": 28}),
    ("igos++", "igos++", {"resolution": 224}),
    ("sigcam", "sigcam", {"resolution": 28}),
    ("igos++ nowarm", "igos++", {"resolution": 28, "growth": 1e9, "retry_candidates": 1}),
]


class SmallCNN(nn.Module):
    """Four strided conv blocks, global pooling, a linear head (~40 M MACs at 224x224)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        chans = [3, 16, 32, 64, 64]
        blocks = []
        for cin, cout in zip(chans, chans[1:], strict=False):
            blocks += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(chans[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def checker_batch(n: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images, half with a checkerboard patch somewhere (label 1), half without (0)."""
    x = torch.randn(n, 3, size, size, generator=gen) * 0.5
    labels = torch.arange(n) % 2
    side = size // 3
    board = checkerboard(size)
    for i in range(1, n, 2):
        y0, x0 = (int(v) for v in torch.randint(0, size - side, (2,), generator=gen))
        x[i, :, y0 : y0 + side, x0 : x0 + side] += board[y0 : y0 + side, x0 : x0 + side]
    return x, labels


def train_small_cnn(steps: int = 150, size: int = 64) -> SmallCNN:
    """SmallCNN trained briefly at 64 px to tell checkerboard patches from noise.

    A random network's output hardly depends on the mask, so its line search only compares
    rounding noise; a trained one has the gradients the figures are meant to reflect.
    """
    torch.manual_seed(0)
    model = SmallCNN(classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = checker_batch(32, size, gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def build(name: str, device: torch.device) -> tuple[nn.Module, torch.Tensor | None]:
    """Model and, for the models with a known evidence square, that region."""
    torch.manual_seed(0)
    box = (64, 160, 64, 160)
    if name == "toy":
        return SquareEvidenceNet(size=224, box=box, pool=16).to(device), box_mask(224, box)
    if name == "smallcnn":
        return train_small_cnn().to(device), box_mask(224, box)
    from torchvision.models import resnet50

    return resnet50(weights=None).to(device), None


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**20:8.0f} MiB (CUDA peak)"
    return (
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:8.0f} MiB (process RSS peak)"
    )


def run(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    for model_name in args.model:
        model, region = build(model_name, device)
        model.eval()
        if model_name in ("toy", "smallcnn"):
            images = square_images(args.images, size=224, box=(64, 160, 64, 160)).to(device)
            targets = torch.ones(args.images, dtype=torch.long, device=device)
            with torch.no_grad():
                p = torch.softmax(model(images), 1)[:, 1].mean()
            print(f"\n{model_name}: mean p(target) on the benchmark images {p:.3f}")
        else:
            images = torch.randn(
                args.images,
                3,
                224,
                224,
                device=device,
                generator=torch.Generator(device).manual_seed(0),
            )
            with torch.no_grad():
                targets = model(images).argmax(1)
        print(
            f"\n{model_name} on {device}, {args.images} images of 224x224, "
            f"{args.iterations} iterations x {args.steps} steps, batch_size {args.batch_size}, "
            f"threads {torch.get_num_threads()}"
        )
        print(
            f"{'method':14s} {'res':>4s} {'s/image':>8s} {'model img/image':>16s} "
            f"{'loss evals/iter':>16s} {'passes':>7s}  peak memory"
        )
        for label, method, params in CONFIGS:
            explainer = get_explainer(
                method,
                iterations=args.iterations,
                steps=args.steps,
                batch_size=args.batch_size,
                **params,
            )
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            maps = explainer(model, images, targets)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = (time.perf_counter() - start) / args.images
            s = explainer.stats
            line = (
                f"{label:14s} {params['resolution']:4d} {seconds:8.2f} "
                f"{s['model_images_per_image']:16.0f} "
                f"{s['loss_evaluations_per_iteration']:16.2f} {s['passes']:7.0f}  "
                f"{peak_memory(device)}"
            )
            if region is not None:
                flat = maps.flatten(1)
                top = flat.topk(int(0.05 * flat.shape[1]), 1).indices
                line += f"  top5%-in-box {region.flatten().to(device)[top].float().mean():.2f}"
            print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", nargs="+", default=None, choices=["smallcnn", "toy", "resnet50"])
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.model = args.model or (["resnet50"] if cuda else ["smallcnn", "toy"])
    args.images = args.images or (16 if cuda else 2)
    args.batch_size = args.batch_size or (128 if cuda else 80)
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
