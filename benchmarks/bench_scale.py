"""How the whole audit's cost grows with the number of films, on 1 and 2 ranks.

For each N in --films, a phantom of N films at a realistic film size (`medxai synth
--n-per-class N/3 --size SIZE`; it writes train + test + test_balanced, 1.2 N films, and the
tables count every film it wrote) is audited end to end as a user would audit a dataset on
disk: `medxai audit --root PHANTOM`, with one process and, for 2 ranks, under
`python -m torch.distributed.run --standalone --nproc-per-node 2 -m medxai audit ...`
(docs/audit.md, "Many processes or machines"). The model is modest and stated in the
results: covidnet-s at a 128-px input for 2 epochs (trained twice: the baseline and the
retraining on the cleaned films), Grad-CAM on 1 film per class.

Measured per run: each stage's seconds (audit.json "timings"), the launcher's wall seconds,
and the peak resident memory of the whole process tree (the launcher and every descendant,
their RSS summed, sampled from /proc every 0.5 s; a page shared by processes counts in
each, so 2 ranks read high), and of it the anonymous memory (RssAnon: what the processes
hold, without shared libraries and the pages of mapped files, which the system drops when
it needs the room), overall and per stage, both. Reported: seconds and seconds per
film per stage, each stage's growth exponent k in cost ∝ n^k (least squares on log-log over
the sizes, its points in the row), peak memory and its growth between consecutive sizes,
the 2-rank/1-rank speed-up of the cleaning stage, and each stage projected to 30,530 films
(COVIDx v9A) from its fitted curve.

Phantoms and audits are cached under --work per (N, size) and per (N, ranks): an interrupted
benchmark resumes, and the audit itself resumes from its OUT (a resumed run's memory covers
only its resumed part, and the table says so). Run it alone on the machine: other work
inflates every timing, and the 2-rank speed-up with it.

    .venv/bin/python benchmarks/bench_scale.py [--films 1000,4000,16000] [--size 1024]
        [--ranks 1,2] [--epochs 2] [--image-size 128] [--device cpu] [--work DIR] [--tag TAG]
    # a trial at tiny sizes (its tag ends in _wip, which .gitignore ignores):
    .venv/bin/python benchmarks/bench_scale.py --films 48,96 --size 128 --image-size 32 \
        --epochs 1 --ranks 1,2 --work /tmp/medxai-scale-tiny --tag _tiny_wip
    # on one GPU: benchmarks/gpu/bench_scale_gpu.sh

How long the defaults take on the 2-core machine is an extrapolation, not a run of them: a
whole audit of a 1024-px phantom took 0.9-1.1 s a film on 1 rank and on 2 (2026-12-07, the
one-process cleaning with two worker processes; `--films 150,600,1200 --tag _1024px_reduced`,
the table in benchmarks/results/scale_1024px_reduced.md), so the 1-rank audits of 1,200 +
4,800 + 19,200 films take about 7 h, the 2-rank ones about as long, the phantoms about 3 h
(2-4 films/s): a day in all, and 40 GB under --work (films and masks 0.57 MB a film, each
audit's cleaned copy). With 256-px films (`--size 256`) the audit runs at 0.22 s a film:
1,440 + 4,800 + 19,200 films on 1 rank took 1.5 h, their phantoms 13 min (the table in
benchmarks/results/scale_256px_1440_19200.md). Fewer films than TRIAL at the largest size is
a reduced run, which needs a --tag so it cannot overwrite the full table.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medxai.codec import encode, read_record, write_record
from pipelines.audit import read_audit

RESULTS = Path(__file__).parent / "results"
COVIDX_V9A = 30_530  # split lines of COVIDx v9A: the first real dataset a user audits
SAMPLE_EVERY = 0.5  # seconds between two /proc samples of the process tree's memory
SPLIT_FILES = ("train.txt", "test.txt", "test_balanced.txt")
CLEANING = "clean"  # the stage whose 2-rank speed-up is reported
TRIAL = 1000  # fewer films than this at the largest size: a reduced run, which needs a --tag
MIB = 2**20


@dataclass(frozen=True)
class Settings:
    """What every audit of the benchmark runs with (stored with each run; a cached run of
    other settings is refused)."""

    size: int  # film side in pixels
    model: str
    image_size: int  # model input side
    epochs: int
    methods: str
    n_explain: int
    device: str
    seed: int

    def audit_options(self) -> list[str]:
        return [
            "--model", self.model, "--image-size", str(self.image_size),
            "--epochs", str(self.epochs), "--methods", self.methods,
            "--n-explain", str(self.n_explain), "--device", self.device, "--seed", str(self.seed),
        ]  # fmt: skip

    def describe(self) -> str:
        return (
            f"{self.size}-px phantom films; {self.model} at a {self.image_size}-px input, "
            f"{self.epochs} epoch(s) per training (baseline and retraining); {self.methods} on "
            f"{self.n_explain} film(s) per class; fused detector; device {self.device}"
        )


@dataclass(frozen=True)
class Phantom:
    """A phantom dataset on disk: its nominal size and the films each split file lists."""

    nominal: int
    root: str
    splits: dict[str, int]  # split file -> films

    @property
    def films(self) -> int:
        return sum(self.splits.values())


@dataclass(frozen=True)
class Measured:
    """One whole audit of one phantom on some ranks."""

    nominal: int
    films: int
    ranks: int
    stages: dict[str, float]  # stage -> seconds, in the audit's order (audit.json timings)
    wall: float  # the launcher's seconds, start to exit (imports and torchrun included)
    peak_rss_mib: float  # max over samples of the summed RSS of the process tree
    whole: bool  # False: the audit resumed, so the memory covers only the resumed part
    settings: Settings
    machine: str  # from audit.json's environment: cores, torch threads, the GPU
    # the same for anonymous memory only (RssAnon: what the processes hold, not the pages of
    # files mapped into memory, which the system writes back and drops when it needs them),
    # and per stage, of both; 0 and {}: not sampled (a run from before they were)
    peak_anon_mib: float = 0.0
    stage_anon_mib: dict[str, float] = field(default_factory=dict)
    stage_rss_mib: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PowerFit:
    """cost = c · n^k, fitted by least squares on (log n, log cost)."""

    k: float
    c: float
    points: tuple[tuple[int, float], ...]  # (n, cost) the fit went through

    def at(self, n: float) -> float:
        return self.c * n**self.k


def fit_power(points: Sequence[tuple[int, float]]) -> PowerFit | None:
    """The growth curve through (n, cost) points; None with fewer than two usable points
    (a cost of 0 has no logarithm and is left out)."""
    usable = tuple((n, cost) for n, cost in points if n > 0 and cost > 0)
    if len({n for n, _ in usable}) < 2:
        return None
    x = np.log([n for n, _ in usable])
    y = np.log([cost for _, cost in usable])
    k, log_c = np.polyfit(x, y, 1)
    return PowerFit(float(k), float(np.exp(log_c)), usable)


def growth(values: Sequence[float]) -> list[float]:
    """Relative change between consecutive values: 0.1 = 10% more than the one before."""
    return [b / a - 1 for a, b in zip(values, values[1:], strict=False)]


def speedup(one: Measured, many: Measured, stage: str = CLEANING) -> float:
    """How many times faster the stage ran on `many`'s ranks than on one."""
    return one.stages[stage] / many.stages[stage]


