"""One name -> class map feeds get_explainer, the CLI choices, the docs table and the tests."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from medxai.errors import MedxaiError
from medxai.explain.aop import AOP, AOP_BASES, AOP_OPTIMIZERS, SIGCAM
from medxai.explain.base import Explainer
from medxai.explain.cam import GradCAM, GradCAMPlusPlus, WGradCAM
from medxai.explain.gradients import Gradient, IntegratedGradients, SmoothGrad
from medxai.explain.igos import IGOS, IGOSPlusPlus
from medxai.explain.mask import MeaningfulPerturbation
from medxai.explain.rise import RISE

METHODS: dict[str, type[Explainer]] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "wgradcam": WGradCAM,
    "gradient": Gradient,
    "ig": IntegratedGradients,
    "smoothgrad": SmoothGrad,
    "rise": RISE,
    "mask": MeaningfulPerturbation,
    "igos": IGOS,
    "igos++": IGOSPlusPlus,
    "sigcam": SIGCAM,
}


@dataclass(frozen=True)
class Needs:
    """What a method needs of the model beyond forward passes."""

    gradients: bool  # autograd through the model (input or activation gradients)
    target_layer: bool  # a CAM layer: forward hooks on a named submodule


_CAM = Needs(gradients=True, target_layer=True)
_GRADIENT = Needs(gradients=True, target_layer=False)
METHOD_NEEDS: dict[str, Needs] = {
    "gradcam": _CAM,
    "gradcam++": _CAM,
    "wgradcam": _CAM,
    "gradient": _GRADIENT,
    "ig": _GRADIENT,
    "smoothgrad": _GRADIENT,
    "rise": Needs(gradients=False, target_layer=False),  # forward passes only
    "mask": _GRADIENT,
    "igos": _GRADIENT,
    "igos++": _GRADIENT,
    "sigcam": _CAM,  # a WGradCAM base, then I-GOS; every aop:<base>+<optimizer> alike
}


# The parameter that sets a method's cost, and the smallest value that still gives a usable map
# (RISE's paper used 4000 masks, 500 still cover a 7×7 grid many times over; the mask
# optimisers keep a few iterations of their line search; IG and SmoothGrad a few samples).
BUDGETS: dict[str, tuple[str, int]] = {
    "ig": ("steps", 10),
    "smoothgrad": ("samples", 5),
    "rise": ("masks", 500),
    "mask": ("iterations", 50),
    "igos": ("iterations", 5),
    "igos++": ("iterations", 5),
    "sigcam": ("iterations", 6),  # above its 5 warm-up iterations
}


def budget_parameter(name: str) -> tuple[str, int] | None:
    """(parameter, floor) that scales method `name`'s cost; None for the one-pass methods."""
    return ("iterations", 6) if name.startswith("aop:") else BUDGETS.get(name)


def method_needs(name: str) -> Needs:
    """What method `name` needs of the model (unknown names raise)."""
    method_parameters(name)  # the one check of the name
    return _CAM if name.startswith("aop:") else METHOD_NEEDS[name]


def supported_methods(
    methods: Iterable[str],
    gradients: bool,
    has_target_layer: bool,
    *,
    no_gradients: str = "the model runs forward only",
    no_target_layer: str = "the model has no CAM target layer",
) -> tuple[list[str], list[str]]:
    """(methods that run on a model like this, a note per method left out), in order.

    The notes read `gradcam: needs gradients; <no_gradients>` or
    `gradcam: needs a CAM target layer; <no_target_layer>`.
    """
    kept, notes = [], []
    for name in methods:
        needs = method_needs(name)
        if needs.gradients and not gradients:
            notes.append(f"{name}: needs gradients; {no_gradients}")
        elif needs.target_layer and not has_target_layer:
            notes.append(f"{name}: needs a CAM target layer; {no_target_layer}")
        else:
            kept.append(name)
    return kept, notes


def method_names(aop: bool = True) -> list[str]:
    """Every accepted method name; with aop=True also every `aop:<base>+<optimizer>`."""
    names = list(METHODS)
    if aop:
        names += [f"aop:{b}+{o}" for b in AOP_BASES for o in AOP_OPTIMIZERS]
    return names


def method_summaries() -> dict[str, str]:
    """Name -> first docstring line of its class, for the CLI help and the docs' methods table."""
    out = {name: (cls.__doc__ or "").strip().splitlines()[0] for name, cls in METHODS.items()}
    out["aop:<base>+<optimizer>"] = (AOP.__doc__ or "").strip().splitlines()[0]
    return out


def _params(cls: type) -> set[str]:
    return {
        n
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if n != "self" and p.kind is p.KEYWORD_ONLY
    }


def _parse_aop(name: str) -> tuple[str, str]:
    rest = name[4:]
    pairs = [(rest[: -len(o) - 1], o) for o in AOP_OPTIMIZERS if rest.endswith("+" + o)]
    base, optimizer = next(((b, o) for b, o in pairs if b in AOP_BASES), ("", ""))
    if not base:
        raise MedxaiError(
            f"unknown AOP method {name!r}; expected aop:<base>+<optimizer> with base in "
            f"{{{', '.join(AOP_BASES)}}} and optimizer in {{{', '.join(AOP_OPTIMIZERS)}}}"
        )
    return base, optimizer


def method_parameters(name: str) -> set[str]:
    """The keyword parameters `get_explainer(name, ...)` accepts."""
    if isinstance(name, str) and name.startswith("aop:"):
        optimizer = _parse_aop(name)[1]
        return (_params(AOP) | _params(AOP_OPTIMIZERS[optimizer])) - {"base", "optimizer"}
    if name not in METHODS:
        raise MedxaiError(
            f"unknown saliency method {name!r}; expected one of {', '.join(METHODS)} "
            "or aop:<base>+<optimizer>"
        )
    if METHODS[name] is SIGCAM:
        return (_params(AOP) | _params(IGOS)) - {"base", "optimizer"}
    return _params(METHODS[name])


def get_explainer(name: str, **params: Any) -> Explainer:
    """Builds a method by name (see `method_names()`); unknown names or parameters raise."""
    allowed = method_parameters(name)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise MedxaiError(
            f"unknown parameter(s) {', '.join(unknown)} for {name}; "
            f"expected some of {', '.join(sorted(allowed))}"
        )
    if name.startswith("aop:"):
        base, optimizer = _parse_aop(name)
        return AOP(base=base, optimizer=optimizer, **params)
    return METHODS[name](**params)


def build_explainer(
    method: str,
    resolution: int = 28,
    batch_size: int = 8,
    seed: int = 0,
    target_layer: str | None = None,
    **extra: Any,
) -> Explainer:
    """`method` with the settings the pipelines share; each goes only where it is accepted.

    The method's internal batch is at least 32; `resolution` (mask grid) and `target_layer`
    (CAM module) go to the methods that take them, and so does every `extra` parameter
    (e.g. SIGCAM/AOP's theta and lam).
    """
    accepted = method_parameters(method)
    params: dict[str, Any] = {"batch_size": max(batch_size, 32), "seed": seed}
    if "resolution" in accepted:
        params["resolution"] = resolution
    if target_layer and "target_layer" in accepted:
        params["target_layer"] = target_layer
    params.update({k: v for k, v in extra.items() if k in accepted})
    return get_explainer(method, **params)
