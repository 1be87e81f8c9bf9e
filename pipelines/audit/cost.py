"""What an audit will cost, before it spends it.

After the data stage, these are timed on this machine: one forward pass of the model at its
input size (per image, in a batch; a forward with its backward counts three, the unit the
explainers' runner counts in), when the audit trains one training step and the training
augmentation, the same forward pass on the forward copy the forward-only stages run
(`subject.forward_copy`, which the I-GOS family's search uses too), the text detector and
the residual check on a few test films (and the share with text: the cleaning checks those
films again), reading one of those films from disk into the model's input (training reads
each film once, `medxai.models.training.DecodedOnce`; the cleaned films' evaluations read
every test film), making one composed film (a transplant's arm) the model's
input, and blurring one film (the region tests' baseline). Each stage's work is counted from
the settings and the data — epochs × training films, explained films × each method's own
estimate (`Explainer.forward_equivalents`), the region tests' and transplants' variants per
test film, detections per film — and priced with those timings. Inpainting (outside the
cleaning's timed rate) and bootstrap resampling are not counted, so stages light on model
passes read low; training stops early at its patience, which the estimate does not foresee.

Under torchrun the timings are rank 0's, on its share of the cores, and the dealt work is
split over the ranks (`Work.ranks`): training (DDP), the saliency maps ((method, chunk)
pairs), the sanity check (a method a rank), the shortcut stage, the cleaning and the negative
control; the evaluation and the deletion/insertion curves stay on rank 0.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
from torch import nn

from data_cleaning.clean import detection_image
from data_cleaning.detect import DetectorSpec, recheck
from medxai import distributed
from medxai.data.covidx import CovidxDataset, Record
from medxai.data.transforms import (
    Augmentation,
    Preprocessing,
    augmentation_chain,
    build_transforms,
)
from medxai.explain.base import GRADIENT_PASS, Explainer
from medxai.explain.perturb import blurred_baseline, inference_copy
from medxai.explain.registry import budget_parameter, build_explainer
from medxai.metrics.causal import MASK_PER_STEP, curve_steps
from medxai.metrics.shortcut import MIN_FILMS
from medxai.models.kinds import model_kind
from medxai.models.zoo import build_model
from medxai.report.record import CostEstimate, ExplainPlan, StageCost
from pipelines.audit.cleaning import workers as cleaning_workers
from pipelines.audit.config import AuditConfig
from pipelines.audit.context import Run
from pipelines.audit.data import Data
from pipelines.audit.inputs import Intensity, TestImage
from pipelines.audit.saliency import CHUNK as EXPLAIN_CHUNK
from pipelines.audit.saliency import RANKING
from pipelines.audit.sanity import FILMS as SANITY_FILMS
from pipelines.audit.sanity import MIN_FILMS as MIN_SANITY
from pipelines.audit.subject import FORWARD_ONLY_DEFAULT, load_user
from pipelines.audit.transplant import DONORS

COARSER_CURVES = 4  # a budget's deletion/insertion curves: this many times the cells a step
VERDICT_FLOOR = 2 * MIN_FILMS  # the fewest test films a budget may sample the verdict down to
TIMED_BATCH = 32  # images in the timed forward pass: the chunk the stages run at
SLOW_PASS = 2.0  # seconds a batch: a model this slow is timed by its first pass alone
AUGMENT_SAMPLE = 10  # training inputs the augmentation is timed on
DETECT_SAMPLE = 4  # test films the detector is timed on (and the share with text counted)
REGION_VARIANTS = 6  # per film and kind: image, removed, regions alone, regions removed, control ×2
STYLE_ARMS = 4  # two traits (tone, frame), two arms each
# A budget plans the priced stages into this share of the minutes left: they ran 0.9-1.7x
# their estimate on the measured audits (docs/audit.md), mostly over (decoding, batching,
# worker start-up are not priced), and a budget is a limit, not a target.
BUDGET_SHARE = 0.8
# A cleaning worker's start: a fresh interpreter importing torch and building its detector
# (5.1-5.3 s wall on the 2-core machine, of which 0.6 s the detector's models)
WORKER_START = 5.0
REPORT_SECONDS = 5.0  # writing the report (HTML, figures): 2-7 s on the measured audits


def estimate(run: Run, data: Data) -> CostEstimate:
    """Times the model and the detector, counts each stage's work, prices it; with a time
    budget, cuts the saliency and sanity sizes to fit (`fit_budget`)."""
    c = run.config
    started = time.perf_counter()
    module, prep, methods = _model(run, data)
    size, channels = prep.image_size, prep.channels
    forward = forward_seconds(module, channels, size, run.device)
    sample = timing_sample(data)
    found, records = detection_timing(run, data, sample), [i.record for i in sample]
    trains = c.model is None or c.retrain
    timed = Timings(
        forward, found.detect, scoring_seconds(module, channels, size, run.device, forward),
        compose_seconds(prep), blur_seconds(channels, size, run.device), found.text_share,
        found.cleaning, found.start, found.recheck, decode_seconds(records, prep),
        train_step_seconds(module, channels, size, run.device) if trains else None,
        augment_seconds(prep) if trains and c.train.augment else 0.0,
    )  # fmt: skip
    plan, explainer = configured_plan(c), lambda p, m: _explainer(run, m, p)
    work = Work(
        n_train=len(data.records.get(data.train_split, [])), n_test=len(data.test_images),
        n_cleaned=data.n_films,
        n_classes=len(data.classes), size=size,
        steps=curve_steps(RANKING, c.explain.resolution, size),
        methods=dict.fromkeys(methods, 0.0), ranks=distributed.world_size(),
    )  # fmt: skip
    stages = stage_costs(c, priced(work, plan, explainer), timed, plan)
    uncut = sum(s.seconds for s in stages)
    common = dict(
        methods=methods, budget_minutes=c.budget_minutes, forward_seconds=timed.forward,
        detect_seconds=timed.detect, scoring_seconds=timed.scoring,
        compose_seconds=timed.compose, blur_seconds=timed.blur, ranks=work.ranks,
        train_step_seconds=timed.train_step, augment_seconds=timed.augment,
    )  # fmt: skip
    spent = sum(run.cache.timings.values()) + time.perf_counter() - started
    common["spent_seconds"] = spent
    if c.budget_minutes is None or uncut <= planned_seconds(c.budget_minutes, spent):
        return CostEstimate(stages, plan=plan, **common)
    plan = fit_budget(c, work, timed, explainer, spent)
    stages = stage_costs(c, priced(work, plan, explainer), timed, plan)
    return CostEstimate(stages, plan=plan, uncut_seconds=uncut, **common)


@dataclass(frozen=True)
class Timings:
    """What the estimate prices the work with, in seconds: one forward pass per image (a
    forward with its backward counts three), text detection per film, a forward pass of the
    model's forward copy per image (None: as `forward`), making one composed film the
    model's input, blurring one film; the share of films the detector finds text on, and
    detection per film at the rate the cleaning's worker processes detect."""

    forward: float
    detect: float
    scoring: float | None = None
    compose: float = 0.0
    blur: float = 0.0  # one film's blurred baseline, which each region test makes twice
    text_share: float = 1.0  # of the films, those with text: the residual check detects again
    cleaning: float | None = None  # detection per film at the cleaning's rate (None: `detect`)
    cleaning_start: float = 0.0  # the cleaning's worker processes starting (0: none)
    recheck: float | None = None  # the residual check per film, at the cleaning's rate
    decode: float = 0.0  # reading one film from disk into the model's input
    train_step: float | None = None  # one image's training step (None: GRADIENT_PASS forwards)
    augment: float = 0.0  # one image's training augmentation

    @property
    def trained_image(self) -> float:
        """One training image, one epoch: its step and its augmentation."""
        step = self.train_step if self.train_step is not None else GRADIENT_PASS * self.forward
        return step + self.augment

    @property
    def score(self) -> float:
        return self.scoring or self.forward


