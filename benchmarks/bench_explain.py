"""Benchmark the perturbation explainers: seconds per image, images through the model and
forward-equivalents per explained image, peak memory, deletion/insertion AUC.

    python benchmarks/bench_explain.py                                  # toy + small CNN, CPU
    python benchmarks/bench_explain.py --model covidnet-s --checkpoint RUN/model.pt --root DIR
    python benchmarks/bench_explain.py --profile --authors              # + time shares, + the
                                                                        #   authors' count
    python benchmarks/bench_explain.py --device cuda --model resnet50 --images 16

Two regimes: overhead-bound (`toy`, `smallcnn`: the model is cheap, everything around it
shows) and model-bound (`covidnet-s` from a checkpoint, `resnet50` random-init: the model
is the cost). Forward-equivalents count a forward as 1 and a forward with its backward as 3.
Deletion/insertion use the blur baseline and mask ranking (28x28 cells, 15 per step), as the
iGOS++ code. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.autograd import DeviceType

from medxai.explain import get_explainer, method_parameters
from medxai.explain.toy import SquareEvidenceNet, box_mask, checkerboard, square_images
from medxai.metrics.causal import deletion_insertion

BOX = (64, 64, 160, 160)  # (x0, y0, x1, y1)
TERMS = {"igos": 1, "igos++": 4, "sigcam": 1}  # data terms of each objective
AUTHORS_STEPS = 20  # integration steps of the authors' runs the issue compares with


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


def phantom_images(root: Path, n: int, prep) -> torch.Tensor:
    """The first n test images of a COVIDx-layout root, classes taken in turn."""
    from medxai.data.covidx import load_covidx
    from pipelines.explain_images import read_batch

    records = load_covidx(root, ["test.txt"])["test.txt"]
    by_class: dict[str, list] = {}
    for r in records:
        by_class.setdefault(r.label, []).append(r)
    turns = [r for group in zip(*by_class.values(), strict=False) for r in group]
    paths = [r.path for r in turns[:n]]
    return read_batch(paths, prep)[0]


def build(args: argparse.Namespace, name: str, device: torch.device):
    """(model, images, targets, evidence region or None, note)."""
    torch.manual_seed(0)
    n = args.images
    if name in ("toy", "smallcnn"):
        toy = name == "toy"
        model = SquareEvidenceNet(size=224, box=BOX, pool=16) if toy else train_small_cnn()
        images = square_images(n, size=224, box=BOX)
        return model, images, torch.ones(n, dtype=torch.long), box_mask(224, BOX), "known answer"
    if name == "covidnet-s":
        from medxai.models.checkpoint import load_checkpoint

        if args.checkpoint is None or args.root is None:
            raise SystemExit("covidnet-s needs --checkpoint RUN/model.pt and --root DIR")
        model, spec = load_checkpoint(args.checkpoint, "cpu")
        prep = replace(spec.preprocessing, image_size=args.size)
        images = phantom_images(args.root, n, prep)
        return model, images, None, None, f"trained checkpoint, {args.size} px"
    from torchvision.models import resnet50

    if args.root is not None:
        from medxai.data.transforms import Preprocessing

        images = phantom_images(args.root, n, Preprocessing(args.size, 3))
    else:
        gen = torch.Generator().manual_seed(0)
        images = torch.randn(n, 3, args.size, args.size, generator=gen)
    return resnet50(weights=None), images, None, None, "random-init weights (none ship)"


_LIBC = ctypes.CDLL(None)


class PeakMemory:
    """Peak memory of a call: CUDA's allocator peak, or sampled process RSS above the start."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self, start: int) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss() - start)

    def __enter__(self) -> PeakMemory:
        if self.device.type != "cuda" and hasattr(_LIBC, "malloc_trim"):
            _LIBC.malloc_trim(0)  # hand freed memory back, so RSS starts from what is in use
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, args=(self._rss(),), daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()

    def __str__(self) -> str:
        return f"{self.peak / 2**20:.0f}"


