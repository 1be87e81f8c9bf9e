"""Calibration of the text verdict: how often it says "relies on text" when the model cannot
read the text (false positives), and how often it says so when the model does (power).

Every seed is one whole audit of a phantom at shortcut strength 1 (its own data and training):

- a *positive* run when the model demonstrably reads the text: inpainting only the text
  changes at least 5% of its decisions (the lower bound of that share's interval) on the
  balanced test split (where text and label disagree; the primary split when there is none),
  a criterion outside the verdict's own tests;
- a *null* run from the same audit's negative control: the model retrained on the cleaned
  films never saw the text, and the text's tests run on it on the original films (text tied
  to the class, model blind to it);
- with `--zero-seeds`, more null runs: phantoms at strength 0 (text untied to the class),
  audited up to the verdict;
- with `--real-seeds`, the same two kinds of run on held-out real anatomy
  (`benchmarks/shortcut_sets.py`, cue `text`: pydicom-data's radiographs, every hospital's
  text in DejaVu fonts, places and polarities the phantom never draws, the pneumonia
  hospitals' text tied to the class), one whole audit per seed.

Per group: runs, how many the verdict calls text-reliant (any level) and at each level, and
how many inconclusive, each share with its exact (Clopper–Pearson) 95% interval; and per
figure, how often it alone reaches a level. Runs are cached under --work, so an interrupted
benchmark resumes. Run it alone on the machine.

    python benchmarks/bench_calibration.py [--quick] [--seeds 0-19] [--zero-seeds 100-109]
        [--real-seeds 100000-100004] [--work DIR] [--tag TAG]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from scipy.stats import binomtest

from medxai.metrics.shortcut import INCONCLUSIVE, LEVELS, Reliance, RelianceThresholds
from medxai.report.record import Transplant
from pipelines.audit import audit_config, read_audit, run_audit, run_until_verdict

sys.path.insert(0, str(Path(__file__).parent))
from shortcut_sets import CLASSES, make_set  # noqa: E402

RESULTS = Path(__file__).parent / "results"
REAL = ", real anatomy"  # the group suffix of runs on the held-out real-anatomy text sets
READS_TEXT = 0.05  # inpainting the text changes at least this share of decisions (lower bound)


@dataclass(frozen=True)
class Outcome:
    """One verdict on one model: the level and the level each figure reaches alone."""

    group: str  # positive, null: text-blind, null: strength 0, or "not reading" (excluded)
    seed: int
    verdict: str
    follow: str
    flip: str
    gain: str
    changed_lower: float | None  # lower bound of the share of decisions cleaning changes


def figure_levels(reliance: Reliance, moved: Transplant, verdict: str) -> tuple[str, ...]:
    thresholds, f = RelianceThresholds(), moved.pooled
    follow = "–" if f is None else thresholds.level_of(0, f.follow_excess_ci, 2, f.n_units)
    return verdict, follow, reliance.excess_level, reliance.gain_level


def audit_seed(work: Path, seed: int, quick: bool) -> list[Outcome]:
    """The positive (or not-reading) outcome and the negative control's null of one audit."""
    config = audit_config(quick, shortcut_strength=1.0, seed=seed, methods=["gradcam"])
    return outcomes_of(config, work / f"strength-1-seed-{seed}", seed, "")


def real_seed(work: Path, seed: int) -> list[Outcome]:
    """The same on a held-out real-anatomy text set (100 films per class and split, 256 px)."""
    made = make_set(work / f"real-text-seed-{seed}" / "data", "text", 1.0, 100, seed=seed)
    config = audit_config(
        dataset="covidx", root=str(made.root), classes=CLASSES, seed=seed, methods=["gradcam"],
        n_explain=1, image_size=128, test_splits=["test.txt", "test_balanced.txt"],
    )  # fmt: skip
    return outcomes_of(config, work / f"real-text-seed-{seed}" / "audit", seed, REAL)


def outcomes_of(config, out: Path, seed: int, data: str) -> list[Outcome]:
    done = out / "audit.json"  # a finished audit is read back, not resumed stage by stage
    result = read_audit(done) if done.is_file() else run_audit(config, out, "cpu")
    shortcut, negative = result.shortcut, result.negative_control
    split = result.dataset.balanced_split or result.dataset.primary_test_split
    lower = result.cleaning_effect[split].changed_ci[0]
    group = ("positive" if lower >= READS_TEXT else "not reading") + data
    text = shortcut.kinds["text"].reliance
    mine = figure_levels(text, shortcut.evidence.transplant, shortcut.strength)
    blind = figure_levels(negative.reliance, negative.transplant, negative.strength)
    return [
        Outcome(group, seed, *mine, lower),
        Outcome("null: text-blind" + data, seed, *blind, None),
    ]