def configured_plan(c: AuditConfig) -> ExplainPlan:
    """The saliency and sanity sizes as configured, before any budget cut."""
    return ExplainPlan(c.explain.n_explain, SANITY_FILMS)


def priced(
    work: Work, plan: ExplainPlan, explainer: Callable[[ExplainPlan, str], Explainer]
) -> Work:
    """The work with each method's forward equivalents under `plan`, and the methods whose
    passes run on the model's forward copy (the I-GOS family's search)."""
    built = {m: explainer(plan, m) for m in work.methods}
    fe = {m: e.forward_equivalents() for m, e in built.items()}
    return replace(work, methods=fe, on_copy=frozenset(m for m, e in built.items() if _on_copy(e)))


def _on_copy(explainer: Explainer) -> bool:
    optimizer = getattr(explainer, "optimizer", explainer)  # an AOP method's is its optimiser's
    return bool(getattr(optimizer, "fast_copy", False))


def planned_seconds(budget_minutes: float, spent: float) -> float:
    """What a budget leaves the priced stages: BUDGET_SHARE of it after `spent` seconds."""
    return BUDGET_SHARE * max(60 * budget_minutes - spent, 0.0)


def fit_budget(
    c: AuditConfig, work: Work, timed: Timings,
    explainer: Callable[[ExplainPlan, str], Explainer], spent: float = 0.0,
) -> ExplainPlan:  # fmt: skip
    """The sizes cut, in this order, until the estimate fits BUDGET_SHARE of what is left
    of `c.budget_minutes` after the `spent` seconds (the data stage, the estimate): each
    method's budget parameter (RISE masks, optimiser iterations, IG steps, SmoothGrad
    samples) scaled by the share of the flexible stages' time that fits, down to its floor;
    one film explained per class; the sanity films, down to MIN_SANITY; the deletion/
    insertion curves COARSER_CURVES times coarser; the verdict stages' test films, sampled
    as `--sample` does down to VERDICT_FLOOR; the sanity check left out. Training and
    cleaning are never cut. What still does not fit is said in the plan."""
    budget = planned_seconds(c.budget_minutes, spent)

    def seconds(p: ExplainPlan) -> dict[str, float]:
        return {s.stage: s.seconds for s in stage_costs(c, priced(work, p, explainer), timed, p)}

    def over(p: ExplainPlan) -> float:
        return sum(seconds(p).values()) - budget

    plan = _cut_methods(configured_plan(c), seconds(configured_plan(c)), budget, work, explainer)
    if over(plan) > 0 and plan.n_explain > 1:
        plan = _cut(plan, f"films explained per class {plan.n_explain} → 1", n_explain=1)
    if over(plan) > 0 and seconds(plan).get("sanity"):
        films = max(MIN_SANITY, int(SANITY_FILMS * (1 - over(plan) / seconds(plan)["sanity"])))
        if films < plan.sanity_films:
            cut = f"sanity films {plan.sanity_films} → {films} (a wider interval)"
            plan = _cut(plan, cut, sanity_films=films)
    if over(plan) > 0 and seconds(plan).get("explain"):
        coarse = MASK_PER_STEP * COARSER_CURVES
        why = f"deletion/insertion curves {COARSER_CURVES}× coarser ({coarse} cells a step)"
        plan = _cut(plan, why, curve_per_step=coarse)
    if over(plan) > 0 and work.n_test > VERDICT_FLOOR:
        plan = _cut_verdict_films(plan, work.n_test, over(plan), seconds)
    if over(plan) > 0 and seconds(plan).get("sanity"):
        plan = _cut(plan, "sanity check not run", sanity_films=0)
    if over(plan) > 0:
        left = (over(plan) + budget + spent) / 60
        plan = _cut(plan, f"still {left:.1f} min at these sizes: training and cleaning, and "
                    f"the verdict on fewer than {VERDICT_FLOOR} films, are not cut")  # fmt: skip
    return plan


