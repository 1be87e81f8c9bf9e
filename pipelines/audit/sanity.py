"""The audit's sanity stage: are the maps the report shows made by the trained model at all?

Each method is run again on one explained film per class after the model's layers are
randomised from the output back (medxai.metrics.sanity): once with the top layer random, once
with every layer the method depends on random. Maps that stay similar mark the method "not
model-sensitive here", and the report greys its maps.
"""

from __future__ import annotations

import torch

from medxai.atomic import atomic_save_npy
from medxai.explain.registry import build_explainer
from medxai.metrics.sanity import SanityResult, randomisation_check
from medxai.report.record import ExplainedSet, MethodSanity, SanityChecks
from pipelines.audit.context import Run
from pipelines.audit.subject import Subject
from pipelines.explain_images import map_path

FOLDER = "sanity"


def one_per_class(explained: ExplainedSet) -> list:
    """The first explained film of each class (the check costs a few explainer runs each)."""
    first: dict[str, object] = {}
    for image in explained.images:
        first.setdefault(image.label, image)
    return list(first.values())


def sanity(run: Run, subject: Subject, explained: ExplainedSet) -> SanityChecks:
    if subject.audited.sanity_note:
        return SanityChecks({}, skipped=subject.audited.sanity_note)
    c, device = run.config, run.device
    films = one_per_class(explained)
    images = subject.inputs.batch([f.relative for f in films]).to(device)
    targets = torch.tensor([subject.decisions[f.relative] for f in films], device=device)
    folder = run.out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    checks = {}
    for method in subject.methods:
        explainer = build_explainer(
            method, c.explain.resolution, len(films), c.seed, subject.audited.target_layer
        )
        result = randomisation_check(
            subject.module, images, targets, explainer, depths=(1,), seed=c.seed,
            top_k=c.explain.top_k,
        )  # fmt: skip
        for name, maps in (("original", result.original_maps), ("random", result.last_maps)):
            atomic_save_npy(map_path(folder, name, method), maps)
        checks[method] = record_of(result, len(films))
        run.hooks.progress("sanity check", 1, len(subject.methods))
    return SanityChecks(checks)


def record_of(result: SanityResult, n_images: int) -> MethodSanity:
    return MethodSanity(
        method=result.method, n_layers=len(result.layers), verdict_depth=result.verdict_depth,
        verdict_layer=result.verdict_layer, threshold=result.threshold,
        model_sensitive=result.model_sensitive,
        depths=list(result.depths),
        n_images=n_images, seconds=result.seconds,
    )  # fmt: skip
