"""How the cleaning scales with the machine's cores: one core, then every core as threads,
as worker processes and as torchrun ranks.

The same phantom (`medxai synth --size SIZE`, default 1024-px films) is cleaned by
`medxai clean` four ways, each into a fresh folder:

- **1 core**: one process pinned to one core (`sched_setaffinity`), one thread;
- **1 process, threads**: one process on every core's threads (`--workers 1`);
- **N workers**: one process with N single-threaded worker processes (`--workers N`), as the
  audit's cleaning runs on a CPU;
- **N ranks**: `torchrun --nproc-per-node N -m medxai clean`, each rank on its share of the
  cores (and, a rank being one core here, one worker).

(`--workers N` under N ranks is capped at a rank's share of the cores: before the cap, each
of 2 ranks ran 2 workers on the 2 cores and cleaned at 1.69× one core's rate, against 1.95×
for 2 ranks of one.)

Measured per way: the command's wall seconds (interpreter start-up, model loading and the
listing files included) and the cleaning loop's seconds (`cleaning_summary.json` → `seconds`),
films per second, and the speed-up of each over one core. Every way must write the same
cleaned files (their sha256 in the manifests are compared): a speed-up that changed the
output would not count. Run it alone on the machine.

    .venv/bin/python benchmarks/bench_cleaning_cores.py [--films 120] [--size 1024]
        [--work /tmp/medxai-cleaning-cores] [--tag TAG]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench_scale import cpu_model  # benchmarks/ is the script's folder

RESULTS = Path(__file__).parent / "results"
SPLIT_FILES = ("train.txt", "test.txt", "test_balanced.txt")


@dataclass(frozen=True)
class Way:
    name: str
    ranks: int = 1
    workers: int = 1
    one_core: bool = False


@dataclass(frozen=True)
class Timed:
    way: str
    wall_seconds: float
    loop_seconds: float
    films: int
    outputs: str  # sha256 of the sorted (source, output sha256) pairs: equal outputs, equal

    @property
    def films_per_second(self) -> float:
        return self.films / self.loop_seconds


def ways(cores: int) -> list[Way]:
    return [
        Way("1 core", one_core=True),
        Way(f"1 process, {cores} threads"),
        Way(f"{cores} workers", workers=cores),
        Way(f"{cores} ranks", ranks=cores),
    ]


def phantom(work: Path, films: int, size: int) -> Path:
    root = work / f"phantom-{films}-{size}px"
    if not all((root / name).is_file() for name in SPLIT_FILES):
        subprocess.run(
            [sys.executable, "-m", "medxai", "synth", "--out", str(root),
             "--n-per-class", str(max(1, round(films / 3 / 1.2))), "--size", str(size)],
            check=True,
        )  # fmt: skip
    return root


def command(way: Way, root: Path, out: Path) -> list[str]:
    launcher = [sys.executable, "-m"]
    if way.ranks > 1:
        launcher += [
            "torch.distributed.run", "--standalone", "--nproc-per-node", str(way.ranks), "-m",
        ]  # fmt: skip
    return [*launcher, "medxai", "clean", "--root", str(root), "--out", str(out),
            "--workers", str(way.workers), "--device", "cpu"]  # fmt: skip


def run(way: Way, root: Path, work: Path) -> Timed:
    out = work / f"clean-{way.name.replace(' ', '_').replace(',', '')}"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ)
    pin = None
    if way.one_core:
        env["OMP_NUM_THREADS"] = "1"
        pin = lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # noqa: E731
    print(f"{way.name}: {' '.join(command(way, root, out))}", flush=True)
    started = time.perf_counter()
    subprocess.run(command(way, root, out), check=True, env=env, preexec_fn=pin,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - started
    summary = json.loads((out / "cleaning_summary.json").read_text(encoding="utf-8"))
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    pairs = sorted((e["source"], e.get("output_sha256", "")) for e in entries)
    digest = hashlib.sha256(json.dumps(pairs).encode()).hexdigest()
    return Timed(way.name, wall, summary["seconds"], summary["images"], digest)


def table(runs: list[Timed]) -> str:
    base = runs[0]
    rows = [
        "| way | wall s | cleaning s | films/s | over 1 core (cleaning; wall) | same files |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        rows.append(
            f"| {r.way} | {r.wall_seconds:.1f} | {r.loop_seconds:.1f} | "
            f"{r.films_per_second:.2f} | {base.loop_seconds / r.loop_seconds:.2f}×; "
            f"{base.wall_seconds / r.wall_seconds:.2f}× | "
            f"{'yes' if r.outputs == base.outputs else 'NO'} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=120)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--work", type=Path, default=Path("/tmp/medxai-cleaning-cores"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    root = phantom(args.work, args.films, args.size)
    runs = [run(way, root, args.work) for way in ways(cores)]
    head = (
        f"# Cleaning on 1 and {cores} cores ({cpu_model()}, {cores} cores)\n\n"
        f"`medxai clean` of a phantom of {runs[0].films} films at {args.size} px, fused "
        "detector and the residual check, each way into a fresh folder, alone on the "
        f"machine ({time.strftime('%Y-%m-%d')}). Wall: the whole command; cleaning: the "
        "cleaning loop (`cleaning_summary.json` → `seconds`).\n\n"
    )
    text = head + table(runs) + "\n"
    print(text)
    stem = RESULTS / f"cleaning_cores{args.tag}"
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    timed = [{**asdict(r), "films_per_second": r.films_per_second} for r in runs]
    record = {"cpu": cpu_model(), "cores": cores, "size": args.size, "runs": timed}
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
