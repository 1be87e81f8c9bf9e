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
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from data_cleaning.clean import detection_image
from data_cleaning.detect import DetectorSpec
from medxai.explain.base import GRADIENT_PASS, Explainer
from medxai.explain.registry import budget_parameter, build_explainer
from medxai.metrics.causal import curve_steps
from medxai.models.kinds import model_kind
from medxai.models.zoo import build_model
from medxai.report.record import CostEstimate, ExplainPlan, StageCost
from pipelines.audit.config import AuditConfig
from pipelines.audit.context import Run
from pipelines.audit.data import Data
from pipelines.audit.saliency import RANKING
from pipelines.audit.sanity import FILMS as SANITY_FILMS
from pipelines.audit.sanity import MIN_FILMS as MIN_SANITY
from pipelines.audit.subject import FORWARD_ONLY_DEFAULT, load_user
from pipelines.audit.transplant import DONORS

TIMED_BATCH = 32  # images in the timed forward pass: the chunk the stages run at
REGION_VARIANTS = 6  # per film and kind: image, removed, regions alone, regions removed, control ×2
STYLE_ARMS = 4  # two traits (tone, frame), two arms each


def estimate(run: Run, data: Data) -> CostEstimate:
    """Times the model and the detector, counts each stage's work, prices it; with a time
    budget, cuts the saliency and sanity sizes to fit (`fit_budget`)."""
    c = run.config
    module, size, channels, methods = _model(run, data)
    forward = forward_seconds(module, channels, size, run.device)
    detect = detect_seconds(run, data)
    plan, explainer = configured_plan(c), lambda p, m: _explainer(run, m, p)
    work = Work(
        n_train=len(data.records.get(data.train_split, [])), n_test=len(data.test_images),
        n_classes=len(data.classes), size=size,
        steps=curve_steps(RANKING, c.explain.resolution, size),
        methods=dict.fromkeys(methods, 0.0),
    )  # fmt: skip
    stages = stage_costs(c, priced(work, plan, explainer), forward, plan, detect)
    uncut = sum(s.seconds for s in stages)
    if c.budget_minutes is None or uncut <= 60 * c.budget_minutes:
        return CostEstimate(stages, forward, detect, methods, plan, c.budget_minutes)
    plan = fit_budget(c, work, forward, detect, explainer)
    stages = stage_costs(c, priced(work, plan, explainer), forward, plan, detect)
    return CostEstimate(stages, forward, detect, methods, plan, c.budget_minutes, uncut)


def configured_plan(c: AuditConfig) -> ExplainPlan:
    """The saliency and sanity sizes as configured, before any budget cut."""
    return ExplainPlan(c.explain.n_explain, SANITY_FILMS)


def priced(
    work: Work, plan: ExplainPlan, explainer: Callable[[ExplainPlan, str], Explainer]
) -> Work:
    """The work with each method's forward equivalents under `plan`."""
    fe = {m: explainer(plan, m).forward_equivalents() for m in work.methods}
    return replace(work, methods=fe)


def fit_budget(
    c: AuditConfig, work: Work, forward: float, detect: float,
    explainer: Callable[[ExplainPlan, str], Explainer],
) -> ExplainPlan:  # fmt: skip
    """The saliency and sanity sizes cut, in this order, until the estimate fits
    `c.budget_minutes`: each method's budget parameter (RISE masks, optimiser iterations, IG
    steps, SmoothGrad samples) scaled by the share of the flexible stages' time that fits,
    down to its floor; one film explained per class; the sanity films, down to MIN_SANITY.
    Training, evaluation, the shortcut tests and cleaning are never cut: the verdict rests
    on them. What still does not fit is said in the plan."""
    budget = 60 * c.budget_minutes
    plan = configured_plan(c)

    def seconds(p: ExplainPlan) -> dict[str, float]:
        stages = stage_costs(c, priced(work, p, explainer), forward, p, detect)
        return {s.stage: s.seconds for s in stages}

    now = seconds(plan)
    flexible = now.get("explain", 0) + now.get("sanity", 0)
    share = max(budget - (sum(now.values()) - flexible), 0) / max(flexible, 1e-9)
    params, cuts = {}, []
    for method in work.methods:
        found = budget_parameter(method)
        if found is None:
            continue
        name, floor = found
        value = _budget_value(explainer(plan, method), name)
        cut = max(floor, int(value * share))
        if cut < value:
            params[method] = {name: cut}
            cuts.append(f"{method} {name} {value} → {cut}")
    plan = replace(plan, method_params=params)
    if sum(seconds(plan).values()) > budget and plan.n_explain > 1:
        cuts.append(f"films explained per class {plan.n_explain} → 1")
        plan = replace(plan, n_explain=1)
    now = seconds(plan)
    if sum(now.values()) > budget and now.get("sanity"):
        over = sum(now.values()) - budget
        films = max(MIN_SANITY, int(SANITY_FILMS * (1 - over / now["sanity"])))
        if films < SANITY_FILMS:
            cuts.append(f"sanity films {SANITY_FILMS} → {films} (a wider interval)")
            plan = replace(plan, sanity_films=films)
    left = sum(seconds(plan).values())
    if left > budget:
        cuts.append(
            f"still {left / 60:.1f} min at these sizes: training, cleaning and the shortcut "
            "tests, which the verdict rests on, are not cut"
        )
    return replace(plan, cuts=cuts)