def _cut(plan: ExplainPlan, why: str, **sizes: int) -> ExplainPlan:
    return replace(plan, cuts=[*plan.cuts, why], **sizes)


def _cut_methods(
    plan: ExplainPlan, now: dict[str, float], budget: float, work: Work,
    explainer: Callable[[ExplainPlan, str], Explainer],
) -> ExplainPlan:  # fmt: skip
    """Each method's budget parameter scaled by the share of the explain and sanity stages'
    time that fits beside the others, down to its floor."""
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
    return replace(plan, method_params=params, cuts=cuts)


def _cut_verdict_films(
    plan: ExplainPlan, n_test: int, over: float,
    seconds: Callable[[ExplainPlan], dict[str, float]],
) -> ExplainPlan:  # fmt: skip
    """The verdict stages' test films cut by what they cost each (the stages are linear in
    them), down to VERDICT_FLOOR."""
    fewer = replace(plan, verdict_films=VERDICT_FLOOR)
    per_film = (sum(seconds(plan).values()) - sum(seconds(fewer).values())) / (
        n_test - VERDICT_FLOOR
    )
    films = max(VERDICT_FLOOR, int(n_test - over / max(per_film, 1e-9)))
    if films >= n_test:
        return plan
    widening = (n_test / films) ** 0.5
    why = (
        f"verdict films {n_test} → {films} (patients drawn whole, the classes in turn; "
        f"intervals about {widening:.1f}× as wide)"
    )
    return _cut(plan, why, verdict_films=films)


