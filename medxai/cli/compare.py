"""`medxai compare`: two audits side by side, with paired differences over their shared films."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from medxai.cli.common import Seed, console

RunFolder = Annotated[
    Path, typer.Argument(help="The folder of a finished audit (medxai audit --out).")
]


def compare(
    run_a: RunFolder,
    run_b: RunFolder,
    out: Annotated[
        Path | None,
        typer.Option(help="Where the page goes (default reports/compare-<A>-vs-<B>-<time>/)."),
    ] = None,
    n_bootstrap: Annotated[
        int, typer.Option(min=1, max=100_000, help="Bootstrap resamples of the paired intervals.")
    ] = 1000,
    seed: Seed = 0,
) -> None:
    """Compare two audits of one dataset (two models, or a model before and after a change):
    verdicts, reliance figures and metrics side by side, and the paired differences B − A
    over the test films both audits used. Writes OUT/index.html and OUT/comparison.json."""
    from pipelines.compare import run_compare

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = out or Path("reports") / f"compare-{run_a.name}-vs-{run_b.name}-{stamp}"
    comparison = run_compare(run_a, run_b, out, n_bootstrap, seed)
    shared = f"{comparison.n_shared} shared test films, resampled as {comparison.resampled}"
    if not comparison.same_dataset:
        shared = f"not paired: {comparison.dataset_note}"
    elif not comparison.n_shared:
        shared = "not paired: no shared test film"
    console.print(
        f"A {comparison.a.overall}, B {comparison.b.overall}; {shared}",
        highlight=False,
        soft_wrap=True,
    )
    for line in comparison.summary:
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    console.print(f"comparison {out / 'index.html'}", highlight=False, soft_wrap=True)
