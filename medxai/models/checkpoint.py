"""A checkpoint is all `explain`/`evaluate` need: weights, architecture, classes, preprocessing.

The architecture is a zoo name or the user's `import:package.module:factory` (a model
trained from an imported factory saves and loads back like a zoo model).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from medxai.atomic import atomic_write_bytes
from medxai.data.transforms import Preprocessing
from medxai.errors import MedxaiError
from medxai.models.zoo import build_model, is_imported

FORMAT = "medxai-checkpoint-1"


@dataclass(frozen=True)
class ModelSpec:
    """What it takes to rebuild a trained model and feed it images.

    name: a zoo name, `import:package.module:factory`, or (a loaded TorchScript or ONNX
    model, which cannot be rebuilt) a description such as `onnx:FILE`.
    """

    name: str
    classes: tuple[str, ...]
    preprocessing: Preprocessing

    def build(self, weights: str | Path | None = None) -> nn.Module:
        """A fresh model of this architecture (`weights`: a state-dict file to start from).

        An imported factory fixes its own output width: one forward pass on a blank image of
        this preprocessing checks it against the classes.
        """
        if ":" in self.name and not is_imported(self.name):  # `kind:FILE` of a loaded file
            raise MedxaiError(
                f"{self.name}: a TorchScript or ONNX file cannot be rebuilt with fresh weights "
                "(retrained); give its architecture with --model-import or a medxai checkpoint"
            )
        model = build_model(self.name, len(self.classes), self.preprocessing.channels, weights)
        if is_imported(self.name):
            with eval_mode(model), torch.no_grad():
                out = forward_blank(model, self.preprocessing, self.name)
            check_width(output_width(out, self.name), self.classes, self.name)
        return model


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every module in eval mode for the block (no running statistics move); flags restored."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def blank_input(prep: Preprocessing, device: torch.device | str = "cpu") -> torch.Tensor:
    """One all-zero image of the model's input shape, (1, C, S, S)."""
    return torch.zeros(1, *prep.input_shape, device=device)


def forward_blank(
    model: nn.Module, prep: Preprocessing, source: str, x: torch.Tensor | None = None
) -> object:
    """model(x) on a blank input (or `x`), any failure turned into one line naming `source`."""
    x = blank_input(prep, next(iter(model.parameters()), torch.empty(0)).device) if x is None else x
    try:
        return model(x)
    except Exception as err:  # the user's model may raise anything
        lines = str(err).strip().splitlines() or [type(err).__name__]
        scripted = lines[0].startswith("The following operation failed in the TorchScript")
        first = lines[-1 if scripted else 0]  # TorchScript's traceback ends with the cause
        raise MedxaiError(
            f"{source}: the model fails on a {tuple(x.shape)} input ({first}); check the "
            "channels and image size of its preprocessing"
        ) from err


def output_width(out: object, source: str) -> int:
    """K of a model's (batch, K) output, or a MedxaiError naming `source`."""
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise MedxaiError(
            f"{source}: the model must return a (batch, classes) tensor of scores, got {got}"
        )
    return out.shape[1]


def check_width(width: int, classes: Sequence[str], source: str) -> None:
    """The model's output width must be the number of classes named."""
    if width != len(classes):
        raise MedxaiError(
            f"{source}: the model gives {width} outputs per image but {len(classes)} classes "
            f"are named ({', '.join(classes)}); name one class per output, in output order"
        )


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
    model = spec.build()  # an imported architecture's width is checked here
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise MedxaiError(f"{path}: weights do not match model {spec.name!r} ({first})") from err
    return model.to(device).eval(), spec
