"""A checkpoint is all `explain`/`evaluate` need: weights, architecture, classes, preprocessing."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from medxai.atomic import atomic_write_bytes
from medxai.data.transforms import Preprocessing
from medxai.errors import MedxaiError
from medxai.models.zoo import build_model

FORMAT = "medxai-checkpoint-1"


@dataclass(frozen=True)
class ModelSpec:
    """What it takes to rebuild a trained model and feed it images."""

    name: str
    classes: tuple[str, ...]
    preprocessing: Preprocessing

    def build(self) -> nn.Module:
        return build_model(self.name, len(self.classes), self.preprocessing.channels)


def save_checkpoint(path: str | Path, model: nn.Module, spec: ModelSpec, **extra) -> None:
    """Write `model.pt` atomically: state dict + spec (+ anything in `extra`)."""
    payload = {
        "format": FORMAT,
        "model": spec.name,
        "classes": list(spec.classes),
        "preprocessing": spec.preprocessing.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, after checking it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise MedxaiError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle error, foreign file …
        raise MedxaiError(f"{path}: corrupt or unreadable checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MedxaiError(f"{path}: not a medxai checkpoint (no {FORMAT!r} marker)")
    return payload


def load_checkpoint(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, ModelSpec]:
    """Rebuild the model in eval mode on `device`, with its spec."""
    payload = read_checkpoint(path)
    spec = ModelSpec(
        payload["model"],
        tuple(payload["classes"]),
        Preprocessing.from_dict(payload["preprocessing"]),
    )
    model = spec.build()
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise MedxaiError(f"{path}: weights do not match model {spec.name!r} ({first})") from err
    return model.to(device).eval(), spec
