"""The audit's cost estimate counts each stage's work from the settings and the data and
prices it with two timings; these known answers fix the counting."""

import pytest

from medxai.explain.base import GRADIENT_PASS
from medxai.explain.registry import build_explainer
from medxai.report.record import ExplainPlan
from pipelines.audit import audit_config
from pipelines.audit.cost import (
    BUDGET_SHARE,
    DONORS,
    REGION_VARIANTS,
    REPORT_SECONDS,
    STYLE_ARMS,
    Timings,
    Work,
    stage_costs,
)
from pipelines.audit.sanity import FILMS

WORK = Work(
    n_train=100, n_test=40, n_cleaned=140, n_classes=3, size=32, steps=20,
    methods={"gradcam": 3.0, "rise": 500.0},
)  # fmt: skip
PLAN = ExplainPlan(n_explain=2, sanity_films=FILMS)
TIMED = Timings(forward=1e-3, detect=0.1)


def seconds(stages) -> dict[str, float]:
    return {s.stage: s.seconds for s in stages}


def test_every_stage_is_its_work_times_its_timing():
    config = audit_config(epochs=5)
    got = seconds(stage_costs(config, WORK, TIMED, PLAN))
    fit = 5 * (90 * GRADIENT_PASS + 10) * 1e-3  # 90 films fit, 10 validate (a forward each)
    assert got["train_baseline"] == got["train_cleaned"] == pytest.approx(fit)
    assert got["explain"] == pytest.approx(6 * (3 + 500 + 2 * (2 * 20 + 2)) * 1e-3)  # per method
    assert got["sanity"] == FILMS * 2 * 503 * 1e-3
    shortcut = 40 * (3 * REGION_VARIANTS + 2 * DONORS + STYLE_ARMS + 1) * 1e-3 + 40 * 0.1
    assert got["shortcut"] == shortcut
    assert got["clean"] == pytest.approx((100 + 140) * 0.1)  # test films: the shortcut's boxes
    assert got["negative_control"] == pytest.approx(40 * (REGION_VARIANTS + 2 * DONORS + 2) * 1e-3)
    assert got["baseline_on_cleaned"] == got["evaluate_cleaned"] == 40 * 1e-3  # the test films
    read = seconds(stage_costs(config, WORK, Timings(forward=1e-3, detect=0.1, decode=2e-3), PLAN))
    assert read["evaluate_cleaned"] == pytest.approx(40 * 3e-3), "the cleaned films read from disk"
    assert got["report"] == REPORT_SECONDS


def test_training_is_priced_on_its_timed_step_and_augmentation():
    timed = Timings(forward=1e-3, detect=0.1, train_step=5e-3, augment=1e-3)
    got = seconds(stage_costs(audit_config(epochs=5), WORK, timed, PLAN))
    assert got["train_baseline"] == pytest.approx(5 * (90 * 6e-3 + 10 * 1e-3))


def test_training_reads_each_film_once_split_over_the_ranks_that_fit():
    from dataclasses import replace

    config, timed = audit_config(epochs=5), Timings(forward=1e-3, detect=0.1, decode=2e-3)
    fit = 5 * (90 * GRADIENT_PASS + 10) * 1e-3
    once = seconds(stage_costs(config, WORK, timed, PLAN))["train_baseline"]
    assert once == pytest.approx(fit + 100 * 2e-3)
    two = seconds(stage_costs(config, replace(WORK, ranks=2), timed, PLAN))["train_baseline"]
    assert two == pytest.approx(5 * (45 * GRADIENT_PASS + 10) * 1e-3 + (45 + 10) * 2e-3)


def test_a_film_is_timed_as_read_into_the_models_input(tmp_path):
    import cv2
    import numpy as np

    from medxai.data.covidx import Record
    from medxai.data.transforms import Preprocessing
    from pipelines.audit.cost import decode_seconds

    def film(name: str, side: int) -> Record:
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), np.random.default_rng(side).integers(0, 255, (side, side), np.uint8))
        return Record("p1", path.name, "normal", None, path, "test.txt", 1)

    small, large = film("small", 64), film("large", 2048)
    prep = Preprocessing(image_size=32, channels=1)
    assert 0 < decode_seconds([small] * 3, prep) < decode_seconds([large] * 3, prep)


def test_the_training_step_is_timed_on_a_copy_and_costs_more_than_a_forward_pass():
    import torch

    from pipelines.audit.cost import forward_seconds, train_step_seconds

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(32, 3),
    )  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = train_step_seconds(model, 1, 64, torch.device("cpu"))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the audit's model untouched"
    assert step > forward_seconds(model, 1, 64, torch.device("cpu"))  # + backward, AdamW