def split_counts(root: Path) -> dict[str, int]:
    return {
        name: len((root / name).read_text(encoding="utf-8").splitlines())
        for name in SPLIT_FILES
        if (root / name).is_file()
    }


def phantom(work: Path, nominal: int, size: int, seed: int) -> Phantom:
    """The phantom of `nominal` films (n-per-class nominal/3), written once under WORK; a
    killed `medxai synth` resumes on the same folder."""
    root = work / f"phantom-{nominal}-{size}px-seed{seed}"
    if not all((root / name).is_file() for name in SPLIT_FILES):  # written last, when done
        print(f"phantom of {nominal} films at {size} px → {root}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "medxai", "synth", "--out", str(root),
             "--n-per-class", str(max(1, nominal // 3)), "--size", str(size),
             "--seed", str(seed)],
            check=True,
        )  # fmt: skip
    return Phantom(nominal, str(root), split_counts(root))


def audit_command(settings: Settings, root: str, out: Path, ranks: int) -> list[str]:
    launcher = [sys.executable, "-m"]
    if ranks > 1:
        launcher += ["torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), "-m"]
    return [*launcher, "medxai", "audit", "--root", root, "--out", str(out),
            *settings.audit_options()]  # fmt: skip


def tree(pid: int) -> set[int]:
    """`pid` and all its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    members, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in members]
        members.update(children)
        frontier += children
    return members


@dataclass(frozen=True)
class Resident:
    """Bytes resident in a process tree: all of them, and the anonymous ones."""

    rss: int = 0
    anon: int = 0

    def __add__(self, other: Resident) -> Resident:
        return Resident(self.rss + other.rss, self.anon + other.anon)

    def most(self, other: Resident) -> Resident:
        return Resident(max(self.rss, other.rss), max(self.anon, other.anon))


def resident(pid: int) -> Resident:
    """VmRSS and RssAnon of one process (a vanished one is 0)."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(value.split()[0]) * 1024  # kB
    except (OSError, IndexError, ValueError):
        return Resident()
    return Resident(fields.get("VmRSS", 0), fields.get("RssAnon", 0))


def tree_resident(pid: int) -> Resident:
    """What `pid` and all its descendants hold, summed."""
    return sum((resident(member) for member in tree(pid)), Resident())


def running_stage(out: Path) -> str:
    """The last stage the audit under OUT finished ("" before the first): the one running is
    the next in the audit's order."""
    done = sorted((p.stat().st_mtime, p.stem) for p in (out / "stages").glob("*.json"))
    return done[-1][1] if done else ""


def run_sampled(command: list[str], log: Path, out: Path) -> tuple[int, float, Resident, dict]:
    """Run `command` (output to `log`); its exit code, wall seconds, peak tree memory and peak
    tree memory by the stage finished last before the sample (see `running_stage`)."""
    peak, by_stage = [Resident()], {}
    with open(log, "ab") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_EVERY):
                now, stage = tree_resident(process.pid), running_stage(out)
                peak[0] = peak[0].most(now)
                by_stage[stage] = by_stage.get(stage, Resident()).most(now)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
    return code, wall, peak[0], by_stage


def stage_peaks(
    by_finished: dict[str, Resident], stages: Sequence[str], kind: str = "anon"
) -> dict[str, float]:
    """Peak MiB of `kind` ("anon" or "rss") per stage, from peaks keyed by the stage finished
    before (the samples after the last stage, while the process exits, count to it)."""
    running = dict(zip(["", *stages], [*stages, stages[-1]], strict=True)) if stages else {}
    out: dict[str, float] = {}
    for finished, memory in by_finished.items():
        if finished in running:
            stage = running[finished]
            out[stage] = max(out.get(stage, 0.0), getattr(memory, kind) / MIB)
    return {stage: out[stage] for stage in stages if stage in out}


def run_name(nominal: int, settings: Settings, ranks: int) -> str:
    return f"audit-{nominal}-{settings.size}px-{ranks}rank-{settings.device}"


def cached(work: Path, nominal: int, settings: Settings, ranks: int) -> Measured | None:
    """The audit of the phantom of `nominal` films on `ranks` ranks, as measured before under
    WORK (None: not measured yet)."""
    record = work / f"{run_name(nominal, settings, ranks)}.json"
    if not record.is_file():
        return None
    stored = read_record(record, Measured)
    if stored.settings != settings:
        raise SystemExit(f"{record} was measured with other settings; use another --work")
    return stored


def measure(work: Path, data: Phantom, settings: Settings, ranks: int) -> Measured:
    """One whole audit of `data` on `ranks` ranks, read back from WORK when measured before."""
    stored = cached(work, data.nominal, settings, ranks)
    if stored is not None:
        return stored
    name = run_name(data.nominal, settings, ranks)
    out, record = work / name, work / f"{name}.json"
    whole = not (out / "stages").exists()
    command = audit_command(settings, data.root, out, ranks)
    print(f"{data.films} films, {ranks} rank(s): {' '.join(command)}", flush=True)
    code, wall, peak, by_stage = run_sampled(command, work / f"{name}.log", out)
    audit = out / "audit.json"
    if not audit.is_file():  # exit 3 (inconclusive verdict) still writes the audit
        raise SystemExit(f"audit failed (exit {code}); see {work / f'{name}.log'}")
    result = read_audit(audit)
    env = result.environment
    machine = (
        f"{env.cpus} cores ({cpu_model()}), {env.threads} torch threads, {env.cuda or 'no GPU'}"
    )
    stages = {stage: s for stage, s in result.timings.items() if stage != "total"}
    measured = Measured(
        data.nominal, data.films, ranks, stages, wall, peak.rss / MIB, whole, settings, machine,
        peak.anon / MIB, stage_peaks(by_stage, list(stages)),
        stage_peaks(by_stage, list(stages), "rss"),
    )  # fmt: skip
    write_record(record, measured)
    return measured


def seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def stage_table(runs: list[Measured], ranks: int, target: int = COVIDX_V9A) -> str:
    """Seconds (and per film) of each stage at each size on `ranks` ranks, its exponent and
    its projection to `target` films: along the fitted curve, and at the largest size's
    seconds per film (the curve's k below 1 at small sizes is mostly fixed costs, which a
    long extrapolation along it would keep shrinking)."""
    mine = sorted((r for r in runs if r.ranks == ranks), key=lambda r: r.films)
    stages = list(dict.fromkeys(s for r in mine for s in r.stages))
    header = [f"{r.films:,} films: s (s/film)" for r in mine]
    lines = [
        f"| stage ({ranks} rank{'s' * (ranks > 1)}) | " + " | ".join(header)
        + f" | k | {target:,} films (projected) | {target:,} films at the largest size's s/film |",
        "| --- |" + " --- |" * (len(mine) + 3),
    ]  # fmt: skip
    rows = [(s, [r.stages.get(s, 0.0) for r in mine]) for s in stages]
    rows += [("all stages", [sum(r.stages.values()) for r in mine])]
    rows += [("launcher wall", [r.wall for r in mine])]
    projected = 0.0
    for stage, costs in rows:
        fit = fit_power([(r.films, c) for r, c in zip(mine, costs, strict=True)])
        cells = [f"{seconds(c)} ({c / r.films:.2g})" for r, c in zip(mine, costs, strict=True)]
        if stage in stages and fit is not None:
            projected += fit.at(target)
        ahead = "–" if fit is None else hours(fit.at(target))
        if stage == "all stages" and fit is not None:
            ahead += f" (sum of the stages' curves: {hours(projected)})"
        k = "–" if fit is None else f"{fit.k:.2f}"
        linear = hours(costs[-1] / mine[-1].films * target)  # no fixed part, no economy of size
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {k} | {ahead} | {linear} |")
    return "\n".join(lines)


def hours(s: float) -> str:
    return f"{s:.0f} s" if s < 3600 else f"{s:.0f} s ({s / 3600:.1f} h)"


def memory_table(runs: list[Measured]) -> str:
    """Peak memory per rank count at each size: all resident pages, and the anonymous ones."""
    lines = ["| ranks | memory | peak of the process tree, MiB (films) | growth | k |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    kinds = (("resident (RSS)", "peak_rss_mib"), ("anonymous (RssAnon)", "peak_anon_mib"))
    for ranks in sorted({r.ranks for r in runs}):
        mine = sorted((r for r in runs if r.ranks == ranks), key=lambda r: r.films)
        for kind, name in kinds:
            sampled = [r for r in mine if getattr(r, name) > 0]
            if not sampled:
                continue
            values = [getattr(r, name) for r in sampled]
            peaks = [f"{v:,.0f}{'' if r.whole else '*'} ({r.films:,})"
                     for v, r in zip(values, sampled, strict=True)]  # fmt: skip
            steps = [f"{g:+.0%}" for g in growth(values)]
            fit = fit_power([(r.films, v) for v, r in zip(values, sampled, strict=True)])
            k = "–" if fit is None else f"{fit.k:.2f}"
            lines.append(
                f"| {ranks} | {kind} | {', '.join(peaks)} | {', '.join(steps) or '–'} | {k} |"
            )
    if not all(r.whole for r in runs):
        lines.append(
            "\n\\* resumed run: its memory covers only the part that ran after the resume."
        )
    return "\n".join(lines)


STAGE_MEMORY = {"anon": ("stage_anon_mib", "anonymous"), "rss": ("stage_rss_mib", "resident")}


def stage_memory_table(runs: list[Measured], ranks: int, kind: str = "anon") -> str:
    """Peak MiB of `kind` ("anon" or "rss") of each stage at each size on `ranks` ranks (runs
    that sampled it)."""
    field_name, title = STAGE_MEMORY[kind]
    mine = sorted(
        (r for r in runs if r.ranks == ranks and getattr(r, field_name)), key=lambda r: r.films
    )
    if not mine:
        return ""
    stages = list(dict.fromkeys(s for r in mine for s in r.stages))
    lines = [
        f"| stage ({ranks} rank{'s' * (ranks > 1)}): peak {title} MiB | "
        + " | ".join(f"{r.films:,} films" for r in mine) + " | growth, first to last size |",
        "| --- |" + " --- |" * (len(mine) + 1),
    ]  # fmt: skip
    for stage in stages:
        values = [getattr(r, field_name).get(stage) for r in mine]
        cells = ["–" if v is None else f"{v:,.0f}" for v in values]
        first, last = values[0], values[-1]
        change = "–" if not first or last is None or len(mine) < 2 else f"{last / first - 1:+.0%}"
        lines.append(f"| {stage} | {' | '.join(cells)} | {change} |")
    return "\n".join(lines)


def speedup_table(runs: list[Measured]) -> str:
    by = {(r.films, r.ranks): r for r in runs}
    lines = ["| films | ranks | cleaning speed-up over 1 rank | all stages |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    for (films, ranks), many in sorted(by.items()):
        one = by.get((films, 1))
        if ranks == 1 or one is None:
            continue
        total = sum(one.stages.values()) / sum(many.stages.values())
        lines.append(f"| {films:,} | {ranks} | {speedup(one, many):.2f}× | {total:.2f}× |")
    return "\n".join(lines) if len(lines) > 2 else "(no size measured on both 1 rank and more)"


def report(runs: list[Measured], settings: Settings, phantoms: list[Phantom]) -> str:
    sizes = "; ".join(
        f"N={p.nominal:,}: {p.films:,} films ({', '.join(f'{k} {v}' for k, v in p.splits.items())})"
        for p in phantoms
    )
    machines = "; ".join(sorted({f"{r.ranks} rank(s): {r.machine}" for r in runs}))
    parts = [
        f"Whole audits (`medxai audit --root PHANTOM`) on {machines}: {settings.describe()}. "
        f"Phantoms of n-per-class N/3: {sizes}. k: cost ∝ films^k, least squares on log-log "
        f"through the sizes shown; the projection to {COVIDX_V9A:,} films (COVIDx v9A) "
        "follows each row's own curve on this machine. Peak memory: the summed RSS of the "
        f"launcher and all its descendants, sampled every {SAMPLE_EVERY} s, and of it the "
        "anonymous pages (RssAnon: what the processes hold; the rest is shared libraries and "
        "the pages of files mapped into memory, which the system writes back and drops when "
        "it needs the memory; the decoded films spilled under OUT are read with positioned "
        "reads, not mapped, and count in neither). A stage's peak is over the samples taken "
        "while it ran.",
    ]
    for ranks in sorted({r.ranks for r in runs}):
        parts.append(stage_table(runs, ranks))
    parts.append(memory_table(runs))
    by_stage = (
        stage_memory_table(runs, n, kind)
        for n in sorted({r.ranks for r in runs})
        for kind in STAGE_MEMORY
    )
    parts += [table for table in by_stage if table]
    parts.append(speedup_table(runs))
    return "\n\n".join(parts) + "\n"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def write(stem: Path, runs: list[Measured], settings: Settings, phantoms: list[Phantom]) -> None:
    """After every run, so a benchmark stopped part-way keeps what it measured."""
    stem.with_suffix(".md").write_text(report(runs, settings, phantoms), encoding="utf-8")
    record = {"settings": settings, "phantoms": phantoms, "runs": runs,
              "target_films": COVIDX_V9A, "fits": fits(runs)}  # fmt: skip
    stem.with_suffix(".json").write_text(json.dumps(encode(record), indent=1) + "\n")


def fits(runs: list[Measured]) -> dict[str, dict[str, dict[str, float] | None]]:
    """ranks -> stage (and "peak_rss_mib") -> the fit's k, c and projection, None unfitted."""
    out: dict[str, dict[str, dict[str, float] | None]] = {}
    for ranks in sorted({r.ranks for r in runs}):
        mine = sorted((r for r in runs if r.ranks == ranks), key=lambda r: r.films)
        costs = {s: [(r.films, r.stages.get(s, 0.0)) for r in mine] for s in mine[-1].stages}
        costs["peak_rss_mib"] = [(r.films, r.peak_rss_mib) for r in mine]
        if all(r.peak_anon_mib > 0 for r in mine):
            costs["peak_anon_mib"] = [(r.films, r.peak_anon_mib) for r in mine]
        out[str(ranks)] = {}
        for name, points in costs.items():
            fit = fit_power(points)
            out[str(ranks)][name] = None if fit is None else {
                "k": fit.k, "c": fit.c, "projected": fit.at(COVIDX_V9A)
            }  # fmt: skip
    return out


def numbers(spec: str) -> list[int]:
    return [int(part) for part in spec.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--films", default="1000,4000,16000", help="nominal sizes N")
    parser.add_argument("--size", type=int, default=1024, help="film side in pixels")
    parser.add_argument("--ranks", default="1,2", help="rank counts to run, e.g. 1 or 1,2")
    parser.add_argument("--model", default="covidnet-s")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--methods", default="gradcam")
    parser.add_argument("--n-explain", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/medxai-scale"))
    parser.add_argument("--tag", default="")
    parser.add_argument("--report-only", action="store_true",
                        help="write the tables from the runs already measured under --work, "
                        "measuring nothing (a benchmark stopped part-way)")  # fmt: skip
    args = parser.parse_args()
    films, ranks = numbers(args.films), numbers(args.ranks)
    if max(films) < TRIAL and not args.tag:
        parser.error(
            f"fewer than {TRIAL} films is a reduced run: give it a --tag (one ending "
            "in _wip is not kept by git), so it cannot overwrite the full table"
        )
    settings = Settings(args.size, args.model, args.image_size, args.epochs, args.methods,
                        args.n_explain, args.device, args.seed)  # fmt: skip
    args.work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"scale{args.tag}"
    phantoms: list[Phantom] = []
    runs: list[Measured] = []
    for nominal in films:
        if args.report_only:
            found = [cached(args.work, nominal, settings, count) for count in ranks]
            runs += [r for r in found if r is not None]
            if any(found):
                phantoms.append(phantom(args.work, nominal, args.size, args.seed))
            continue
        data = phantom(args.work, nominal, args.size, args.seed)
        phantoms.append(data)
        for count in ranks:
            runs.append(measure(args.work, data, settings, count))
            write(stem, runs, settings, phantoms)
    if args.report_only:
        if not runs:
            raise SystemExit(f"nothing measured under {args.work} with these settings")
        write(stem, runs, settings, phantoms)
    print(report(runs, settings, phantoms))
    print(f"written {stem.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
