"""What every stage of one audit is handed: its settings, output folder, device, the caller's
hooks and the stage cache. Fixed when the run starts; the stages' results are passed on as
values, never stored here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipelines.audit.cache import StageCache
from pipelines.audit.config import AuditConfig


@dataclass(frozen=True)
class Hooks:
    """How the audit talks to its caller: stage starts, progress, log lines."""

    stage: Callable[[str], None] = lambda name: None
    progress: Callable[[str, int, int | None], None] = lambda what, advance, total: None
    log: Callable[[str], None] = lambda line: None


@dataclass(frozen=True)
class Run:
    config: AuditConfig
    out: Path
    device: torch.device
    hooks: Hooks = field(default_factory=Hooks)
    cache: StageCache = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache", StageCache(self.out, self.hooks.stage))

    def progress(self, what: str, total: int | None) -> Callable[[int], None]:
        """A callback advancing the `what` bar by k of `total`."""
        return lambda k: self.hooks.progress(what, k, total)

    @property
    def gpu(self) -> bool:
        return self.device.type == "cuda"
