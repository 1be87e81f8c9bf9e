"""iGOS++ on real networks, side by side with the authors' schedule: seconds per image,
forward-equivalents, deletion and insertion with 95% bootstrap intervals over images.

    python benchmarks/bench_igos_real.py --network lite0 --images 8
    python benchmarks/bench_igos_real.py --network textline --images 8
    python benchmarks/bench_igos_real.py --network covidnet-s --checkpoint RUN/model.pt --images 8
    python benchmarks/bench_igos_real.py --network covidnet-s --checkpoint RUN/model.pt \
        --root PHANTOM --tag _phantom      # the phantom's held-out test films instead

Networks: `lite0`, EfficientNet-Lite0 with its shipped ImageNet weights, on the real
photographs of `bench_faithfulness.photographs()` (224 px, the evaluate command's
preprocessing); `textline`, PaddleOCR's text-direction classifier (a MobileNetV3) with the
weights rapidocr ships, converted by onnx2torch, on printed lines of scikit-image's scanned
`page` (48 x 192); `covidnet-s`, a medxai checkpoint (e.g. trained on the phantom), on views of
the two real CR films that pydicom-data ships (a chest and a leg film: whole, centre, upper
and lower half of each). Target: the predicted class. Both methods: 28x28 masks, the same
blurred baseline (k 51, sigma 50), one seed; the authors' run is `igos_reference`
(20 iterations x 20 steps, their line search, their noise), medxai's is `igos++` with the
settings printed. The methods take the images in turn (every method on image 1, then on
image 2, ...), so a load that comes and goes on the machine slows them alike. One metric
scores both: `medxai.metrics.causal.deletion_insertion` at pixel ranking (and at mask
ranking, 28x28 cells, as a second view). A map is counted flat when its values span at most
`FLAT_SPAN`. Writes benchmarks/results/igos_real_<network>.md
and .json. Not a test: it prints figures. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from bench_faithfulness import MODEL as LITE0
from bench_faithfulness import Figure, figure, model_inputs, photographs
from igos_reference import AuthorsIGOSPlusPlus

from medxai.data.imageio import write_png
from medxai.explain import get_explainer
from medxai.explain.base import flat_maps
from medxai.explain.perturb import blurred_baseline
from medxai.metrics.causal import deletion_insertion
from medxai.models import zoo

RESULTS = Path(__file__).resolve().parent / "results"
FILMS = ("RG1_UNCR.dcm", "RG3_UNCR.dcm")


@dataclass(frozen=True)
class Run:
    """One method on every image of one network."""

    method: str
    settings: str
    seconds_per_image: float
    cpu_seconds_per_image: float
    model_images_per_image: float
    forward_equivalents_per_image: float
    flat_maps: int
    no_map: int
    deletion_pixel: Figure
    insertion_pixel: Figure
    deletion_mask: Figure
    insertion_mask: Figure
    per_image: dict[str, list[float]]


def radiograph_views() -> dict[str, np.ndarray]:
    """Eight views of the two real films, uint8 gray (whole, centre 70%, upper, lower half)."""
    from data_cleaning.burnin import load_film

    views = {}
    for name in FILMS:
        film = (load_film(name) * 255).round().astype(np.uint8)
        h, w = film.shape
        stem = name.split("_")[0].lower()
        views[f"{stem}_whole"] = film
        views[f"{stem}_centre"] = film[int(0.15 * h) : int(0.85 * h), int(0.15 * w) : int(0.85 * w)]
        views[f"{stem}_upper"] = film[: h // 2]
        views[f"{stem}_lower"] = film[h // 2 :]
    return views


def phantom_films(root: Path, n: int) -> list[Path]:
    """The first n films of ROOT/test.txt, the classes taken in turn."""
    from medxai.data.covidx import load_covidx

    by_class: dict[str, list[Path]] = {}
    for record in load_covidx(root, ["test.txt"])["test.txt"]:
        by_class.setdefault(record.label, []).append(record.path)
    return [p for group in zip(*by_class.values(), strict=False) for p in group][:n]


def covidnet_inputs(checkpoint: Path, root: Path | None, n: int):
    """The checkpoint with the real film views, or with the phantom's test films (--root)."""
    from medxai.models.checkpoint import load_checkpoint
    from pipelines.explain_images import read_batch

    model, spec = load_checkpoint(checkpoint, "cpu")
    note = f"{checkpoint} ({spec.preprocessing.image_size} px)"
    if root is not None:
        paths = phantom_films(root, n)
        images = read_batch(paths, spec.preprocessing)[0]
        return model, images, [p.stem for p in paths], f"{note}, phantom test films of {root}"
    views = dict(list(radiograph_views().items())[:n])
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, view in views.items():
            paths.append(Path(tmp) / f"{name}.png")
            write_png(paths[-1], view)
        images = read_batch(paths, spec.preprocessing)[0]
    return model, images, list(views), f"{note}, real CR film views"


