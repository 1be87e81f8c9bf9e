"""The per-cue verdict table on held-out real anatomy: does the audit name the cue a model
reads, and nothing when there is none to read?

Each run makes a set with `benchmarks/shortcut_sets.py` (real CR anatomy from pydicom-data;
sources H2/H3 send pneumonia and carry the cue at strength s), audits it by default up to
the verdict (the audit trains its own model; `--regions` for the device set) and records
every row of the verdict table with its figure and CI, and the model's accuracy on the
confounded and the balanced test split. Null runs: strength 0 (the cue tells nothing), and
`neutralised` (the cue is tied to the class but drawn on no film: a model that cannot see
it). Held-out seeds only: no threshold is tuned here (the levels are the text verdict's).

Cues: frame, tone, device (no text on any film) and text. In a text set every source burns
in its own hospital text, so the cue is which hospital's text a film carries; neutralised,
every film carries the same text, tied to nothing. A text run is judged on the verdict
table's `text` row (the audit finds the text itself: no regions file). Text runs are not
among the default runs: ask for them, e.g. `--runs text:1,text:0,text:1n`.

    python benchmarks/bench_shortcut_kinds.py [--runs frame:1,frame:0,frame:1n,...]
        [--n-per-class 100] [--seed 100000] [--work DIR] [--tag TAG]

Writes benchmarks/results/shortcut_kinds{TAG}.{json,md}; runs are cached under --work, so an
interrupted benchmark resumes. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from shortcut_sets import CLASSES, CUES, HELDOUT_SEEDS, make_set  # noqa: E402

from pipelines.audit import audit_config, run_until_verdict  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEFAULT_RUNS = "frame:1,frame:0,frame:1n,tone:1,tone:0,tone:1n,device:1,device:0,device:1n"


@dataclass(frozen=True)
class Cell:
    level: str
    value: float | None
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class Run:
    cue: str
    strength: float
    neutralised: bool
    seed: int
    accuracy_confounded: float | None
    accuracy_balanced: float | None
    rows: dict[str, Cell]  # verdict row kind -> its level and figure
    headline: str
    seconds: float


def run_one(work: Path, cue: str, strength: float, neutralised: bool, args) -> Run:
    name = f"{cue}-{strength:g}{'-neutralised' if neutralised else ''}-seed-{args.seed}"
    made = make_set(
        work / name / "data", cue, strength, args.n_per_class, size=args.size, seed=args.seed,
        neutralised=neutralised,
    )  # fmt: skip
    config = audit_config(
        dataset="covidx", root=str(made.root), classes=CLASSES, seed=args.seed,
        methods=["gradcam"], n_explain=1, retrain=False, image_size=args.image_size,
        regions=str(made.regions) if made.regions else None,
        test_splits=["test.txt", "test_balanced.txt"],
    )  # fmt: skip
    ran = run_until_verdict(config, work / name / "audit", "cpu")
    v, gap = ran.shortcut, ran.shortcut.source.split_gap
    return Run(
        cue, strength, neutralised, args.seed,
        gap.accuracy_confounded if gap else None, gap.accuracy_balanced if gap else None,
        {row.kind: Cell(row.level, row.value, row.ci) for row in v.table}, v.headline,
        sum(ran.timings.values()),
    )  # fmt: skip


def cell(c: Cell | None) -> str:
    if c is None:
        return "–"
    if c.value is None:
        return c.level
    return f"{c.level} {c.value:+.2f} [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]"


def table(runs: list[Run]) -> str:
    kinds = list(dict.fromkeys(k for r in runs for k in r.rows))
    head = ["cue", "strength", "model sees the cue", "acc. confounded", "acc. balanced", *kinds]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in runs:
        acc = [f"{a:.2f}" if a is not None else "–" for a in (r.accuracy_confounded,
                                                             r.accuracy_balanced)]  # fmt: skip
        cells = [cell(r.rows.get(k)) for k in kinds]
        neutral = "no (one text on all films)" if r.cue == "text" else "no (neutralised)"
        seen = neutral if r.neutralised else "yes" if r.strength else "yes (untied)"
        lines.append("| " + " | ".join([r.cue, f"{r.strength:g}", seen, *acc, *cells]) + " |")
    return "\n".join(lines)


def parse_runs(runs: str) -> list[tuple[str, float, bool]]:
    """`cue:strength[n]`, comma-separated → (cue, strength, neutralised), every spec checked
    before the first (hours-long) run starts."""
    parsed = []
    for spec in runs.split(","):
        cue, _, strength = spec.strip().partition(":")
        try:
            value = float(strength.removesuffix("n"))
        except ValueError:
            value = -1.0
        if cue not in CUES or not 0.0 <= value <= 1.0:
            raise SystemExit(f"--runs: {spec!r} is not cue:strength[n], cue one of {CUES}")
        parsed.append((cue, value, strength.endswith("n")))
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="cue:strength[n], comma-separated")
    parser.add_argument("--n-per-class", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=HELDOUT_SEEDS[0])
    parser.add_argument("--work", type=Path, default=Path("reports/bench-shortcut-kinds"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    runs = []
    for cue, strength, neutralised in parse_runs(args.runs):
        run = run_one(args.work, cue, strength, neutralised, args)
        runs.append(run)
        spec = f"{cue}:{strength:g}{'n' if neutralised else ''}"
        print(f"{spec}: {run.headline} ({run.seconds:.0f} s)", flush=True)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"shortcut_kinds{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps([asdict(r) for r in runs], indent=1) + "\n")
    text = (
        f"Held-out real anatomy (pydicom-data CR films), seed {args.seed}, "
        f"{args.n_per_class} films per class and split, {args.size} px films, model input "
        f"{args.image_size} px, default audit (gradcam only); 2-core CPU.\n\n{table(runs)}\n"
    )
    stem.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