@dataclass(frozen=True)
class Work:
    """What the stages will process: films (the verdict stages' test films; every film of
    the dataset, which the cleaning covers), classes, the model's input side, the steps of
    each deletion/insertion curve, each method's forward equivalents per film (and those
    whose passes run on the forward copy); the ranks that share the dealt work."""

    n_train: int
    n_test: int
    n_cleaned: int
    n_classes: int
    size: int
    steps: int
    methods: dict[str, float]
    on_copy: frozenset[str] = frozenset()
    ranks: int = 1


def stage_costs(c: AuditConfig, work: Work, timed: Timings, plan: ExplainPlan) -> list[StageCost]:
    """Seconds per stage: forward equivalents × the forward pass, the forward-only passes
    (evaluation, deletion/insertion curves, region tests, transplants) × the forward copy's,
    the transplants' composed films × composing one, detections × detecting one; the dealt
    work split over `work.ranks`."""
    forward, score, detect, compose = timed.forward, timed.score, timed.detect, timed.compose
    each = {  # per film, each method
        m: fe * (score if m in work.on_copy else forward) for m, fe in work.methods.items()
    }
    method_seconds, ranks = sum(each.values()), work.ranks
    per_method, explained = work.methods, plan.n_explain * work.n_classes
    pairs = len(per_method) * math.ceil(explained / EXPLAIN_CHUNK)  # (method, chunk), dealt
    n_train, n_all = work.n_train, work.n_cleaned
    n_test = plan.verdict_films or work.n_test
    steps = work.steps
    if plan.curve_per_step:  # the mask grid's cells, fewer to a step
        steps = math.ceil(work.steps * MASK_PER_STEP / plan.curve_per_step)
    causal = 2 * steps + 2  # the deletion and the insertion curve, and both ends
    kinds = 3 + (1 if c.data.regions else 0)  # text, marker, border (+ the user's)
    fitted = round(n_train * (1 - c.train.val_fraction))  # the rest validates, each epoch
    # DDP: each rank its batches; rank 0 validates
    epoch = fitted * timed.trained_image / ranks + (n_train - fitted) * score
    reads = (fitted / ranks + n_train - fitted) * timed.decode  # once a film: DecodedOnce
    fit = c.train.epochs * epoch + reads
    epochs = f"{c.train.epochs} epochs × {n_train} films"
    maps = explained * method_seconds / min(ranks, max(pairs, 1))
    curves = explained * causal * score * len(per_method)  # scored on rank 0
    stages = [StageCost("train_baseline", fit, epochs)] if c.model is None else []
    stages += [
        StageCost("evaluate_baseline", n_test * score, f"{n_test} test films"),
        StageCost(
            "explain",
            maps + curves,
            f"{explained} films × {len(per_method)} methods, with deletion/insertion",
        ),
    ]
    if plan.sanity_films and (c.model is None or not model_kind(c.model.kind).no_sanity):
        films = plan.sanity_films
        sanity = films * 2 * dealt_methods(list(each.values()), ranks)
        stages.append(StageCost("sanity", sanity, f"{films} films × {len(per_method)} methods × 2"))
    checked = round(n_all * timed.text_share)  # the residual check: films cleaning changed
    cleaning = timed.cleaning or detect
    composed = 2 * DONORS + STYLE_ARMS  # per film: the transplants' arms
    passes = n_test * (kinds * REGION_VARIANTS + composed + 1)  # + the transplant's own film
    stages += [
        StageCost(
            "shortcut",
            (passes * score + n_test * (detect + composed * compose + kinds * 2 * timed.blur))
            / ranks,
            f"{n_test} detections, {passes} model passes",
        ),
        StageCost(
            "clean",
            timed.cleaning_start
            + ((n_all - n_test) * cleaning + checked * (timed.recheck or cleaning)) / ranks,
            f"{n_all - n_test} films detected (the verdict films' boxes are the shortcut "
            f"stage's), then about {checked} with text checked again",
        ),
        StageCost(
            "baseline_on_cleaned", n_test * (score + timed.decode), f"{n_test} cleaned test films"
        ),
    ]  # fmt: skip
    if c.retrain:
        negative = n_test * (REGION_VARIANTS + 2 * DONORS + 2)  # + evaluation, transplant
        stages += [
            StageCost("train_cleaned", fit, epochs),
            StageCost(
                "evaluate_cleaned", n_test * (score + timed.decode), f"{n_test} cleaned test films"
            ),
            StageCost(
                "negative_control",
                (negative * score + n_test * (2 * DONORS * compose + 2 * timed.blur)) / ranks,
                f"{negative} model passes",
            ),
        ]
    return [*stages, StageCost("report", REPORT_SECONDS, "the report and its figures")]