def test_the_residual_check_is_priced_on_the_share_of_films_with_text():
    from dataclasses import replace

    timed = Timings(forward=1e-3, detect=0.1, text_share=0.25)
    got = seconds(stage_costs(audit_config(), WORK, timed, PLAN))["clean"]
    assert got == pytest.approx((100 + 35) * 0.1)  # 100 not yet detected; 140 × 0.25 again
    workers = Timings(forward=1e-3, detect=0.1, text_share=0.25, cleaning=0.03, cleaning_start=5)
    got = seconds(stage_costs(audit_config(), WORK, workers, PLAN))
    assert got["clean"] == pytest.approx(5 + 135 * 0.03), "the workers' start, then their rate"
    windows = replace(workers, recheck=0.01)  # the residual check reads windows: cheaper
    got_windows = seconds(stage_costs(audit_config(), WORK, windows, PLAN))["clean"]
    assert got_windows == pytest.approx(5 + 100 * 0.03 + 35 * 0.01)
    assert got["shortcut"] == seconds(stage_costs(audit_config(), WORK, timed, PLAN))["shortcut"]


def test_forward_only_passes_are_priced_on_the_copy_and_composed_films_on_their_own():
    """The copy's timing prices evaluation, the curves, region tests, transplants and the
    passes of a method that searches on the copy (the I-GOS family); training and other
    methods keep the model's; each transplant (and style) arm also costs one composition,
    each region test two blurred baselines."""
    from dataclasses import replace

    config = audit_config(epochs=5)
    timed = Timings(forward=1e-3, detect=0.1, scoring=5e-4, compose=2e-3, blur=3e-3)
    work = replace(WORK, on_copy=frozenset({"rise"}))
    got = seconds(stage_costs(config, work, timed, PLAN))
    assert got["train_baseline"] == pytest.approx(5 * (90 * GRADIENT_PASS * 1e-3 + 10 * 5e-4))
    assert got["evaluate_baseline"] == 40 * 5e-4
    per_film = 3 * 1e-3 + 500 * 5e-4  # gradcam on the model, rise on the copy
    assert got["explain"] == pytest.approx(6 * (per_film + 2 * (2 * 20 + 2) * 5e-4))  # 2 methods
    assert got["sanity"] == pytest.approx(FILMS * 2 * per_film)
    passes = 3 * REGION_VARIANTS + 2 * DONORS + STYLE_ARMS + 1  # + the transplant's film
    composed = 2 * DONORS + STYLE_ARMS
    shortcut = 40 * (passes * 5e-4 + 0.1 + composed * 2e-3 + 3 * 2 * 3e-3)
    assert got["shortcut"] == pytest.approx(shortcut)
    negative = 40 * ((REGION_VARIANTS + 2 * DONORS + 2) * 5e-4 + 2 * DONORS * 2e-3 + 2 * 3e-3)
    assert got["negative_control"] == pytest.approx(negative)


def test_on_two_ranks_the_dealt_work_is_split_and_rank_0s_is_not():
    """Training, maps, the shortcut stage, cleaning and the negative control halve; the
    sanity check deals a method to each rank (one round: the dearer method's time); the
    evaluation and the deletion/insertion curves stay on rank 0."""
    from dataclasses import replace

    config = audit_config(epochs=5)
    one = seconds(stage_costs(config, WORK, TIMED, PLAN))
    two = seconds(stage_costs(config, replace(WORK, ranks=2), TIMED, PLAN))
    for stage in ("shortcut", "clean", "negative_control"):
        assert two[stage] == pytest.approx(one[stage] / 2), stage
    fit = 5 * (90 * GRADIENT_PASS / 2 + 10) * 1e-3  # the batches split; rank 0 validates
    assert two["train_baseline"] == two["train_cleaned"] == pytest.approx(fit)
    assert two["evaluate_baseline"] == one["evaluate_baseline"]
    curves = 6 * 2 * (2 * 20 + 2) * 1e-3  # 6 films × 2 methods, on rank 0
    assert two["explain"] == pytest.approx(6 * 503 * 1e-3 / 2 + curves)  # 2 (method, chunk)
    assert two["sanity"] == pytest.approx(FILMS * 2 * 500 * 1e-3)  # rise's rank takes longest
    three = seconds(stage_costs(config, replace(WORK, ranks=3), TIMED, PLAN))
    assert three["explain"] == pytest.approx(two["explain"]), "2 pairs keep a third rank idle"


def test_the_i_gos_family_is_priced_on_the_copy():
    from pipelines.audit.cost import Work, priced

    work = Work(**{**WORK.__dict__, "methods": dict.fromkeys(["igos++", "sigcam", "gradcam"], 0)})
    got = priced(work, PLAN, lambda plan, m: build_explainer(m))
    assert got.on_copy == {"igos++", "sigcam"} and got.methods["igos++"] > got.methods["gradcam"]


def test_coarser_curves_take_fewer_steps():
    from dataclasses import replace

    coarse = replace(PLAN, curve_per_step=60)  # 4 × the default 15 cells a step: 20 → 5 steps
    got = seconds(stage_costs(audit_config(), WORK, TIMED, coarse))["explain"]
    assert got == pytest.approx(6 * (3 + 500 + 2 * (2 * 5 + 2)) * 1e-3)


