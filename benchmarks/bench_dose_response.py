"""Dose–response calibration of the verdict: phantoms at shortcut strengths 0 … 1, two seeds
each, audited up to the verdict (training, evaluation, saliency, shortcut analysis).

Prints and writes (benchmarks/results/dose_response.{json,md,png}) per run: the transplant's
follow excess, the region tests' flip excess and insertion gain (each with its 95% CI), the
baseline's COVID-19 recall on the balanced split, and the verdict. Runs are cached under
--work, so an interrupted benchmark resumes.

    python benchmarks/bench_dose_response.py [--quick] [--work DIR] [--strengths 0,0.5,1]
        [--seeds 0,1] [--runs 0:0,0:1,1:0]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from medxai.codec import decode
from medxai.report.figures import new_figure, save_png
from medxai.report.record import EvaluatedSplits, ShortcutResult
from medxai.statistics.confound import informative
from pipelines.audit import audit_config, run_until_verdict

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Row:
    strength: float
    seed: int
    follow_excess: float | None
    follow_ci: tuple[float, float] | None
    flip_excess: float
    flip_ci: tuple[float, float]
    insertion_gain: float
    gain_ci: tuple[float, float]
    covid_recall_balanced: float
    macro_f1_balanced: float
    verdict: str
    seconds: float
    n_region: int = 0  # films (patients) the region tests rest on
    control_keeps: float = 0.0  # the control alone over the blurred film keeps this share
    n_follow: int = 0  # films (patients) the transplant rests on
    transplant_needed: bool = True  # some source is tied to a class (its text carries one)


def run_one(work: Path, strength: float, seed: int, quick: bool) -> Row:
    out = work / f"strength-{strength:g}-seed-{seed}"
    config = audit_config(quick, shortcut_strength=strength, seed=seed, methods=["gradcam"])
    ran = run_until_verdict(config, out, "cpu")
    verdict: ShortcutResult = ran.shortcut
    stored = json.loads((out / "stages" / "evaluate_baseline.json").read_text())["result"]
    metrics = decode(EvaluatedSplits, stored).splits["test_balanced.txt"].metrics
    evidence, follow = verdict.evidence, verdict.evidence.transplant.pooled
    return Row(
        strength, seed,
        follow.follow_excess if follow else None, follow.follow_excess_ci if follow else None,
        evidence.region_deletion.flip_excess, evidence.region_deletion.flip_excess_ci,
        evidence.region_insertion.gain, evidence.region_insertion.gain_ci,
        metrics.per_class["COVID-19"].recall, metrics.macro_f1,
        verdict.strength, sum(ran.timings.values()),  # a resumed stage keeps its first
        verdict.kinds["text"].reliance.n_clusters or evidence.n_with_text,
        evidence.region_insertion.control_keeps_class_rate, follow.n_units if follow else 0,
        bool(informative(evidence.transplant.associations)),
    )  # fmt: skip


def _ci(value: float | None, ci) -> str:
    return "–" if value is None else f"{value:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def table(rows: list[Row]) -> str:
    lines = [
        "| strength | seed | transplant follow excess | flip excess | insertion gain | "
        "COVID-19 recall (balanced) | macro-F1 (balanced) | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.strength:g} | {r.seed} | {_ci(r.follow_excess, r.follow_ci)} | "
            f"{_ci(r.flip_excess, r.flip_ci)} | {_ci(r.insertion_gain, r.gain_ci)} | "
            f"{r.covid_recall_balanced:.2f} | {r.macro_f1_balanced:.2f} | {r.verdict} |"
        )
    return "\n".join(lines)


def plot(rows: list[Row], path: Path) -> None:
    fig = new_figure(1, height=3.2)
    ax = fig.subplots()
    for key, label in (("follow_excess", "transplant follow excess"),
                       ("flip_excess", "flip excess"), ("insertion_gain", "insertion gain"),
                       ("covid_recall_balanced", "COVID-19 recall, balanced split")):  # fmt: skip
        points = [(r.strength, getattr(r, key)) for r in rows if getattr(r, key) is not None]
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, "o", alpha=0.7, label=label)
    ax.set_xlabel("phantom shortcut strength")
    ax.legend(fontsize=7, frameon=False)
    save_png(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the audit's --quick sizes")
    parser.add_argument("--work", type=Path, default=Path("/tmp/medxai-dose-response"))
    parser.add_argument("--strengths", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--runs", help="strength:seed pairs instead of the grid, e.g. 0:0,0:1,1:0")
    args = parser.parse_args()
    pairs = [(s, seed) for s in args.strengths.split(",") for seed in args.seeds.split(",")]
    if args.runs:
        pairs = [tuple(run.split(":")) for run in args.runs.split(",")]
    rows = [run_one(args.work, float(s), int(seed), args.quick) for s, seed in pairs]
    RESULTS.mkdir(exist_ok=True)
    name = "dose_response" + ("_quick" if args.quick else "")
    (RESULTS / f"{name}.json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(table(rows) + "\n")
    plot(rows, RESULTS / f"{name}.png")
    print(table(rows))


if __name__ == "__main__":
    main()