def lite0_inputs(n: int):
    from medxai.models.lite import efficientnet_lite0_weights

    photos = dict(list(photographs().items())[:n])
    model = zoo.build_model(LITE0, 1000, 3, efficientnet_lite0_weights())
    return model, model_inputs(photos), list(photos), "shipped ImageNet weights (224 px)"


def textline_classifier() -> torch.nn.Module:
    """PaddleOCR's text-direction classifier (a MobileNetV3, 0° or 180°) with the weights that
    rapidocr ships, as a torch module: its ONNX graph keeps the weights in Constant nodes,
    which become initializers for `onnx2torch`, and its final softmax is dropped (logits
    out, as medxai's methods expect)."""
    import onnx
    import rapidocr
    from onnx import numpy_helper
    from onnx2torch import convert

    path = Path(rapidocr.__file__).parent / "models" / "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
    proto = onnx.load(path)
    graph = proto.graph
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            value = numpy_helper.to_array(node.attribute[0].t)
            graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        else:
            nodes.append(node)
    softmax = next(n for n in nodes if n.op_type == "Softmax")
    after = set(softmax.output)
    kept = []
    for node in nodes:
        if node is softmax or after.intersection(node.input):
            after.update(node.output)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    graph.output[0].name = softmax.input[0]
    return convert(proto)


TEXT_LINES = ((40, 60), (60, 80), (80, 100), (100, 120))  # rows of scikit-image's page()


def textline_inputs(n: int):
    """Halves of four printed lines of scikit-image's scanned `page`, PP-OCR's input:
    48 x 192, (x / 255 - 0.5) / 0.5, the gray repeated to 3 channels."""
    import cv2
    from skimage import data as skdata

    page = skdata.page()
    crops, names = [], []
    for k, (y0, y1) in enumerate(TEXT_LINES):
        for side, part in (("left", slice(0, 192)), ("right", slice(192, 384))):
            line = cv2.resize(page[y0:y1, part], (192, 48), interpolation=cv2.INTER_LINEAR)
            crops.append(np.repeat(((line / 255.0 - 0.5) / 0.5)[None], 3, 0))
            names.append(f"line{k + 1}_{side}")
    images = torch.from_numpy(np.stack(crops[:n])).float()
    return textline_classifier(), images, names[:n], "rapidocr's shipped weights (48 x 192)"


def scores(model, images, targets, maps, baseline) -> dict[str, np.ndarray]:
    out = {}
    for ranking in ("pixel", "mask"):
        s = deletion_insertion(
            model, images, targets, maps, ranking=ranking, baseline=baseline, batch_size=16
        )
        out[f"deletion_{ranking}"] = s.deletion.numpy()
        out[f"insertion_{ranking}"] = s.insertion.numpy()
    return out


@dataclass
class Tally:
    """One method's maps and costs, summed image after image."""

    method: str
    settings: str
    maps: list[torch.Tensor]
    wall: float = 0.0
    cpu: float = 0.0
    images: float = 0.0
    forward_equivalents: float = 0.0
    no_map: int = 0


def authors_method(model, args):
    """A call (image, baseline, target) -> (map, model images, forward-equivalents)."""
    ref = AuthorsIGOSPlusPlus(
        model, iterations=args.authors_iterations, steps=args.authors_steps, seed=args.seed
    )

    def explain(image, baseline, target):
        before = ref.images, ref.forward_equivalents
        mask = ref(image, baseline, target)
        up = F.interpolate(mask, size=image.shape[-2:], mode="bilinear", align_corners=True)
        return 1 - up, ref.images - before[0], ref.forward_equivalents - before[1], 0

    settings = f"{args.authors_iterations} iterations x {args.authors_steps} steps"
    return Tally("authors' iGOS++", settings, []), explain


def medxai_method(model, args, params: dict):
    """The same call for medxai's `igos++` with `params`."""
    explainer = get_explainer("igos++", batch_size=args.batch_size, seed=args.seed, **params)

    def explain(image, baseline, target):
        saliency = explainer(model, image, target)
        s = explainer.stats
        missing = sum(r is not None for r in explainer.no_map)
        return saliency, s["model_images"], s["forward_equivalents_per_image"], missing

    settings = ", ".join(f"{k} {v}" for k, v in params.items()) or "defaults"
    return Tally("medxai igos++", f"{settings}, batch_size {args.batch_size}", []), explain


