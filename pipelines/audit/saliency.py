"""The audit's explain stage: every saliency method on K test films per class, for the
model's own decisions; the maps and curves stay in OUT/explain for the report. Under torchrun
the ranks share the maps (method by method, chunk by chunk); rank 0 scores them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from medxai import distributed
from medxai.data.imagefolder import ImageRecord
from medxai.report.record import CausalScores, ExplainedImage, ExplainedSet, ExplainPlan
from pipelines.audit.context import Run
from pipelines.audit.data import Data
from pipelines.audit.inputs import TestImage
from pipelines.audit.subject import Subject
from pipelines.explain_images import explain_images, items_from_records, make_maps, map_path

RANKING = "mask"  # see `explain`
CHUNK = 16  # films explained together: the (method, chunk) pairs torchrun deals


def chosen_images(run: Run, data: Data, k: int) -> list[TestImage]:
    """K images per class of the first test split, drawn with the audit's seed."""
    rng = np.random.default_rng(run.config.seed)
    images = data.test[data.tests[0]]
    chosen: list[TestImage] = []
    for name in data.classes:
        pool = [i for i in images if i.record.label == name]
        picks = sorted(rng.choice(len(pool), min(k, len(pool)), replace=False))
        chosen += [pool[i] for i in picks]
    return chosen


def explain(run: Run, data: Data, subject: Subject, plan: ExplainPlan) -> ExplainedSet:
    """Every method on the chosen images, at once, for the model's own decisions.

    Deletion/insertion rank the cells of a `resolution` grid by the soft map's mean in each
    cell (the iGOS++ authors' protocol): ranking single pixels would order the tied pixels of
    a saturated mask (the I-GOS family's plateaus at 0 and 1) by raster position, not by the
    method's evidence."""
    settings, classes, methods = run.config.explain, data.classes, subject.methods
    chosen = chosen_images(run, data, plan.n_explain)
    items = items_from_records([image.record for image in chosen], classes)
    targets = [subject.decisions[image.relative] for image in chosen]
    inputs = subject.inputs.batch([i.relative for i in chosen])
    shared = dict(
        resolution=settings.resolution, batch_size=max(1, min(len(items), CHUNK)),
        seed=run.config.seed, target_layer=subject.audited.target_layer,
        method_params=plan.method_params,
    )  # fmt: skip
    out = run.out / "explain"
    if distributed.world_size() > 1:  # the ranks make the maps; rank 0 reads them back
        distributed.run_everywhere(
            _maps_on_rank, subject.module, items, methods, out, run.device, inputs, targets,
            shared,
        )  # fmt: skip
    scores = explain_images(
        subject.module, items, methods, subject.spec.preprocessing, out, run.device,
        classes=classes, ranking=RANKING, inputs=inputs, targets=targets,
        per_step=plan.curve_per_step,
        progress=run.progress("explaining", len(items) * len(methods)), **shared,
    )  # fmt: skip
    return ExplainedSet([
        ExplainedImage(
            file=image.record.filename, relative=image.relative, name=item.name,
            label=image.record.label, source=image.record.source,
            predicted=classes[subject.decisions[image.relative]],
            scores={
                row.method: CausalScores(row.deletion_auc, row.insertion_auc)
                for row in scores if row.image == item.name
            },
            no_map={row.method: row.note for row in scores if row.image == item.name and row.note},
        )  # fmt: skip
        for image, item in zip(chosen, items, strict=True)
    ])  # fmt: skip


def _maps_on_rank(
    module: nn.Module, items: list[ImageRecord], methods: list[str], out: Path,
    device: torch.device, inputs: torch.Tensor, targets: list[int], shared: dict,
) -> None:  # fmt: skip
    """Every rank: its share of the maps, on its own device; then wait for the others."""
    make_maps(module, items, methods, out, distributed.local_device(device), inputs, targets,
              **shared)  # fmt: skip
    distributed.barrier()


def load_maps(run: Run, explained: ExplainedSet, methods: list[str]) -> dict[str, np.ndarray]:
    """Method -> (N, S, S) saliency maps of the explained images, in their order."""
    folder = run.out / "explain" / "maps"
    return {
        m: np.stack([np.load(map_path(folder, e.name, m)) for e in explained.images])
        for m in methods
    }