def dealt_methods(seconds: list[float], ranks: int) -> float:
    """The time of per-method work dealt a method to each rank a round: each round lasts as
    long as its dearest method."""
    return sum(max(seconds[k : k + ranks]) for k in range(0, len(seconds), ranks))


def _model(run: Run, data: Data) -> tuple[nn.Module, Preprocessing, list[str]]:
    """The model to time (the architecture the audit trains, untrained, or the user's), its
    preprocessing, and the methods it will be explained with."""
    c = run.config
    if c.model is None:
        module = build_model(c.train.model, len(data.classes), c.train.channels)
        return module, c.train.preprocessing(), list(c.explain.methods)
    loaded = load_user(run, data.classes)
    kept, _ = loaded.supported(c.explain.methods)
    return loaded.module, loaded.spec.preprocessing, kept or list(FORWARD_ONLY_DEFAULT)


def compose_seconds(prep: Preprocessing) -> float:
    """Seconds to make one composed film the model's input (the preprocessing's intensity
    steps, which every transplant arm runs on the CPU): the fastest of five."""
    intensity, pixels = Intensity(prep), np.random.rand(*prep.input_shape).astype(np.float32)
    return min(_each_call(lambda: intensity(pixels), 5))


def _each_call(call: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of `call`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _budget_value(explainer: Explainer, name: str) -> int:
    """The explainer's budget parameter (an AOP method's is its optimiser's)."""
    return int(getattr(explainer, name, None) or getattr(explainer.optimizer, name))


def _explainer(run: Run, method: str, plan: ExplainPlan) -> Explainer:
    c = run.config
    return build_explainer(method, c.explain.resolution, 8, c.seed, **plan.params(method))


def forward_seconds(module: nn.Module, channels: int, size: int, device: torch.device) -> float:
    """Seconds per image of one forward pass in a batch: the fastest of three timed passes
    after a warm-up at the same shape (a backend builds its kernels for a shape once); for a
    model slower than SLOW_PASS seconds a batch, its first pass alone (what building the
    kernels adds is small beside it, and the estimate errs high)."""
    module = module.to(device).eval()
    batch = torch.rand(TIMED_BATCH, channels, size, size, device=device)

    def timed_pass() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            module(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    first = timed_pass()  # the warm-up, or for a slow model the timing itself
    if first > SLOW_PASS:
        return first / TIMED_BATCH
    return min(timed_pass() for _ in range(3)) / TIMED_BATCH


def train_step_seconds(module: nn.Module, channels: int, size: int, device: torch.device) -> float:
    """Seconds per image of one training step as `medxai train` takes it — the forward pass
    in train mode, cross-entropy, the backward pass, an AdamW step — on a copy of the model
    (its weights stay as they are), in a batch: the faster of two after a warm-up, or for a
    model slower than SLOW_PASS seconds a pass, the warm-up alone."""
    model = copy.deepcopy(module).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.rand(TIMED_BATCH, channels, size, size, device=device)
    labels = torch.zeros(TIMED_BATCH, dtype=torch.long, device=device)

    def timed_step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(batch), labels).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    first = timed_step()
    if first > GRADIENT_PASS * SLOW_PASS:
        return first / TIMED_BATCH
    return min(timed_step() for _ in range(2)) / TIMED_BATCH


def augment_seconds(prep: Preprocessing) -> float:
    """Seconds to augment one training input (`medxai train`'s random jitter, on the CPU):
    the mean of AUGMENT_SAMPLE after a warm-up (each step runs with its probability)."""
    chain = augmentation_chain(prep, Augmentation())
    image = torch.rand(prep.input_shape)
    chain(image)
    return sum(_each_call(lambda: chain(image), AUGMENT_SAMPLE)) / AUGMENT_SAMPLE


def scoring_seconds(
    module: nn.Module, channels: int, size: int, device: torch.device, forward: float
) -> float:
    """`forward_seconds` of the forward copy the forward-only stages run (`forward` when the
    model has none)."""
    probe = torch.rand(1, channels, size, size, device=device)
    copy = inference_copy(module.to(device).eval(), probe)
    return forward if copy is None else forward_seconds(copy, channels, size, device)


def blur_seconds(channels: int, size: int, device: torch.device) -> float:
    """Seconds per film of the blurred baseline the region tests put in a region's place:
    the faster of two timed batches after a warm-up."""
    batch = torch.rand(TIMED_BATCH, channels, size, size, device=device)
    blurred_baseline(batch)
    return min(_each_call(lambda: blurred_baseline(batch), 2)) / TIMED_BATCH


@dataclass(frozen=True)
class DetectionTiming:
    """Seconds per film of text detection as the shortcut stage runs it, the share of films
    with text, detection and the residual check per film as the cleaning runs them, and the
    cleaning's worker processes starting."""

    detect: float
    text_share: float
    cleaning: float
    recheck: float
    start: float = 0.0


def timing_sample(data: Data) -> list[TestImage]:
    """Up to DETECT_SAMPLE test films spread through the test set: what detection and reading
    a film are timed on."""
    images = data.test_images
    return images[:: max(1, len(images) // DETECT_SAMPLE)][:DETECT_SAMPLE]


def decode_seconds(records: list[Record], prep: Preprocessing) -> float:
    """Seconds to read one film from disk into the model's input, as training and the cleaned
    films' evaluation read it (`CovidxDataset`: decoding, its channels, the preprocessing's
    resize and intensity): the mean over `records`, after one untimed read (which loads the
    codecs)."""
    films = CovidxDataset(records, channels=prep.channels, transform=build_transforms(prep))
    films[0]
    start = time.perf_counter()
    for k in range(len(films)):
        films[k]
    return (time.perf_counter() - start) / len(films)


def detection_timing(run: Run, data: Data, sample: list[TestImage]) -> DetectionTiming:
    """The detector timed on `sample` (see `timing_sample`); for the cleaning, when it runs
    worker processes, on one thread as they do and divided among them (processes scale where
    a detector's threads do not), with their start (WORKER_START)."""
    films = [detection_image(data.root / image.relative) for image in sample]
    detect, share, again = _timed_detection(run, films)
    workers = cleaning_workers(run, data)
    if workers == 1:
        return DetectionTiming(detect, share, detect, again)
    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)  # as a worker runs (the detector takes torch's threads)
    cv2.setNumThreads(1)
    try:
        alone, _, again_alone = _timed_detection(run, films[:2], fresh=True)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)
    return DetectionTiming(detect, share, alone / workers, again_alone / workers, WORKER_START)


def _timed_detection(
    run: Run, films: list[np.ndarray], fresh: bool = False
) -> tuple[float, float, float]:
    """Seconds per film of the audit's detector on `films` (after a warm-up run on the first,
    which loads the detector's models), the share it finds text on, and seconds per film of
    the residual check on those (run on the film itself, its boxes standing for the
    inpainted ones: the same windows are read; a film without text is not checked).
    `fresh`: a detector of its own, its onnxruntime sessions on the threads this process has
    now (the process's detector keeps the threads it was built with)."""
    clean = run.config.clean
    spec = DetectorSpec(clean.detector, clean.text_threshold, run.gpu, clean.max_side)
    detector = spec.make() if fresh else spec.build()
    detector.detect(films[0])
    start = time.perf_counter()
    found = [detector.detect(film) for film in films]
    detect = (time.perf_counter() - start) / len(films)
    with_text = [(film, boxes) for film, boxes in zip(films, found, strict=True) if boxes]
    start = time.perf_counter()
    for film, boxes in with_text:
        recheck(detector, film, boxes)
    again = (time.perf_counter() - start) / len(with_text) if with_text else detect
    return detect, len(with_text) / len(films), again