@dataclass(frozen=True)
class Work:
    """What the stages will process: films, classes, the model's input side, the steps of
    each deletion/insertion curve, each method's forward equivalents per film."""

    n_train: int
    n_test: int
    n_classes: int
    size: int
    steps: int
    methods: dict[str, float]


def stage_costs(
    c: AuditConfig, work: Work, forward: float, plan: ExplainPlan, detect: float
) -> list[StageCost]:
    """Seconds per stage: forward equivalents × `forward` (seconds per image) and
    detections × `detect` (seconds per film)."""
    n_train, n_test, per_method = work.n_train, work.n_test, work.methods
    n_all, explained = n_train + n_test, plan.n_explain * work.n_classes
    causal = 2 * work.steps + 2  # the deletion and the insertion curve, and both ends
    kinds = 3 + (1 if c.data.regions else 0)  # text, marker, border (+ the user's)
    fit = c.train.epochs * n_train * GRADIENT_PASS
    epochs = f"{c.train.epochs} epochs × {n_train} films"
    stages = [StageCost("train_baseline", fit * forward, epochs)] if c.model is None else []
    stages += [
        StageCost("evaluate_baseline", n_test * forward, f"{n_test} test films"),
        StageCost(
            "explain",
            explained * sum(fe + causal for fe in per_method.values()) * forward,
            f"{explained} films × {len(per_method)} methods, with deletion/insertion",
        ),
    ]
    if c.model is None or not model_kind(c.model.kind).no_sanity:
        films = plan.sanity_films
        sanity = films * 2 * sum(per_method.values()) * forward
        stages.append(StageCost("sanity", sanity, f"{films} films × {len(per_method)} methods × 2"))
    passes = n_test * (kinds * REGION_VARIANTS + 2 * DONORS + STYLE_ARMS)
    stages += [
        StageCost(
            "shortcut", passes * forward + n_test * detect,
            f"{n_test} detections, {passes} model passes",
        ),
        StageCost(
            "clean", (n_train + n_all) * detect,
            f"{n_train} training films detected (the test films' boxes are the shortcut "
            f"stage's), then up to {n_all} checked again",
        ),
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


def _budget_value(explainer: Explainer, name: str) -> int:
    """The explainer's budget parameter (an AOP method's is its optimiser's)."""
    return int(getattr(explainer, name, None) or getattr(explainer.optimizer, name))


def _explainer(run: Run, method: str, plan: ExplainPlan) -> Explainer:
    c = run.config
    return build_explainer(method, c.explain.resolution, 8, c.seed, **plan.params(method))


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
    """Seconds of text detection on one test film (the second of two runs: the first warms
    the detector's models; the detector is the one the shortcut stage will use)."""
    clean = run.config.clean
    detector = DetectorSpec(clean.detector, clean.text_threshold, run.gpu, clean.max_side).build()
    pixels = detection_image(data.root / data.test_images[0].relative)
    detector.detect(pixels)
    start = time.perf_counter()
    detector.detect(pixels)
    return time.perf_counter() - start