def forward_equivalents(stats: dict[str, float]) -> float:
    """Per explained image. Code before the forward-only line search (which did not count
    them) took a gradient through every image it sent to the model."""
    if "forward_equivalents_per_image" in stats:
        return stats["forward_equivalents_per_image"]
    return 3 * stats["model_images_per_image"]


def authors_count(stats: dict[str, float], terms: int, steps: int) -> tuple[float, float]:
    """Images and forward-equivalents per image of the authors' iGOS++ code.

    Per iteration their code takes the integrated gradient (terms x steps images with a
    backward), then its line search recomputes L(M) and tries alpha = 1000, 200, ... one at
    a time, each a forward-only loss evaluation of terms x steps images, until one passes.
    `stats` is a run of that schedule (restart at alpha0, one candidate a round), whose
    candidate evaluations per iteration c give images = it * T*S * (2 + c) and
    forward-equivalents = it * T*S * (3 + 1 + c).
    """
    it, c = stats["iterations"], stats["candidates_per_iteration"]
    return it * terms * steps * (2 + c), it * terms * steps * (4 + c)


def explain_once(args, method, params, model, images, targets, device):
    if args.steps is not None:
        params = {"steps": args.steps, **params}
    if args.gradient_steps is not None:
        params = {"gradient_steps": args.gradient_steps, **params}
    if args.plain_model and "fast_copy" in method_parameters(method):
        params = {"fast_copy": False, **params}
    explainer = get_explainer(
        method, iterations=args.iterations, batch_size=args.batch_size, seed=args.seed, **params
    )
    with PeakMemory(device) as mem:
        start, cpu = time.perf_counter(), time.process_time()
        maps = explainer(model, images, targets)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / images.shape[0]
        cpu = (time.process_time() - cpu) / images.shape[0]
    return explainer, maps, (seconds, cpu), mem


# The `torch.profiler.record_function` labels of medxai.explain.perturb: "blend" is mask
# upsampling and blending (and the blend's share of the gradient), "sums" the per-image
# segment sums, "evaluate" the objective's own indexing, "line search" the search's
# bookkeeping around the evaluations, "model copy" making and checking
# `perturb.inference_copy`.
SECTIONS = (
    "forward",
    "backward",
    "blend",
    "noise",
    "regulariser",
    "line search",
    "sums",
    "evaluate",
    "model copy",
)
PROFILE_COLUMNS = {
    "forward": ["forward"],
    "backward": ["backward"],
    "upsample+blend": ["blend"],
    "noise": ["noise"],
    "regulariser": ["regulariser"],
    "line search": ["line search"],
    "sums+indexing": ["sums", "evaluate"],
    "model copy": ["model copy"],
    "other": ["other"],
}


def _enclosing(labels: list) -> list[int | None]:
    """Index of each label's innermost enclosing label (labels sorted by start, nested)."""
    parents: list[int | None] = []
    stack: list[int] = []
    for j, e in enumerate(labels):
        while stack and labels[stack[-1]].time_range.end <= e.time_range.start:
            stack.pop()
        parents.append(stack[-1] if stack else None)
        stack.append(j)
    return parents


def _kernel_seconds(events, labels: list, parents: list[int | None]) -> dict[str, float]:
    """GPU kernel seconds per section: each kernel goes to the innermost label around its
    launch, on any thread (the autograd engine runs a GPU backward on a thread of its own)."""
    starts = [e.time_range.start for e in labels]
    seconds = dict.fromkeys(SECTIONS, 0.0)
    for e in events:
        us = sum(k.duration for k in e.kernels)
        if not us:
            continue
        j = bisect.bisect_right(starts, e.time_range.start) - 1
        while j is not None and j >= 0 and labels[j].time_range.end < e.time_range.start:
            j = parents[j]
        if j is not None and j >= 0:
            seconds[labels[j].name] += us / 1e6
    return seconds


