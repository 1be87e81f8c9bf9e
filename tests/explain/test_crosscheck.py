"""Grad-CAM, IG (vs captum) and Grad-CAM++ / WGradCAM (vs hand-computed values) to 1e-5."""

import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import LayerGradCam
from torch import nn

from medxai.explain import get_explainer
from medxai.explain.base import minmax


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(6, 8, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def test_gradcam_equals_captum_layergradcam():
    model = SmallCNN().double().eval()
    x = torch.randn(5, 3, 24, 24, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 3, 1])
    ours = get_explainer("gradcam", target_layer="features")(model, x, t)
    theirs = LayerGradCam(model, model.features).attribute(x, target=t, relu_attributions=True)
    theirs = minmax(F.interpolate(theirs, size=(24, 24), mode="bilinear", align_corners=False))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert theirs.flatten(1).amax(1).gt(0).all()


def test_integrated_gradients_equal_captum():
    model = SmallCNN().double().eval()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    t = torch.tensor([2, 0, 1])
    exp = get_explainer("ig", steps=20, batch_size=7)
    ours = exp(model, x, t)
    attr = CaptumIG(model).attribute(x, baselines=0.0, target=t, n_steps=20, method="riemann_right")
    theirs = minmax(attr.sum(1, keepdim=True).abs())
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


class Quadratic(nn.Module):
    """A = x (identity target layer); F_1 = sum_k v_k sum_ij A_kij^2: dF/dA = 2 v_k A."""

    def __init__(self, v: torch.Tensor) -> None:
        super().__init__()
        self.feat = nn.Identity()
        self.v = v

    def forward(self, x):
        a = self.feat(x)
        f = (self.v.view(1, -1, 1, 1) * a.pow(2)).sum((1, 2, 3))
        return torch.stack([-f, f], 1)


def test_cam_variants_equal_hand_computed_case():
    v = torch.tensor([1.0, -0.5], dtype=torch.float64)
    a = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]], [[3.0, 1.0], [1.0, 0.0]]]], dtype=torch.float64)
    model = Quadratic(v)
    t = torch.tensor([1])
    g = 2 * v.view(1, 2, 1, 1) * a  # dF/dA by hand
    # Grad-CAM: w_k = mean g; WGradCAM: w_k = mean g*A; Grad-CAM++: eq. 19 of Chattopadhyay.
    w_grad = g.mean((2, 3))
    w_wgrad = (g * a).mean((2, 3))
    denom = 2 * g**2 + a.sum((2, 3), keepdim=True) * g**3
    alpha = torch.where(denom != 0, g**2 / torch.where(denom != 0, denom, 1), 0)
    w_pp = (alpha * g.clamp_min(0)).sum((2, 3))
    for name, w in [("gradcam", w_grad), ("wgradcam", w_wgrad), ("gradcam++", w_pp)]:
        cam = torch.relu((w.view(1, 2, 1, 1) * a).sum(1, keepdim=True))
        expected = minmax(F.interpolate(cam, size=(2, 2), mode="bilinear", align_corners=False))
        ours = get_explainer(name, target_layer="feat")(model, a, t)
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    # by hand: channel 1 has negative gradients, so Grad-CAM++ uses channel 0 only
    assert w_pp[0, 1] == 0 and w_pp[0, 0] > 0
