"""What an audit will cost, before it spends it.

After the data stage, two things are timed on this machine: one forward pass of the model at
its input size (per image, in a batch; a forward with its backward counts three, the unit the
explainers' runner counts in) and the text detector on one test film. Each stage's work is
counted from the settings and the data — epochs × training films, explained films × each
method's own estimate (`Explainer.forward_equivalents`), the region tests' and transplants'
variants per test film, detections per film — and priced with the two timings. Decoding,
inpainting and bootstrap resampling are not counted, so stages light on model passes read
low; training stops early at its patience, so the training estimate is an upper bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from data_cleaning.clean import detection_image
from data_cleaning.detect import make_detector
from medxai.explain.base import GRADIENT_PASS
from medxai.explain.registry import build_explainer
from medxai.models.kinds import model_kind
from medxai.models.zoo import build_model
from medxai.report.record import CostEstimate, StageCost
from pipelines.audit.config import AuditConfig
from pipelines.audit.context import Run
from pipelines.audit.data import Data
from pipelines.audit.sanity import FILMS
from pipelines.audit.subject import FORWARD_ONLY_DEFAULT, load_user
from pipelines.audit.transplant import DONORS

TIMED_BATCH = 32  # images in the timed forward pass: the chunk the stages run at
REGION_VARIANTS = 6  # per film and kind: image, removed, regions alone, regions removed, control ×2
STYLE_ARMS = 4  # two traits (tone, frame), two arms each


def estimate(run: Run, data: Data) -> CostEstimate:
    """Times the model and the detector, counts each stage's work, prices it."""
    module, size, channels, methods = _model(run, data)
    forward = forward_seconds(module, channels, size, run.device)
    work = Work(
        n_train=len(data.records[data.train_split]), n_test=len(data.test_images),
        explained=run.config.explain.n_explain * len(data.classes), size=size,
        methods={m: _explainer(run, m).forward_equivalents() for m in methods},
    )  # fmt: skip
    detect = detect_seconds(run, data)
    return CostEstimate(stage_costs(run.config, work, forward, detect), forward, detect, methods)


@dataclass(frozen=True)
class Work:
    """What the stages will process: films, explained films, each method's forward
    equivalents per film, the model's input side."""

    n_train: int
    n_test: int
    explained: int
    size: int
    methods: dict[str, float]


def stage_costs(c: AuditConfig, work: Work, forward: float, detect: float) -> list[StageCost]:
    """Seconds per stage: forward equivalents × `forward` (seconds per image) and
    detections × `detect` (seconds per film)."""
    n_train, n_test, per_method = work.n_train, work.n_test, work.methods
    n_all = n_train + n_test
    causal = 2 * work.size + 2  # deletion and insertion, a row of pixels per step, both ends
    kinds = 3 + (1 if c.data.regions else 0)  # text, marker, border (+ the user's)
    fit = c.train.epochs * n_train * GRADIENT_PASS
    epochs = f"{c.train.epochs} epochs × {n_train} films"
    stages = [StageCost("train_baseline", fit * forward, epochs)] if c.model is None else []
    stages += [
        StageCost("evaluate_baseline", n_test * forward, f"{n_test} test films"),
        StageCost(
            "explain",
            work.explained * sum(fe + causal for fe in per_method.values()) * forward,
            f"{work.explained} films × {len(per_method)} methods, with deletion/insertion",
        ),
    ]
    if c.model is None or not model_kind(c.model.kind).no_sanity:
        sanity = FILMS * 2 * sum(per_method.values()) * forward
        stages.append(StageCost("sanity", sanity, f"{FILMS} films × {len(per_method)} methods × 2"))
    passes = n_test * (kinds * REGION_VARIANTS + 2 * DONORS + STYLE_ARMS)
    stages += [
        StageCost(
            "shortcut", passes * forward + n_test * detect,
            f"{n_test} detections, {passes} model passes",
        ),
        StageCost("clean", 2 * n_all * detect, f"{n_all} films detected, then checked again"),
    ]  # fmt: skip
    if c.retrain:
        negative = n_test * (REGION_VARIANTS + 2 * DONORS + 1)
        stages += [
            StageCost("train_cleaned", fit * forward, epochs),
            StageCost("negative_control", negative * forward, f"{negative} model passes"),
        ]
    return stages


def _model(run: Run, data: Data) -> tuple[nn.Module, int, int, list[str]]:
    """The model to time (the architecture the audit trains, untrained, or the user's), its
    input side and channels, and the methods it will be explained with."""
    c = run.config
    if c.model is None:
        module = build_model(c.train.model, len(data.classes), c.train.channels)
        return module, c.train.image_size, c.train.channels, list(c.explain.methods)
    loaded = load_user(run, data.classes)
    kept, _ = loaded.supported(c.explain.methods)
    prep = loaded.spec.preprocessing
    return loaded.module, prep.image_size, prep.channels, kept or list(FORWARD_ONLY_DEFAULT)


def _explainer(run: Run, method: str):
    c = run.config
    return build_explainer(method, c.explain.resolution, 8, c.seed)


def forward_seconds(module: nn.Module, channels: int, size: int, device: torch.device) -> float:
    """Seconds per image of one forward pass in a batch: the fastest of three timed passes
    after a warm-up at the same shape (a backend builds its kernels for a shape once)."""
    module = module.to(device).eval()
    batch = torch.rand(TIMED_BATCH, channels, size, size, device=device)
    times = []
    with torch.no_grad():
        module(batch)
        for _ in range(3):
            start = time.perf_counter()
            module(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return min(times) / TIMED_BATCH


def detect_seconds(run: Run, data: Data) -> float:
    """Seconds of text detection on one test film (the second of two runs: the first loads
    the detector's models)."""
    clean = run.config.clean
    detector = make_detector(clean.detector, clean.text_threshold, run.gpu, clean.max_side)
    pixels = detection_image(data.root / data.test_images[0].relative)
    detector.detect(pixels)
    start = time.perf_counter()
    detector.detect(pixels)
    return time.perf_counter() - start
