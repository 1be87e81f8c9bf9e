"""The audit's sanity stage: are the maps the report shows made by the trained model at all?

Each method is run again on FILMS test films (the explained ones first, one class at a time,
then others drawn with the audit's seed) after the model's layers are randomised from the
output back (medxai.metrics.sanity): once with the top layer random, once with every layer
the method depends on random. Maps that stay similar mark the method "insensitive", maps
that go constant on the random model "degenerate" (the check shows nothing), and the report
greys the maps of both.
"""

from __future__ import annotations

from itertools import zip_longest

import numpy as np
import torch

from medxai.atomic import atomic_save_npy
from medxai.explain.registry import build_explainer
from medxai.metrics.sanity import SanityResult, randomisation_check
from medxai.report.record import ExplainedSet, ExplainPlan, MethodSanity, SanityChecks
from pipelines.audit.context import Run
from pipelines.audit.subject import Subject
from pipelines.explain_images import map_path

FOLDER = "sanity"
FILMS = 8  # films a method is checked on: enough for an interval over films
MIN_FILMS = 3  # the fewest a time budget may cut it to (the interval widens)


def sanity_films(
    explained: ExplainedSet, decisions: dict[str, int], seed: int, n: int = FILMS
) -> list[str]:
    """Up to `n` test films (relative paths): the explained ones, one class at a time (each
    class's first, then its second, ...), then other test films drawn with `seed`."""
    by_class: dict[str, list[str]] = {}
    for image in explained.images:
        by_class.setdefault(image.label, []).append(image.relative)
    rounds = zip_longest(*by_class.values())
    first = list(dict.fromkeys(r for row in rounds for r in row if r is not None))
    others = sorted(set(decisions) - set(first))
    drawn = [others[i] for i in np.random.default_rng(seed).permutation(len(others))]
    return (first + drawn)[:n]


def sanity(run: Run, subject: Subject, explained: ExplainedSet, plan: ExplainPlan) -> SanityChecks:
    if subject.audited.sanity_note:
        return SanityChecks({}, skipped=subject.audited.sanity_note)
    if not plan.sanity_films:
        return SanityChecks({}, skipped="it did not fit the time budget, --budget")
    c, device = run.config, run.device
    films = sanity_films(explained, subject.decisions, c.seed, plan.sanity_films)
    images = subject.inputs.batch(films).to(device)
    targets = torch.tensor([subject.decisions[f] for f in films], device=device)
    folder = run.out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    checks = {}
    for method in subject.methods:
        explainer = build_explainer(
            method,
            c.explain.resolution,
            len(films),
            c.seed,
            subject.audited.target_layer,
            **plan.params(method),
        )
        result = randomisation_check(
            subject.module, images, targets, explainer, depths=(1,), seed=c.seed,
            top_k=c.explain.top_k, n_bootstrap=c.n_bootstrap,
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
        n_images=n_images, seconds=result.seconds, degenerate=result.degenerate,
    )  # fmt: skip
