"""`run_audit`: the audit as a straight sequence of stages, each a function of the values the
ones before it returned, each cached in OUT/stages and read back when a run resumes.

data → cost estimate (printed before anything long runs) → model (train or load; decode;
evaluate) → explain → sanity → shortcut (per region
kind: find, region tests, transplant; the verdict) → clean → retrain → what cleaning alone
changed → the negative control (the text's tests on the retrained model) → report.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from medxai.codec import encode, read_record
from medxai.outputs import check_output, output_lock
from medxai.report.record import (
    AuditResult,
    CostEstimate,
    ExplainedSet,
    NegativeControl,
    SanityChecks,
    ShortcutResult,
)
from pipelines.audit.cache import claim_folder
from pipelines.audit.cleaning import clean, cleaning_effects, retrain
from pipelines.audit.config import AuditConfig
from pipelines.audit.context import Hooks, Run
from pipelines.audit.cost import configured_plan, estimate
from pipelines.audit.data import Data, find_root, load_data, sampled
from pipelines.audit.negative import negative_control
from pipelines.audit.report import Findings, report
from pipelines.audit.saliency import explain
from pipelines.audit.sanity import sanity
from pipelines.audit.shortcut import shortcut
from pipelines.audit.subject import Subject, model_stage


def run_audit(
    config: AuditConfig, out: Path | str, device: torch.device | str = "cpu",
    hooks: Hooks | None = None,
) -> AuditResult[AuditConfig]:  # fmt: skip
    """The whole audit into OUT (index.html, audit.json); a finished stage is read back, so
    the same call on the same OUT resumes a killed run."""
    run = Run(config, Path(out), torch.device(device), hooks or Hooks())
    with _claimed(run) as root:
        half = _up_to_verdict(run, root)
        cleaned = clean(run, half.data, half.shortcut)
        retrained = retrain(run, half.data, half.subject, cleaned)
        effect = cleaning_effects(run, half.data, half.subject, cleaned)
        negative = None
        if retrained.trained is not None:
            negative = run.cache.run(
                "negative_control", NegativeControl,
                lambda: negative_control(
                    run, half.data, half.subject, half.shortcut, retrained.trained.checkpoint
                ),
            )  # fmt: skip
        findings = Findings(
            half.data, half.subject, half.explained, half.sanity, half.shortcut, cleaned,
            retrained, effect, negative, half.estimate,
        )  # fmt: skip
        return report(run, findings)


@dataclass(frozen=True)
class UntilVerdict:
    shortcut: ShortcutResult
    timings: dict[str, float]  # stage -> seconds (a resumed stage keeps its first run's)


def run_until_verdict(
    config: AuditConfig, out: Path | str, device: torch.device | str = "cpu",
    hooks: Hooks | None = None,
) -> UntilVerdict:  # fmt: skip
    """The audit's stages up to the verdict (no cleaning, retraining or report)."""
    run = Run(config, Path(out), torch.device(device), hooks or Hooks())
    with _claimed(run) as root:
        return UntilVerdict(_up_to_verdict(run, root).shortcut, dict(run.cache.timings))


def read_audit(path: Path | str) -> AuditResult[AuditConfig]:
    """An audit.json back as its typed record."""
    return read_record(Path(path), AuditResult[AuditConfig])


@dataclass(frozen=True)
class _FirstHalf:
    data: Data
    subject: Subject
    explained: ExplainedSet
    sanity: SanityChecks
    shortcut: ShortcutResult
    estimate: CostEstimate


def _up_to_verdict(run: Run, root: Path) -> _FirstHalf:
    cache = run.cache
    data = load_data(run, root)
    cost = cache.run("estimate", CostEstimate, lambda: estimate(run, data))
    for line in cost.lines():
        run.hooks.log(line)
    plan = cost.plan or configured_plan(run.config)  # a record written before plans existed
    if plan.verdict_films is not None:
        why = f"the time budget of {cost.budget_minutes:g} min"
        data = sampled(data, plan.verdict_films, run.config.seed, why)
    subject = model_stage(run, data)
    explained = cache.run("explain", ExplainedSet, lambda: explain(run, data, subject, plan))
    checks = cache.run("sanity", SanityChecks, lambda: sanity(run, subject, explained, plan))
    found = cache.run("shortcut", ShortcutResult, lambda: shortcut(run, data, subject, explained))
    return _FirstHalf(data, subject, explained, checks, found, cost)


@contextmanager
def _claimed(run: Run) -> Iterator[Path]:
    """The dataset root, checked before anything is written, with OUT locked and pinned to
    the config for the run."""
    root = find_root(run.config, run.out)
    check_output(run.out, [root if run.config.data.dataset != "phantom" else None])
    with output_lock(run.out):
        claim_folder(run.out, encode(run.config))
        yield root