def test_a_users_model_is_not_trained_and_a_forward_only_one_gets_no_sanity_stage(tmp_path):
    from dataclasses import replace

    from medxai.models.kinds import ModelSource

    config = replace(audit_config(), model=ModelSource("onnx", "model.onnx"), retrain=False)
    got = seconds(stage_costs(config, WORK, TIMED, PLAN))
    assert "train_baseline" not in got and "train_cleaned" not in got
    assert "sanity" not in got and "negative_control" not in got
    assert "evaluate_cleaned" not in got and "baseline_on_cleaned" in got


def test_an_expensive_method_shows_in_the_explain_and_sanity_stages():
    config = audit_config()
    cheap = Work(**{**WORK.__dict__, "methods": {"gradcam": 3.0}})
    rise = build_explainer("rise").forward_equivalents()  # 4000 masks: 4000 forwards a film
    dear = Work(**{**WORK.__dict__, "methods": {"rise": rise}})
    a, b = (seconds(stage_costs(config, w, TIMED, PLAN)) for w in (cheap, dear))
    assert b["explain"] / a["explain"] > 20 and b["sanity"] / a["sanity"] > 1000


def _fit(
    budget_minutes: float, methods: dict[str, float], forward=1e-3, detect=0.1, spent=0.0,
    **work_sizes: int,
):  # fmt: skip
    from dataclasses import replace

    from pipelines.audit.cost import fit_budget, priced

    config = replace(audit_config(epochs=5), budget_minutes=budget_minutes)
    work = Work(**{**WORK.__dict__, "methods": methods, **work_sizes})
    factory = lambda plan, m: build_explainer(m, **plan.params(m))  # noqa: E731
    timed = Timings(forward, detect)
    plan = fit_budget(config, work, timed, factory, spent)
    stages = stage_costs(config, priced(work, plan, factory), timed, plan)
    total = sum(s.seconds for s in stages)
    return plan, total


def test_a_budget_cuts_the_costly_methods_first_and_fits():
    plan, total = _fit(1.5, {"rise": 4000.0, "gradcam": 3.0})  # uncut: about 2.4 minutes
    masks = plan.method_params["rise"]["masks"]
    assert 500 <= masks < 4000 and "gradcam" not in plan.method_params
    assert total <= BUDGET_SHARE * 90 and any(c.startswith("rise masks 4000 →") for c in plan.cuts)


def test_a_budget_leaves_out_what_was_spent_before_the_estimate():
    """30 s of a 1.5-minute budget gone on the data stage: the plan fits 80% of the 60 s left,
    so RISE keeps fewer masks than with the whole budget."""
    whole, _ = _fit(1.5, {"rise": 4000.0, "gradcam": 3.0})
    late, total = _fit(1.5, {"rise": 4000.0, "gradcam": 3.0}, spent=30.0)
    assert late.method_params["rise"]["masks"] < whole.method_params["rise"]["masks"]
    assert total <= BUDGET_SHARE * 60


def test_a_budget_below_what_the_verdict_needs_cuts_everything_and_says_so():
    plan, total = _fit(0.1, {"rise": 4000.0})  # training and cleaning alone take longer
    assert plan.method_params == {"rise": {"masks": 500}}
    assert plan.n_explain == 1 and plan.sanity_films == 0 and plan.verdict_films is None
    assert plan.cuts[-2] == "sanity check not run"  # 40 test films: none to sample away
    assert total > 6 and "are not cut" in plan.cuts[-1]


def test_a_budget_samples_the_verdict_films_when_the_saliency_cuts_are_not_enough():
    """4,000 test films whose verdict stages cost 31 min (0.46 s a film, the two evaluations on
    the cleaned films included): after the explained-film and sanity cuts, they are sampled
    to what fits in 80% of 10 minutes beside the 46 s the rest needs (the report's 5 s
    among them): (480 - 46) / 0.46 = 943 films."""
    from pipelines.audit.cost import VERDICT_FLOOR

    sizes = dict(forward=1e-2, detect=1e-3, n_test=4000, n_cleaned=4100)
    plan, total = _fit(10.0, {"gradcam": 3.0}, **sizes)
    assert 935 < plan.verdict_films < 955 and plan.sanity_films == 3
    assert BUDGET_SHARE * 600 - 10 < total <= BUDGET_SHARE * 600  # no film dropped needlessly
    assert plan.cuts[-1].startswith(f"verdict films 4000 → {plan.verdict_films}")
    assert plan.curve_per_step == 60 and "curves 4× coarser (60 cells a step)" in plan.cuts[-2]
    plan, _ = _fit(0.5, {"gradcam": 3.0}, **sizes)  # training and cleaning alone: 38 s
    assert plan.verdict_films == VERDICT_FLOOR and plan.sanity_films == 0
