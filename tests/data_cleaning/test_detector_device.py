"""RapidOCR's sessions go to the GPU only when one is asked for and onnxruntime has CUDA."""

import onnxruntime

from data_cleaning.detect import make_detector, onnx_cuda, rapid_params


def test_cuda_only_when_asked_and_installed(monkeypatch):
    assert not onnx_cuda(False)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert not onnx_cuda(True), "no onnxruntime-gpu: the CPU"
    monkeypatch.setattr(
        onnxruntime, "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )  # fmt: skip
    assert onnx_cuda(True)
    assert rapid_params(320, True)["EngineConfig.onnxruntime.use_cuda"] is True
    assert rapid_params(320, False)["EngineConfig.onnxruntime.use_cuda"] is False


def test_a_gpu_request_without_cuda_still_detects_on_the_cpu():
    detector = make_detector("fused", gpu=True)
    assert detector.db.cuda == ("CUDAExecutionProvider" in onnxruntime.get_available_providers())