def section_seconds(prof: torch.profiler.profile, device: torch.device) -> dict[str, float]:
    """Seconds per section, exclusive of the sections nested in it.

    On a CPU a label's wall time less its nested labels'; on a GPU the time of the kernels
    launched within it (`_kernel_seconds`). The inclusive totals of `key_averages()` count
    each nested section twice, and its self times leave out every child operator.
    """
    events = prof.events()
    labels = [e for e in events if e.name in SECTIONS and e.device_type == DeviceType.CPU]
    labels.sort(key=lambda e: (e.time_range.start, -e.time_range.end))
    parents = _enclosing(labels)
    if device.type == "cuda":
        return _kernel_seconds(events, labels, parents)
    seconds = dict.fromkeys(SECTIONS, 0.0)
    for e, parent in zip(labels, parents, strict=True):
        spent = e.time_range.elapsed_us() / 1e6
        seconds[e.name] += spent
        if parent is not None:
            seconds[labels[parent].name] -= spent
    return seconds


def time_shares(seconds: dict[str, float], total: float) -> dict[str, float]:
    """Share of `total` seconds per section; the rest is "other"."""
    out = {k: v / total for k, v in seconds.items()}
    out["other"] = max(0.0, 1.0 - sum(out.values()))
    return out


def backward_cost(seconds: dict[str, float], stats: dict[str, float]) -> float:
    """Measured cost of a forward with its backward, in forwards (the count assumes 3)."""
    images = stats["model_images_per_image"]
    with_backward = (stats["forward_equivalents_per_image"] - images) / 2
    forward = seconds.get("forward", 0.0) / max(images, 1)
    backward = seconds.get("backward", 0.0) / max(with_backward, 1)
    return 1 + backward / max(forward, 1e-12)


def profile_line(label: str, shares: dict[str, float]) -> str:
    cells = [sum(shares.get(k, 0.0) for k in keys) for keys in PROFILE_COLUMNS.values()]
    return f"{label:14s} " + " ".join(f"{100 * v:14.1f}" for v in cells)


def prepare(args: argparse.Namespace, name: str, device: torch.device):
    """The model on `device` (eval mode), images, targets, evidence region or None; prints
    the run's header."""
    model, images, targets, region, note = build(args, name, device)
    model = model.to(device).eval()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    images = images.to(device)
    with torch.no_grad():
        logits = model(images)
    targets = logits.argmax(1) if targets is None else targets.to(device)
    p = torch.softmax(logits, 1).gather(1, targets[:, None]).mean()
    print(
        f"\n{name} ({note}) on {device}, {images.shape[0]} images of {images.shape[-1]} px, "
        f"{args.iterations} iterations x {args.steps or 'default'} steps (gradient: "
        f"{args.gradient_steps or 'default'}), mask {args.resolution}, batch_size "
        f"{args.batch_size}, threads {torch.get_num_threads()}, model copy "
        f"{'off' if args.plain_model else 'on'}; mean p(target) {p:.3f}"
    )
    print(
        f"{'method':14s} {'s/image':>8s} {'cpu s/img':>9s} {'img/image':>10s} "
        f"{'fwd-eq/image':>13s} {'evals/iter':>10s} {'peak MiB':>9s} "
        f"{'deletion':>9s} {'insertion':>9s}" + ("  top5%-in-box" if region is not None else "")
    )
    return model, images, targets, region


def measure(args, method, model, images, targets, device):
    """One explainer run: (explainer, maps, (s, cpu s) per image, memory, profile or None)."""
    params = {"resolution": args.resolution}
    if not args.profile:
        return (*explain_once(args, method, params, model, images, targets, device), None)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        explainer, maps, seconds, mem = explain_once(
            args, method, params, model, images, targets, device
        )
    spent = section_seconds(prof, device)
    shares = time_shares(spent, explainer.stats["seconds"])
    return explainer, maps, seconds, mem, (method, shares, backward_cost(spent, explainer.stats))


