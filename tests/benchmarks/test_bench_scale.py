"""The pure parts of `benchmarks/bench_scale.py`: the growth exponent, the projection, the
growth between sizes, the speed-up and the tables, on numbers worked out by hand."""

import math
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import bench_scale as bs  # noqa: E402

SETTINGS = bs.Settings(128, "covidnet-s", 32, 1, "gradcam", 1, "cpu", 0)


def run(films: int, ranks: int, stages: dict[str, float], peak: float = 100.0) -> bs.Measured:
    wall = sum(stages.values()) + 5
    return bs.Measured(films, films, ranks, stages, wall, peak, True, SETTINGS, "2 cores")


def test_exact_power_law_gives_its_exponent_and_projection():
    fit = bs.fit_power([(10, 3 * 10**1.5), (100, 3 * 100**1.5), (1000, 3 * 1000**1.5)])
    assert fit.k == pytest.approx(1.5)
    assert fit.c == pytest.approx(3.0)
    assert fit.at(30_530) == pytest.approx(3 * 30_530**1.5)


def test_least_squares_on_log_log():
    # log2 costs 0, 2, 3 at log2 n 0, 1, 2: slope (by hand) = 1.5, intercept 1/6 (log2)
    fit = bs.fit_power([(1, 1.0), (2, 4.0), (4, 8.0)])
    assert fit.k == pytest.approx(1.5)
    assert fit.c == pytest.approx(2 ** (1 / 6))
    assert fit.points == ((1, 1.0), (2, 4.0), (4, 8.0))


def test_constant_cost_is_exponent_zero_and_too_few_points_no_fit():
    assert bs.fit_power([(1000, 7.0), (4000, 7.0), (16000, 7.0)]).k == pytest.approx(0.0)
    assert bs.fit_power([(1000, 7.0)]) is None
    assert bs.fit_power([(1000, 0.0), (4000, 7.0)]) is None  # a 0 has no logarithm
    assert bs.fit_power([(1000, 7.0), (1000, 9.0)]) is None  # one size only


def test_growth_and_speedup():
    assert bs.growth([100.0, 110.0, 121.0]) == pytest.approx([0.1, 0.1])
    assert bs.growth([50.0]) == []
    one, two = run(1200, 1, {"clean": 90.0}), run(1200, 2, {"clean": 50.0})
    assert bs.speedup(one, two) == pytest.approx(1.8)


def test_tables_project_each_stage_along_its_own_curve():
    # clean: 0.5 s per film (k = 1); explain: 4 s whatever the size (k = 0)
    runs = [run(n, 1, {"explain": 4.0, "clean": 0.5 * n}, peak=100.0 + n / 100) for n in
            (1000, 4000, 16000)]  # fmt: skip
    table = bs.stage_table(runs, 1, target=30_000)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert "| 1.00 | 15000 s (4.2 h) | 15000 s (4.2 h) |" in rows["clean"]
    assert "| 0.00 | 4 s | 8 s |" in rows["explain"]  # 4 s / 16,000 films × 30,000
    assert "500 (0.5)" in rows["clean"]  # seconds (seconds per film) at 1,000 films
    assert "sum of the stages' curves: 15004 s (4.2 h)" in rows["all stages"]
    memory = bs.memory_table(runs)
    assert "+27%, +86%" in memory  # 110 → 140 → 260 MiB
    assert "(no size measured" in bs.speedup_table(runs)


def test_cached_run_reads_back_equal(tmp_path):
    measured = run(48, 2, {"data_check": 0.25, "clean": 3.5})
    bs.write_record(tmp_path / "r.json", measured)
    assert bs.read_record(tmp_path / "r.json", bs.Measured) == measured


def test_tree_memory_counts_this_process_and_its_anonymous_pages_apart():
    import numpy as np

    before = bs.tree_resident(os.getpid())
    assert before.rss > 10 * 2**20  # pytest with numpy loaded: > 10 MiB
    assert 0 < before.anon < before.rss  # shared libraries are resident, not anonymous
    held = np.ones(64 * 2**20, np.uint8)  # 64 MiB written: anonymous
    after = bs.tree_resident(os.getpid())
    assert after.anon - before.anon > 60 * 2**20 and math.isfinite(after.rss / bs.MIB)
    del held
    assert bs.resident(2**22 + 12345) == bs.Resident()  # no such process: nothing


