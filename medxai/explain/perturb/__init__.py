"""The perturbation core shared by Mask, I-GOS, iGOS++, SIGCAM and the causal metrics.

Notation (as in the iGOS++ paper): image I (model-normalised), baseline B, low-resolution mask M
(a LOW value marks an IMPORTANT pixel), U(M) bilinear upsampling, Phi(A, B, M) = A*M + B*(1-M).

`ops`: blur, baseline, blend, upsampling, TV/BTV; `objective`: the integrated objective;
`search`: the batched Armijo line search; `model_copy`: the folded inference copy of the model.
"""

from medxai.explain.perturb.model_copy import faster, inference_copy
from medxai.explain.perturb.objective import Derive, IntegratedObjective, Regularizer, Term
from medxai.explain.perturb.ops import (
    blend,
    blur_kernel_for,
    blurred_baseline,
    btv,
    btv_weights,
    gaussian_blur,
    integration_alphas,
    tv,
    upsample,
)
from medxai.explain.perturb.search import LineSearch, minimize

__all__ = [
    "Derive",
    "IntegratedObjective",
    "LineSearch",
    "Regularizer",
    "Term",
    "blend",
    "blur_kernel_for",
    "blurred_baseline",
    "btv",
    "btv_weights",
    "faster",
    "gaussian_blur",
    "inference_copy",
    "integration_alphas",
    "minimize",
    "tv",
    "upsample",
]