def result_line(method, explainer, maps, seconds, mem, scores, region, device) -> str:
    s = explainer.stats
    line = (
        f"{method:14s} {seconds[0]:8.2f} {seconds[1]:9.2f} {s['model_images_per_image']:10.0f} "
        f"{forward_equivalents(s):13.0f} {s.get('loss_evaluations_per_iteration', 0):10.2f} "
        f"{mem!s:>9s} {scores.deletion.mean():9.4f} {scores.insertion.mean():9.4f}"
    )
    if region is not None:
        flat = maps.flatten(1)
        top = flat.topk(int(0.05 * flat.shape[1]), 1).indices
        line += f"  {region.flatten().to(device)[top].float().mean():.2f}"
    return line


def print_authors(args, model, images, targets, device) -> None:
    """The authors' iGOS++ count, derived from a run of their line-search schedule."""
    schedule = {"resolution": args.resolution, "growth": 1e9, "retry_candidates": 1}
    schedule |= {"steps": AUTHORS_STEPS, "gradient_steps": AUTHORS_STEPS}
    explainer, *_ = explain_once(args, "igos++", schedule, model, images, targets, device)
    imgs, fe = authors_count(explainer.stats, TERMS["igos++"], AUTHORS_STEPS)
    print(
        f"authors' iGOS++ ({AUTHORS_STEPS} steps; their line search: L(M) recomputed, alpha "
        f"from 1000 every iteration, one forward-only candidate at a time): {imgs:.0f} images "
        f"({explainer.stats['candidates_per_iteration']:.2f} candidates/iteration), "
        f"{fe:.0f} forward-equivalents per image"
    )


def run_model(args: argparse.Namespace, name: str, device: torch.device) -> None:
    model, images, targets, region = prepare(args, name, device)
    profiles = []
    for method in args.methods:
        explainer, maps, seconds, mem, prof = measure(args, method, model, images, targets, device)
        if prof is not None:
            profiles.append(prof)
        scores = deletion_insertion(
            model, images, targets, maps, ranking="mask", resolution=28,
            fast_copy=not args.plain_model,
        )  # fmt: skip
        print(
            result_line(method, explainer, maps, seconds, mem, scores, region, device), flush=True
        )
    if args.authors:
        print_authors(args, model, images, targets, device)
    if profiles:
        head = " ".join(f"{c:>14s}" for c in PROFILE_COLUMNS)
        print(f"time shares (%):\n{'method':14s} {head}")
        for method, shares, ratio in profiles:
            print(profile_line(method, shares) + f"   (forward+backward = {ratio:.1f} forwards)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--model", nargs="+", default=None, choices=["toy", "smallcnn", "covidnet-s", "resnet50"]
    )
    parser.add_argument("--methods", nargs="+", default=["igos++", "igos", "sigcam"])
    parser.add_argument("--checkpoint", type=Path, help="medxai checkpoint for covidnet-s")
    parser.add_argument("--root", type=Path, help="COVIDx-layout root whose test images to use")
    parser.add_argument("--size", type=int, default=224, help="input size (covidnet-s, resnet50)")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--steps", type=int, default=None, help="default: the method's own")
    parser.add_argument("--gradient-steps", type=int, default=None, help="default: the method's")
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels-last", action="store_true", help="convert the model itself")
    parser.add_argument(
        "--plain-model", action="store_true", help="no folded channels-last model copy"
    )
    parser.add_argument("--profile", action="store_true", help="print time shares per part")
    parser.add_argument("--authors", action="store_true", help="derive the authors' count")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.model = args.model or (["resnet50"] if cuda else ["toy", "smallcnn"])
    args.images = args.images or (16 if cuda else 2)
    args.batch_size = args.batch_size or (128 if cuda else 80)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.model:
        run_model(args, name, torch.device(args.device))


if __name__ == "__main__":
    main()