def test_a_sample_counts_to_the_stage_after_the_last_one_finished(tmp_path):
    stages = tmp_path / "stages"
    stages.mkdir()
    assert bs.running_stage(tmp_path) == ""
    for k, name in enumerate(("data_check", "train_baseline")):
        (stages / f"{name}.json").write_text("{}")
        os.utime(stages / f"{name}.json", (1000 + k, 1000 + k))
    assert bs.running_stage(tmp_path) == "train_baseline"
    mib = bs.MIB
    by_finished = {
        "": bs.Resident(0, 10 * mib),
        "data_check": bs.Resident(0, 30 * mib),
        "train_baseline": bs.Resident(0, 20 * mib),
        "clean": bs.Resident(0, 5 * mib),
    }
    order = ["data_check", "train_baseline", "clean"]
    # before the first: data_check; after data_check: train_baseline; after the last (exit):
    # the last, which keeps its larger peak
    assert bs.stage_peaks(by_finished, order) == {
        "data_check": 10.0, "train_baseline": 30.0, "clean": 20.0
    }  # fmt: skip
    assert bs.stage_peaks({"other": bs.Resident(0, mib)}, order) == {}
    rss = {"": bs.Resident(40 * mib, 10 * mib), "data_check": bs.Resident(60 * mib, 30 * mib)}
    assert bs.stage_peaks(rss, order, "rss") == {"data_check": 40.0, "train_baseline": 60.0}


def test_memory_tables_show_anonymous_pages_when_sampled():
    runs = [
        bs.Measured(n, n, 1, {"train": 1.0, "clean": 2.0}, 5.0, 400.0 + n / 10, True,
                    SETTINGS, "2 cores", 100.0 * (1 + (n > 1000) / 20),
                    {"train": 50.0, "clean": 60.0 + n / 100}, {"clean": 300.0 + n / 10})
        for n in (1000, 4000)
    ]  # fmt: skip
    memory = bs.memory_table(runs)
    assert "| 1 | anonymous (RssAnon) | 100 (1,000), 105 (4,000) | +5% |" in memory
    assert "| 1 | resident (RSS) | 500 (1,000), 800 (4,000) | +60% |" in memory
    by_stage = bs.stage_memory_table(runs, 1)
    assert "| clean | 70 | 100 | +43% |" in by_stage and "| train | 50 | 50 | +0% |" in by_stage
    assert bs.stage_memory_table([run(10, 1, {"clean": 1.0})], 1) == ""  # not sampled
    resident = bs.stage_memory_table(runs, 1, "rss")
    assert "peak resident MiB" in resident and "| clean | 400 | 700 | +75% |" in resident
    assert "| train | – | – | – |" in resident
    assert "anonymous" not in bs.memory_table([run(10, 1, {"clean": 1.0})])


def test_audit_command_one_process_and_torchrun():
    one = bs.audit_command(SETTINGS, "/data", Path("/out"), 1)
    assert one[1:5] == ["-m", "medxai", "audit", "--root"]
    two = bs.audit_command(SETTINGS, "/data", Path("/out"), 2)
    assert two[1:9] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        "-m", "medxai", "audit"]  # fmt: skip
    assert two[9:] == one[4:]  # the same audit options


def test_a_run_is_found_again_under_work_by_its_size_and_ranks(tmp_path):
    measured = run(180, 2, {"clean": 3.5})
    assert bs.cached(tmp_path, 180, SETTINGS, 2) is None
    bs.write_record(tmp_path / f"{bs.run_name(180, SETTINGS, 2)}.json", measured)
    assert bs.cached(tmp_path, 180, SETTINGS, 2) == measured
    assert bs.cached(tmp_path, 180, SETTINGS, 1) is None
    other = bs.Settings(256, "covidnet-s", 32, 1, "gradcam", 1, "cpu", 0)
    bs.write_record(tmp_path / f"{bs.run_name(180, other, 1)}.json", measured)  # 128-px run
    with pytest.raises(SystemExit, match="other settings"):
        bs.cached(tmp_path, 180, other, 1)
