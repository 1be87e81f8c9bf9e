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


def test_rapidocr_runs_on_this_process_share_of_the_cores():
    """onnxruntime would take every core; a rank or a cleaning worker has torch's threads."""
    import torch

    from data_cleaning.glyphs import rapid_threads

    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            assert rapid_params(320, False)["EngineConfig.onnxruntime.intra_op_num_threads"] == n
            assert rapid_threads() == {"EngineConfig.onnxruntime.intra_op_num_threads": n}
    finally:
        torch.set_num_threads(threads)