def zero_seed(work: Path, seed: int, quick: bool) -> Outcome:
    config = audit_config(quick, shortcut_strength=0.0, seed=seed, methods=["gradcam"])
    v = run_until_verdict(config, work / f"strength-0-seed-{seed}", "cpu").shortcut
    text = v.kinds["text"].reliance
    levels = figure_levels(text, v.evidence.transplant, v.strength)
    return Outcome("null: strength 0", seed, *levels, None)


def share(k: int, n: int) -> str:
    if not n:
        return "–"
    ci = binomtest(k, n).proportion_ci(method="exact")
    return f"{k}/{n} = {k / n:.0%} [{ci.low:.0%}, {ci.high:.0%}]"


def in_group(outcome: Outcome, group: str) -> bool:
    if group.endswith(": all"):
        return outcome.group.startswith(group.removesuffix(": all"))
    return outcome.group == group


def table(outcomes: list[Outcome]) -> str:
    groups = [
        "null: text-blind", "null: text-blind" + REAL, "null: strength 0", "null: all",
        "positive", "positive" + REAL, "positive: all", "not reading", "not reading" + REAL,
    ]  # fmt: skip
    lines = [
        "| runs | says relies on text (any level) | strong | moderate | weak | inconclusive | "
        "not applicable | follow excess alone | flip excess alone | insertion gain alone |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for group in groups:
        members = [o for o in outcomes if in_group(o, group)]
        n = len(members)
        if not n:
            continue
        reached = sum(o.verdict in LEVELS[1:] for o in members)
        cells = [share(sum(o.verdict == level for o in members), n) for level in LEVELS[:0:-1]]
        unsure = share(sum(o.verdict == INCONCLUSIVE for o in members), n)
        unfit = share(sum(o.verdict == "not applicable" for o in members), n)
        alone = [share(sum(getattr(o, f) in LEVELS[1:] for o in members), n)
                 for f in ("follow", "flip", "gain")]  # fmt: skip
        row = [share(reached, n), *cells, unsure, unfit, *alone]
        lines.append(f"| {group} | " + " | ".join(row) + " |")
    skipped = [o.seed for o in outcomes if o.group.startswith("not reading")]
    if skipped:
        lines.append(
            f"\n*not reading*: seeds {skipped}, whose model did not demonstrably read the text "
            "(neither a null nor a positive run; shown for completeness)."
        )
    return "\n".join(lines)


def seeds(spec: str) -> list[int]:
    if not spec:
        return []
    if "-" in spec:
        first, last = spec.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in spec.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the audit's --quick sizes")
    parser.add_argument("--seeds", default="0-19")
    parser.add_argument("--zero-seeds", default="")
    parser.add_argument("--real-seeds", default="")
    parser.add_argument("--work", type=Path, default=Path("/tmp/medxai-calibration"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    outcomes: list[Outcome] = []
    stem = RESULTS / f"calibration{'_quick' if args.quick else ''}{args.tag}"
    RESULTS.mkdir(exist_ok=True)
    for seed in seeds(args.seeds):
        outcomes += audit_seed(args.work, seed, args.quick)
        write(stem, outcomes, args)
    for seed in seeds(args.zero_seeds):
        outcomes.append(zero_seed(args.work, seed, args.quick))
        write(stem, outcomes, args)
    for seed in seeds(args.real_seeds):
        outcomes += real_seed(args.work, seed)
        write(stem, outcomes, args)
    print(table(outcomes))


def write(stem: Path, outcomes: list[Outcome], args: argparse.Namespace) -> None:
    """After every seed, so a benchmark stopped part-way keeps what it measured."""
    stem.with_suffix(".json").write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    sizes = "--quick" if args.quick else "default"
    stem.with_suffix(".md").write_text(
        f"Phantom audits at {sizes} sizes (Grad-CAM only), seeds {args.seeds}"
        f"{', strength-0 seeds ' + args.zero_seeds if args.zero_seeds else ''}"
        f"{real_note(args.real_seeds)}; a positive run's model changes ≥ {READS_TEXT:.0%} of "
        "its decisions on the balanced split when only the text is inpainted; a text-blind null "
        "run is the same audit's negative control (the model retrained on the cleaned films); "
        "intervals are exact (Clopper–Pearson) 95%.\n\n" + table(outcomes) + "\n"
    )


def real_note(spec: str) -> str:
    if not spec:
        return ""
    return (
        f"; real-anatomy text sets (pydicom-data radiographs, DejaVu text; 100 films per class "
        f"and split, 128-px model input, whole audits) seeds {spec}"
    )


if __name__ == "__main__":
    main()
