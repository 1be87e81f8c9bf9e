"""Saliency methods behind one contract: `explainer(model, images, targets) -> (N, 1, H, W)`.

Build one with `get_explainer(name, **params)`; `method_names()` lists the names.
"""

from medxai.explain.base import Explainer
from medxai.explain.layers import find_target_layer
from medxai.explain.registry import (
    METHODS,
    get_explainer,
    method_names,
    method_parameters,
    method_summaries,
)

__all__ = [
    "METHODS",
    "Explainer",
    "find_target_layer",
    "get_explainer",
    "method_names",
    "method_parameters",
    "method_summaries",
]
