"""Every method says what one image's explanation will cost before it runs, in the unit the
runner counts while it runs (a forward pass 1, with its backward 3): exactly for the methods
whose passes are fixed, within a factor of 1.5 for the mask optimisers, whose line search
retries as the model answers."""

import pytest

from medxai.explain.registry import build_explainer, method_names
from medxai.explain.toy import SquareEvidenceNet, square_images

FIXED = {"gradcam", "gradcam++", "wgradcam", "gradient", "ig", "smoothgrad", "rise", "mask"}
SMALL = {"rise": {"masks": 300}, "mask": {"iterations": 30}}


@pytest.mark.parametrize(
    "method", [m for m in method_names() if not m.startswith("aop:")] + ["aop:gradcam+igos++"]
)
def test_the_estimate_is_what_the_runner_counts(method):
    model, images = SquareEvidenceNet().eval(), square_images(3)
    params = SMALL.get(method, {}) | ({"iterations": 6} if "igos" in method else {})
    explainer = build_explainer(method, resolution=8, batch_size=8, seed=0, **params)
    explainer(model, images, 1)
    measured = explainer.stats["forward_equivalents_per_image"]
    estimate = explainer.forward_equivalents()
    if method in FIXED:
        assert estimate == measured
    else:
        assert measured / 1.5 <= estimate <= measured * 1.5, (estimate, measured)


def test_the_estimate_follows_the_budget():
    few = build_explainer("rise", masks=100).forward_equivalents()
    assert build_explainer("rise", masks=400).forward_equivalents() == 4 * few
    igos = build_explainer("igos++", iterations=10).forward_equivalents()
    assert build_explainer("igos++", iterations=20).forward_equivalents() == 2 * igos
