"""What the ImageNet and COCO evaluations share: resumable per-item results, tables, figures."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from medxai import distributed
from medxai.atomic import atomic_write_text
from medxai.explain.base import Explainer
from medxai.explain.registry import build_explainer
from pipelines.explain_images import slug

Progress = Callable[[int, int], None]  # (advance, total)


class MethodSettings(Protocol):
    """What both evaluations' settings say about making maps (see `build_explainer`)."""

    methods: tuple[str, ...]
    resolution: int
    batch_size: int
    seed: int
    target_layer: str | None


class ResultStore:
    """One JSON file per (method, item) under OUT/results/: a killed run resumes from them."""

    def __init__(self, out: Path, method: str) -> None:
        self.folder = out / "results" / slug(method)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / (key.replace("/", "__") + ".json")

    def load_all(self, keys: Sequence[str]) -> list | None:
        """Every key's stored value, or None when any is missing (the batch is redone)."""
        paths = [self.path(k) for k in keys]
        if not all(p.is_file() for p in paths):
            return None
        return [json.loads(p.read_text(encoding="utf-8")) for p in paths]

    def save(self, key: str, value: object) -> None:
        atomic_write_text(self.path(key), json.dumps(value))


def write_csv(path: Path, fields: Sequence[str], rows: Sequence[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; floats with 4 decimals."""

    def cell(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def sharded_results(
    items: Sequence,
    key: Callable[[object], str],
    methods: Sequence[str],
    batch_size: int,
    out: Path,
    compute: Callable[[list, str, dict], list],
    progress: Progress | None = None,
) -> list | None:
    """One value per (item, method): read back from OUT/results/ or computed a batch at a time.

    This rank takes its dealt batches (`distributed.deal_batches`); `compute(batch, method,
    cache)` returns one JSON-able value per item, `cache` lives for one batch (load images
    once for all methods). Returns every rank's values on rank 0, None elsewhere.
    """
    stores = {m: ResultStore(out, m) for m in methods}
    batches = distributed.deal_batches(list(items), batch_size)
    total = sum(len(b) for b in batches) * len(methods)
    values: list = []
    for batch in batches:
        cache: dict = {}
        for method in methods:
            done = stores[method].load_all([key(item) for item in batch])
            if done is None:
                done = compute(batch, method, cache)
                for item, value in zip(batch, done, strict=True):
                    stores[method].save(key(item), value)
            values += done
            if progress:
                progress(len(batch), total)
    values = distributed.gather_objects(values)
    return values if distributed.is_main() else None


def evaluate_methods(
    items: Sequence,
    key: Callable[[Any], str],
    settings: MethodSettings,
    out: Path,
    compute: Callable[[list, str, Explainer, dict], list],
    progress: Progress | None = None,
    **extra: Any,
) -> list | None:
    """Every method of `settings` on every item, resumable and sharded (`sharded_results`).

    `compute(batch, method, explainer, cache)` gets the method built once by
    `build_explainer` (with `extra` for the methods taking it). Returns every rank's values on
    rank 0, None elsewhere.
    """
    out.mkdir(parents=True, exist_ok=True)
    explainers = {
        m: build_explainer(
            m, settings.resolution, settings.batch_size, settings.seed, settings.target_layer,
            **extra,
        )
        for m in settings.methods
    }  # fmt: skip

    def run(batch: list, method: str, cache: dict) -> list:
        return compute(batch, method, explainers[method], cache)

    return sharded_results(items, key, settings.methods, settings.batch_size, out, run, progress)
