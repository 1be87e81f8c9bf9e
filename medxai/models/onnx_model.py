"""An ONNX classifier run by ONNX Runtime, as a forward-only nn.Module (the `onnx` kind)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medxai.errors import MedxaiError, first_line

_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
               "tensor(double)": np.float64}  # fmt: skip


def _providers(device: torch.device) -> list[str]:
    import onnxruntime as ort

    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session(path: Path, device: torch.device):
    import onnxruntime as ort

    if not path.is_file():
        raise MedxaiError(f"{path}: ONNX file not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # share the cores as torch does
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=_providers(device))
    except Exception as err:  # ONNX Runtime raises its own types for corrupt or foreign files
        raise MedxaiError(f"{path}: not a readable ONNX model ({first_line(err)})") from err


class OnnxClassifier(nn.Module):
    """An ONNX classifier as a forward-only nn.Module (ONNX Runtime; no parameters, no
    autograd): forward(x) runs the session on x's values and returns float scores on x's
    device. A batch dimension fixed in the file is served in chunks of that size (the last
    one padded)."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.path = Path(path)
        self.session = _session(self.path, torch.device(device))
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [tuple(i.shape) for i in inputs]
            raise MedxaiError(
                f"{self.path}: expected one (batch, channels, height, width) input, got {shapes}"
            )
        self.input_name = inputs[0].name
        self.input_shape = tuple(
            d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape
        )
        if inputs[0].type not in _ONNX_TYPES:
            raise MedxaiError(f"{self.path}: input type {inputs[0].type} is not a float tensor")
        self.input_type = _ONNX_TYPES[inputs[0].type]
        self.provider = self.session.get_providers()[0]

    def __deepcopy__(self, memo: dict) -> OnnxClassifier:
        """A copy sharing the session (no forward changes it; it cannot be copied)."""
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            clone.__dict__[key] = value if key == "session" else copy.deepcopy(value, memo)
        return clone

    def _run(self, array: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self.session.run(None, {self.input_name: array})[0])
        except Exception as err:  # shape or type refused by the model
            raise MedxaiError(
                f"{self.path}: ONNX Runtime failed on a {array.shape} batch ({first_line(err)})"
            ) from err

    def _run_fixed(self, array: np.ndarray, batch: int) -> np.ndarray:
        outs = []
        for start in range(0, len(array), batch):
            part = array[start : start + batch]
            n = len(part)
            if n < batch:
                part = np.concatenate([part, np.repeat(part[-1:], batch - n, axis=0)])
            outs.append(self._run(part)[:n])
        return np.concatenate(outs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=self.input_type)
        batch = self.input_shape[0]
        out = self._run(array) if batch is None else self._run_fixed(array, batch)
        dtype = x.dtype if x.is_floating_point() else torch.float32
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=x.device, dtype=dtype)
