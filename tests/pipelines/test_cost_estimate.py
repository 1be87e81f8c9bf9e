"""The audit's cost estimate counts each stage's work from the settings and the data and
prices it with two timings; these known answers fix the counting."""

from medxai.explain.base import GRADIENT_PASS
from medxai.explain.registry import build_explainer
from pipelines.audit import audit_config
from pipelines.audit.cost import DONORS, REGION_VARIANTS, STYLE_ARMS, Work, stage_costs
from pipelines.audit.sanity import FILMS

WORK = Work(n_train=100, n_test=40, explained=6, size=32, methods={"gradcam": 3.0, "rise": 500.0})


def seconds(stages) -> dict[str, float]:
    return {s.stage: s.seconds for s in stages}


def test_every_stage_is_its_work_times_its_timing():
    config = audit_config(epochs=5)
    got = seconds(stage_costs(config, WORK, forward=1e-3, detect=0.1))
    assert got["train_baseline"] == got["train_cleaned"] == 5 * 100 * GRADIENT_PASS * 1e-3
    assert got["explain"] == 6 * (3 + 500 + 2 * (2 * 32 + 2)) * 1e-3
    assert got["sanity"] == FILMS * 2 * 503 * 1e-3
    shortcut = 40 * (3 * REGION_VARIANTS + 2 * DONORS + STYLE_ARMS) * 1e-3 + 40 * 0.1
    assert got["shortcut"] == shortcut
    assert got["clean"] == 2 * 140 * 0.1
    assert got["negative_control"] == 40 * (REGION_VARIANTS + 2 * DONORS + 1) * 1e-3


def test_a_users_model_is_not_trained_and_a_forward_only_one_gets_no_sanity_stage(tmp_path):
    from dataclasses import replace

    from medxai.models.kinds import ModelSource

    config = replace(audit_config(), model=ModelSource("onnx", "model.onnx"), retrain=False)
    got = seconds(stage_costs(config, WORK, forward=1e-3, detect=0.1))
    assert "train_baseline" not in got and "train_cleaned" not in got
    assert "sanity" not in got and "negative_control" not in got


def test_an_expensive_method_shows_in_the_explain_and_sanity_stages():
    config = audit_config()
    cheap = Work(**{**WORK.__dict__, "methods": {"gradcam": 3.0}})
    rise = build_explainer("rise").forward_equivalents()  # 4000 masks: 4000 forwards a film
    dear = Work(**{**WORK.__dict__, "methods": {"rise": rise}})
    a, b = (seconds(stage_costs(config, w, 1e-3, 0.1)) for w in (cheap, dear))
    assert b["explain"] / a["explain"] > 20 and b["sanity"] / a["sanity"] > 1000
