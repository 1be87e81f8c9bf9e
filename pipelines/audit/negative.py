"""The negative control: the text's causal tests on a model that cannot read the text.

The model retrained on the cleaned films never saw a hospital's text. Run on the original
test films, with the text boxes the audit found, its region tests and transplant show what
the tests report where there is nothing to find — position, inpainting smudges, pasted
background, a biased control. The report puts both models' figures side by side: "the text
decides 80% of the baseline's decisions and 0% of the cleaned model's" on the default phantom.
"""

from __future__ import annotations

from dataclasses import replace

from medxai.metrics.shortcut import RelianceThresholds, combined_strength
from medxai.models.checkpoint import load_checkpoint
from medxai.report.record import NegativeControl, ShortcutResult
from medxai.statistics.confound import informative
from pipelines.audit.context import Run
from pipelines.audit.controls import matched_controls
from pipelines.audit.data import Data
from pipelines.audit.region_tests import region_test_rows, reliance
from pipelines.audit.shortcut import transplant
from pipelines.audit.subject import (
    Subject,
    decisions_of,
    decode_inputs,
    evaluate_decoded,
    forward_copy,
)

NOT_RUN = (
    "no negative control was run: it needs a model that never saw the text, the one retrained "
    "on the cleaned films (--retrain)"
)


def negative_control(
    run: Run, data: Data, subject: Subject, found: ShortcutResult, checkpoint: str
) -> NegativeControl:
    """The retrained model's decisions on the original test films, then the text's region
    tests (the audit's boxes, the same control) and transplant on them."""
    c = run.config
    module, spec = load_checkpoint(checkpoint, run.device)
    same_input = spec.preprocessing == subject.spec.preprocessing
    inputs = subject.inputs if same_input else decode_inputs(run, data, spec)
    scorer = forward_copy(module, inputs, data.test_images[0].relative, run.device)
    evaluated = evaluate_decoded(run, scorer, spec, data, inputs)
    blind = replace(
        subject, module=module, scorer=scorer, spec=spec, inputs=inputs, evaluated=evaluated,
        decisions=decisions_of(evaluated, data),
    )  # fmt: skip
    images = data.test_images
    boxes = {row.relative: row.boxes for row in found.images}
    rows, _ = region_test_rows(
        scorer, images, boxes, inputs, blind.decisions, data.classes, run.device,
        matched_controls, None,
        progress=run.progress("negative control: region tests", len(images)),
    )  # fmt: skip
    thresholds = RelianceThresholds()
    tested = reliance(rows, thresholds, c.n_bootstrap, c.seed, data.clusters)
    moved = transplant(run, data, blind, images, {row.relative: row for row in rows})
    needed = bool(informative(moved.associations))
    strength, follow_level = combined_strength(tested, moved.pooled, thresholds, needed)
    return NegativeControl(checkpoint, tested, replace(moved, rows=[]), strength, follow_level)
