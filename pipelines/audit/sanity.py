"""The audit's sanity stage: are the maps the report shows made by the trained model at all?

Each method is run again on FILMS test films (the explained ones first, one class at a time,
then others drawn with the audit's seed) after the model's layers are randomised from the
output back (medxai.metrics.sanity): once with the top layer random, once with every layer
the method depends on random. Maps that stay similar mark the method "insensitive", maps
that go constant on the random model "degenerate" (the check shows nothing), and the report
greys the maps of both. Under torchrun the methods are dealt to the ranks, one each a round;
rank 0 writes the maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest

import numpy as np
import torch
from torch import nn

from medxai import distributed
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


@dataclass(frozen=True)
class Checking:
    """What checking one method needs besides its name (sent once to every rank under
    torchrun)."""

    module: nn.Module
    images: torch.Tensor  # the films' model inputs, on the CPU
    targets: torch.Tensor  # the model's decisions on them
    plan: ExplainPlan  # each method's parameters, as the explain stage ran it
    resolution: int
    target_layer: str | None
    seed: int
    top_k: float
    n_bootstrap: int
    device: torch.device  # the one-process run's (each rank uses its own)


def sanity(run: Run, subject: Subject, explained: ExplainedSet, plan: ExplainPlan) -> SanityChecks:
    if subject.audited.sanity_note:
        return SanityChecks({}, skipped=subject.audited.sanity_note)
    if not plan.sanity_films:
        return SanityChecks({}, skipped="it did not fit the time budget, --budget")
    c, methods = run.config, subject.methods
    films = sanity_films(explained, subject.decisions, c.seed, plan.sanity_films)
    shared = Checking(
        subject.module, subject.inputs.batch(films),
        torch.tensor([subject.decisions[f] for f in films]), plan, c.explain.resolution,
        subject.audited.target_layer, c.seed, c.explain.top_k, c.n_bootstrap, run.device,
    )  # fmt: skip
    folder = run.out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    tick = run.progress("sanity check", len(methods))
    results = distributed.run_everywhere(
        distributed.dealt_rounds, _check, shared, len(methods),
        local={"payloads": iter(methods), "progress": lambda done: tick(len(done))},
    )  # fmt: skip
    checks = {}
    for method, result in zip(methods, results, strict=True):
        for name, maps in (("original", result.original_maps), ("random", result.last_maps)):
            atomic_save_npy(map_path(folder, name, method), maps)
        checks[method] = record_of(result, len(films))
    return SanityChecks(checks)


def _check(shared: Checking, method: str) -> SanityResult:
    """One method's cascade on this rank's device: its maps on the trained model and with
    the top layer random."""
    module, device = distributed.on_rank(shared.module, shared.device)
    explainer = build_explainer(
        method, shared.resolution, len(shared.images), shared.seed, shared.target_layer,
        **shared.plan.params(method),
    )  # fmt: skip
    return randomisation_check(
        module, shared.images.to(device), shared.targets.to(device), explainer, depths=(1,),
        seed=shared.seed, top_k=shared.top_k, n_bootstrap=shared.n_bootstrap,
    )  # fmt: skip


def record_of(result: SanityResult, n_images: int) -> MethodSanity:
    return MethodSanity(
        method=result.method, n_layers=len(result.layers), verdict_depth=result.verdict_depth,
        verdict_layer=result.verdict_layer, threshold=result.threshold,
        model_sensitive=result.model_sensitive,
        depths=list(result.depths),
        n_images=n_images, seconds=result.seconds, degenerate=result.degenerate,
    )  # fmt: skip
