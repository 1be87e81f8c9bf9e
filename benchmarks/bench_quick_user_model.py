"""`medxai audit --quick` on a ResNet50-sized user model: does "quick" stay within 5 minutes,
and how close is the cost estimate it prints to what each stage took?

The model is torchvision's ResNet50 architecture (25.6 M parameters, 224 px, 3 channels,
ImageNet intensity) with random weights — no registry package ships ResNet50 weights, and
the cost depends on the architecture, not on the weights — passed as a user's model through
`--model-import`. The data is the quick profile's phantom (`medxai synth --n-per-class 80
--size 224`, 288 films, 96 of them test films). Random weights do not learn, so the verdict
is "not applicable"; every stage still runs at its size.

Measured: the command's wall seconds (start-up included) and peak memory (its resident set,
from the kernel's accounting of the finished child), each stage's seconds (`audit.json` →
`timings`) beside the estimate printed before the first stage (`estimate`), and what the
5-minute budget cut (`estimate.plan.cuts`). Run it alone on the machine: other work slows
every stage and the estimate's two timings with it.

    .venv/bin/python benchmarks/bench_quick_user_model.py [--work DIR] [--tag TAG]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench_scale import cpu_model  # benchmarks/ is the script's folder

RESULTS = Path(__file__).parent / "results"
FACTORY = """import torchvision


def build():
    return torchvision.models.resnet50(num_classes=3)
"""
PREPROCESSING = """image_size: 224
channels: 3
intensity: imagenet
classes: [normal, pneumonia, COVID-19]
"""
LIMIT_SECONDS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/medxai-quick-resnet50"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    (work / "r50model.py").write_text(FACTORY)
    (work / "prep.yaml").write_text(PREPROCESSING)
    data = work / "dataset"
    if not (data / "test.txt").is_file():
        medxai("synth", "--out", data, "--n-per-class", 80, "--size", 224, "--seed", 0, cwd=work)
    out = work / "audit"
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    start = time.perf_counter()
    medxai(
        "audit", "--quick", "--layout", "covidx", "--root", data, "--model-import",
        "r50model:build", "--preprocessing", "prep.yaml", "--out", out, cwd=work,
    )  # fmt: skip
    wall = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    audit = json.loads((out / "audit.json").read_text())
    result = summarise(audit, wall, peak_gb)
    print(table(result))
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"quick_resnet50{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(table(result) + "\n")


def medxai(*argv: object, cwd: Path) -> None:
    """`medxai ARGV` in `cwd`, which is put on the path (the model's factory lives there)."""
    command = [sys.executable, "-m", "medxai", *map(str, argv)]
    subprocess.run(command, cwd=cwd, check=True, env={**os.environ, "PYTHONPATH": str(cwd)})


def summarise(audit: dict, wall: float, peak_gb: float) -> dict:
    estimate = audit["estimate"]
    estimated = {s["stage"]: s["seconds"] for s in estimate["stages"]}
    timings = {k: v for k, v in audit["timings"].items() if k != "total"}
    return {
        "machine": f"{cpu_model()}, {len(os.sched_getaffinity(0))} cores",
        "wall_seconds": wall,
        "stage_seconds": sum(timings.values()),
        "within_limit": wall <= LIMIT_SECONDS,
        "peak_memory_gb": peak_gb,
        "forward_ms": 1e3 * estimate["forward_seconds"],
        "forward_copy_ms": 1e3 * (estimate.get("scoring_seconds") or estimate["forward_seconds"]),
        "estimated_seconds": sum(estimated.values()),
        "stages": {
            stage: {"took": took, "estimated": estimated.get(stage)}
            for stage, took in timings.items()
        },
        "cuts": estimate["plan"]["cuts"],
        "verdict": audit["shortcut"]["summary"],
    }


def table(r: dict) -> str:
    lines = [
        f"# `medxai audit --quick` on a ResNet50 user model ({r['machine']})",
        "",
        f"Wall {r['wall_seconds']:.0f} s with start-up ({'within' if r['within_limit'] else 'over'}"
        f" {LIMIT_SECONDS} s); stages {r['stage_seconds']:.0f} s; estimated "
        f"{r['estimated_seconds']:.0f} s; peak memory {r['peak_memory_gb']:.2f} GB; a forward "
        f"pass {r['forward_ms']:.1f} ms per image, {r['forward_copy_ms']:.1f} ms on its copy.",
        "",
        "| stage | took (s) | estimated (s) | took / estimated |",
        "|---|---:|---:|---:|",
    ]
    for stage, s in r["stages"].items():
        est = s["estimated"]
        ratio = f"{s['took'] / est:.2f}" if est else "–"
        shown = f"{est:.0f}" if est is not None else "–"
        lines.append(f"| {stage} | {s['took']:.1f} | {shown} | {ratio} |")
    lines += ["", "Cut to fit the 5-minute budget: " + "; ".join(r["cuts"]) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
