"""`medxai compare`: two audits of one dataset side by side, and what changed film by film.

Each audit's verdict rows, reliance figures and metrics are shown as it reported them. The
paired differences (B − A) rest on the test films both audits used, matched by their path
under the dataset root (and the same label): per film, a figure of B minus the same figure of
A, averaged, with a percentile bootstrap that resamples patients with their films
(medxai.statistics.bootstrap). audit.json records, per film, the region tests of every region
kind, the text transplant and each film's decision; which patient a film belongs to, and each
test split's decisions, come from the run's own stage record of the model's evaluation
(OUT/stages/evaluate_baseline.json). Without it films are resampled one by one and the
metrics are paired over the verdict stages' films pooled.

    from pipelines.compare import compare_audits
    comparison = compare_audits("reports/v1", "reports/v2")
"""

from pipelines.compare.films import Patients, same_dataset, shared_films
from pipelines.compare.folders import AUDIT, EVALUATION, AuditFolder, read_run
from pipelines.compare.paired import (
    POOLED,
    REGION_FIGURES,
    Pairing,
    kind_rows,
    paired_metrics,
    paired_regions,
    paired_transplant,
)
from pipelines.compare.run import compare_audits, run_compare, summary
from pipelines.compare.unpaired import (
    UNPAIRED,
    audit_side,
    metric_figures,
    reliance_figures,
    side_by_side,
    verdict_pairs,
)

__all__ = ["AUDIT", "EVALUATION", "POOLED", "REGION_FIGURES", "UNPAIRED", "AuditFolder",
           "Pairing", "Patients", "audit_side", "compare_audits", "kind_rows", "metric_figures",
           "paired_metrics", "paired_regions", "paired_transplant", "read_run",
           "reliance_figures", "run_compare", "same_dataset", "shared_films", "side_by_side",
           "summary", "verdict_pairs"]  # fmt: skip
