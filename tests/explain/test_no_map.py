"""A map that is no explanation is named as such, per image, never passed off as a map."""

import csv
import math

import pytest
import torch
from torch import nn

from medxai.data.imagefolder import ImageRecord
from medxai.data.imageio import write_png
from medxai.data.transforms import Preprocessing
from medxai.explain import get_explainer
from medxai.explain.base import FLAT, NO_STEP, flat_maps, no_map_message
from medxai.explain.toy import SquareEvidenceNet, square_images
from pipelines.explain_images import explain_images, no_map_path, overlay_path
from pipelines.imagenet_eval import write_outputs


class BlindNet(nn.Module):
    """Reads its input through a convolution, then ignores it: every score is the bias's."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)) * 0)


def test_flat_maps_are_the_constant_ones():
    maps = torch.zeros(3, 1, 4, 4)
    maps[1, 0, 2, 2] = 0.5  # one pixel above the rest
    maps[2] += 0.7
    assert flat_maps(maps).tolist() == [True, False, True]


@pytest.mark.parametrize("method", ["igos++", "igos", "sigcam"])
def test_an_optimiser_that_never_moves_reports_no_step(method):
    images = square_images(2, 32)
    explainer = get_explainer(method, resolution=8, iterations=6, batch_size=16)
    explainer(BlindNet().eval(), images, torch.tensor([0, 1]))
    for note in explainer.no_map:  # a blind model scores the film and its blur alike
        assert note.startswith(NO_STEP) and "on its blurred baseline" in note
        assert note.endswith("blurring removes none of what the model uses)")
    assert explainer.stats["images_without_map"] == 2


def test_a_constant_cam_is_flat_and_a_real_map_is_not():
    images = square_images(2, 32)
    gradcam = get_explainer("gradcam", target_layer="features")
    gradcam(BlindNet().eval(), images, torch.tensor([0, 1]))
    assert gradcam.no_map == (FLAT, FLAT)
    igos = get_explainer("igos++", resolution=8, iterations=5, batch_size=32)
    igos(SquareEvidenceNet(size=32, box=(8, 8, 20, 20), pool=4).eval(), images, 1)
    assert igos.no_map == (None, None), "the known-answer model's masks move"


def test_explain_images_writes_the_reason_not_a_map_and_keeps_it_on_resume(tmp_path):
    paths = []
    for k, image in enumerate(square_images(2, 32).permute(0, 2, 3, 1).numpy()):
        paths.append(tmp_path / f"film{k}.png")
        write_png(paths[-1], ((image + 2) / 4 * 255).clip(0, 255).astype("uint8"))
    items = [ImageRecord(p, p.stem) for p in paths]
    prep = Preprocessing(image_size=32, channels=3, intensity="lite")
    out = tmp_path / "out"
    for _ in range(2):  # the second run reads the maps back
        rows = explain_images(
            BlindNet(), items, ["gradcam"], prep, out, torch.device("cpu"),
            target="0", target_layer="features",
        )  # fmt: skip
        assert [r.note for r in rows] == [no_map_message("gradcam", FLAT)] * 2
        assert all(math.isnan(r.deletion_auc) and math.isnan(r.insertion_auc) for r in rows)
        assert not overlay_path(out / "overlays", "film0", "gradcam").exists()
        assert no_map_path(out / "maps", "film0", "gradcam").read_text() == FLAT
    stored = list(csv.DictReader(open(out / "scores.csv")))
    assert stored[0]["note"] == "gradcam found no map for this image: " + FLAT


def test_the_evaluation_summary_leaves_out_and_counts_images_without_a_map(tmp_path):
    def row(image, deletion, note=""):
        return {"image": image, "label": "", "target": 0, "method": "igos++",
                "deletion_auc": deletion, "insertion_auc": 0.5, "overall": 0.5 - deletion,
                "ranking": "pixel", "note": note, "seconds": 1.0, "fractions": [0.0, 1.0],
                "deletion_curve": [1.0, 0.0], "insertion_curve": [0.0, 1.0]}  # fmt: skip

    rows = [row("a", 0.1), row("b", 0.3), row("c", math.nan, note="igos++ found no map")]
    (summary,) = write_outputs(tmp_path, rows, ["igos++"])
    assert summary["images"] == 2 and summary["no_map"] == 1
    assert summary["deletion_auc"] == pytest.approx(0.2)
    assert "| igos++ | 0.2000 | 0.5000 | 0.3000 | 2 | 1 |" in (tmp_path / "summary.md").read_text()


def test_the_sanity_check_counts_the_films_without_a_map_on_the_random_model():
    from medxai.metrics.sanity import randomisation_check

    images = square_images(2, 32)
    explainer = get_explainer("igos++", resolution=8, iterations=3, batch_size=16)
    result = randomisation_check(BlindNet().eval(), images, torch.tensor([0, 1]), explainer)
    assert all(depth.no_map == 2 for depth in result.depths)


class NoiseSwayedNet(nn.Module):
    """Class 1 = brightness above 0.5 (5x5 mean), minus a heavy price on what a 5x5 mean
    removes: smooth films score by their blob, and noise of sd 0.2 sends every film to 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gray = x.mean(1, keepdim=True)
        smooth = nn.functional.avg_pool2d(gray, 5, stride=1, padding=2, count_include_pad=False)
        evidence = torch.relu(smooth - 0.5).mean((1, 2, 3)) * 400
        rough = ((gray - smooth) ** 2).mean((1, 2, 3)) * 2000
        logit = evidence - rough - 2
        return torch.stack([torch.zeros_like(logit), logit], 1)


def test_a_model_the_noise_sways_gets_its_map_from_a_noise_free_retry():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    centres = [(10.0, 12.0), (22.0, 20.0)]
    images = torch.stack(
        [2.0 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2)) for cy, cx in centres]
    )[:, None].expand(2, 3, 32, 32)
    model = NoiseSwayedNet().eval()
    with torch.no_grad():
        noisy = model(images + 0.2 * torch.randn_like(images)).softmax(1)[:, 1]
        clean = model(images).softmax(1)[:, 1]
    assert bool((clean > 0.9).all()) and bool((noisy < 0.01).all()), "the noise sways it"
    explainer = get_explainer("igos++", resolution=8, iterations=8, batch_size=32)
    maps = explainer(model, images, 1)
    assert explainer.no_map == (None, None)
    assert explainer.stats["noise_free_retries"] == 2
    for saliency, (cy, cx) in zip(maps[:, 0], centres, strict=True):
        peak = divmod(int(saliency.argmax()), 32)
        assert abs(peak[0] - cy) <= 4 and abs(peak[1] - cx) <= 4, "the map finds the blob"


def test_a_model_the_noise_does_not_sway_runs_once():
    igos = get_explainer("igos++", resolution=8, iterations=5, batch_size=32)
    igos(SquareEvidenceNet(size=32, box=(8, 8, 20, 20), pool=4).eval(), square_images(2, 32), 1)
    assert "noise_free_retries" not in igos.stats