def interleaved(methods, images, targets, baseline) -> None:
    """Every method on image 1, then every method on image 2, ...: a load that comes and
    goes on the machine falls on all methods alike, so their time ratio holds."""
    for i in range(images.shape[0]):
        one = slice(i, i + 1)
        for tally, explain in methods:
            wall, cpu = time.perf_counter(), time.process_time()
            saliency, model_images, fe, missing = explain(images[one], baseline[one], targets[one])
            tally.wall += time.perf_counter() - wall
            tally.cpu += time.process_time() - cpu
            tally.images += model_images
            tally.forward_equivalents += fe
            tally.no_map += missing
            tally.maps.append(saliency.detach())
        print(f"image {i + 1} of {images.shape[0]} done", flush=True)


def summarise(tally: Tally, model, images, targets, baseline) -> Run:
    maps = torch.cat(tally.maps)
    measured = scores(model, images, targets, maps, baseline)
    n = maps.shape[0]
    return Run(
        method=tally.method,
        settings=tally.settings,
        seconds_per_image=tally.wall / n,
        cpu_seconds_per_image=tally.cpu / n,
        model_images_per_image=tally.images / n,
        forward_equivalents_per_image=tally.forward_equivalents / n,
        flat_maps=int(flat_maps(maps).sum()),
        no_map=tally.no_map,
        **{k: figure(v) for k, v in measured.items()},
        per_image={k: v.tolist() for k, v in measured.items()},
    )


def table(runs: list[Run]) -> str:
    head = (
        "| method | settings | s/image (CPU s) | images/image | fwd-eq/image | flat | "
        "deletion ↓ pixel | insertion ↑ pixel | deletion ↓ mask | insertion ↑ mask |"
    )
    lines = [head, "|" + " --- |" * 10]
    for r in runs:
        lines.append(
            f"| {r.method} | {r.settings} | {r.seconds_per_image:.1f} "
            f"({r.cpu_seconds_per_image:.1f}) | {r.model_images_per_image:,.0f} | "
            f"{r.forward_equivalents_per_image:,.0f} | {r.flat_maps} | {r.deletion_pixel} | "
            f"{r.insertion_pixel} | {r.deletion_mask} | {r.insertion_mask} |"
        )
    return "\n".join(lines)


def differences(ours: Run, theirs: Run) -> str:
    """Paired per-image differences, medxai minus the authors', with their intervals."""
    parts = []
    for key in ("deletion_pixel", "insertion_pixel", "deletion_mask", "insertion_mask"):
        diff = np.array(ours.per_image[key]) - np.array(theirs.per_image[key])
        parts.append(f"{key.replace('_', ' ')} {figure(diff)}")
    speed = theirs.seconds_per_image / ours.seconds_per_image
    fe = theirs.forward_equivalents_per_image / ours.forward_equivalents_per_image
    return (
        f"medxai − authors' (paired, per image): {'; '.join(parts)}. Speed: {speed:.1f}× less "
        f"wall time, {fe:.1f}× fewer forward-equivalents."
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("lite0", "textline", "covidnet-s"), default="lite0")
    parser.add_argument("--checkpoint", type=Path, help="covidnet-s: a medxai model.pt")
    parser.add_argument("--root", type=Path, help="covidnet-s: explain this phantom's test "
                        "films instead of the real film views")  # fmt: skip
    parser.add_argument("--tag", default="", help="suffix of the results files")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument(
        "--medxai",
        default='{"iterations": 20};{}',
        help="igos++ settings, JSON objects separated by ';' (one run each)",
    )
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--authors-iterations", type=int, default=20)
    parser.add_argument("--authors-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.network == "lite0":
        model, images, names, note = lite0_inputs(args.images)
    elif args.network == "textline":
        model, images, names, note = textline_inputs(args.images)
    elif args.checkpoint is None:
        raise SystemExit("--network covidnet-s needs --checkpoint RUN/model.pt")
    else:
        model, images, names, note = covidnet_inputs(args.checkpoint, args.root, args.images)
    model = model.eval()
    with torch.no_grad():
        targets = model(images).argmax(1)
    baseline = blurred_baseline(images)
    methods = [authors_method(model, args)]
    methods += [medxai_method(model, args, json.loads(spec)) for spec in args.medxai.split(";")]
    interleaved(methods, images, targets, baseline)
    theirs, *ours = (summarise(t, model, images, targets, baseline) for t, _ in methods)
    head = (f"{args.network}: {note}; {len(names)} images ({', '.join(names)}); predicted "
            f"classes {targets.tolist()}; CPU, {torch.get_num_threads()} threads; 95% "
            f"bootstrap intervals over images")  # fmt: skip
    paired = "\n\n".join(f"{run.settings}: {differences(run, theirs)}" for run in ours)
    text = f"{head}\n\n{table([theirs, *ours])}\n\n{paired}\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"igos_real_{args.network}{args.tag}"
    (args.out / f"{stem}.md").write_text(text)
    payload = {"header": head, "images": names, "runs": [asdict(r) for r in (theirs, *ours)]}
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
