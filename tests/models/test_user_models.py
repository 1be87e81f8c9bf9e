"""The user's own model, of four kinds: checkpoint, import, TorchScript and ONNX."""

import json
import warnings

import numpy as np
import pytest
import torch
import torchvision

from medxai.data.transforms import Preprocessing, build_transforms
from medxai.errors import MedxaiError
from medxai.explain.user_model import load_user_model
from medxai.models.checkpoint import ModelSpec, load_checkpoint, save_checkpoint
from medxai.models.user_model import (
    ModelSource,
    OnnxClassifier,
    architecture_name,
    fresh_model,
    load_model,
    read_preprocessing_file,
)

SIZE = 32
PREP = Preprocessing(SIZE, 3, intensity="imagenet")
USERNET = """
import torchvision
from torch import nn


def resnet2():
    return torchvision.models.resnet18(weights=None, num_classes=2)


def tiny():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
"""


@pytest.fixture
def usernet(tmp_path, monkeypatch):
    """A user's package `usernet` with two factories, importable for the test."""
    (tmp_path / "usernet.py").write_text(USERNET)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def resnet():
    """A seeded torchvision resnet18 with 2 outputs, eval mode, and a batch of 3 images."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=2).eval()
    return model, torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def export_onnx(model, x, path, dynamic=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        axes = {"x": {0: "batch"}} if dynamic else None
        torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"], dynamic_axes=axes)
    return path


@pytest.mark.parametrize("fixed", [None, 1, 2], ids=["dynamic-batch", "batch-1", "batch-2"])
def test_onnx_resnet18_gives_the_torch_outputs(resnet, tmp_path, fixed):
    model, x = resnet
    example = x if fixed is None else x[:fixed]
    path = export_onnx(model, example, tmp_path / "r18.onnx", dynamic=fixed is None)
    loaded = load_user_model(ModelSource("onnx", str(path)), ("normal", "covid"), "cpu",
                             preprocessing=PREP)  # fmt: skip
    assert isinstance(loaded.module, OnnxClassifier)
    assert loaded.module.input_shape == (fixed, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = model(x)
    out = loaded.module(x)  # a batch of 3, even where the file fixes the batch at 1 or 2
    assert out.dtype == torch.float32 and not out.requires_grad
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)
    assert not loaded.gradients and loaded.target_layer is None and not loaded.retrainable
    assert loaded.spec.name == f"onnx:{path}" and loaded.spec.preprocessing == PREP
    assert loaded.description == (
        f"ONNX model {path}: run by ONNX Runtime (CPUExecutionProvider); input 3×32×32 "
        "(imagenet); 2 classes: normal, covid"
    )
    kept, notes = loaded.supported(["gradcam", "rise", "igos++"])
    assert kept == ["rise"]
    assert notes == ["gradcam: needs gradients; an ONNX model runs forward only",
                     "igos++: needs gradients; an ONNX model runs forward only"]  # fmt: skip


def test_onnx_fixed_input_size_must_match_the_preprocessing(resnet, tmp_path):
    model, x = resnet
    path = export_onnx(model, x, tmp_path / "r18.onnx")
    with pytest.raises(MedxaiError, match=r"takes 3×32×32 inputs but the preprocessing gives 1×64"):
        load_user_model(ModelSource("onnx", str(path)), ("a", "b"),
                        preprocessing=Preprocessing(64, 1))  # fmt: skip


def test_corrupt_or_missing_model_files_are_one_line_errors_naming_them(tmp_path, usernet):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 this is not a protobuf \xff\xfe" * 20)
    with pytest.raises(MedxaiError, match=r"bad\.onnx: not a readable ONNX model") as info:
        load_user_model(ModelSource("onnx", str(bad)), ("a", "b"), preprocessing=PREP)
    assert "\n" not in str(info.value)
    with pytest.raises(MedxaiError, match=r"absent\.onnx: ONNX file not found"):
        load_user_model(ModelSource("onnx", str(tmp_path / "absent.onnx")), ("a", "b"))
    torch.save({"w": torch.zeros(2)}, tmp_path / "state.pt")  # a state dict, not TorchScript
    with pytest.raises(MedxaiError, match=r"state\.pt: not a readable TorchScript file"):
        load_user_model(ModelSource("torchscript", str(tmp_path / "state.pt")), ("a", "b"))


def test_torchscript_traced_and_scripted_give_the_eager_outputs(resnet, tmp_path):
    model, x = resnet
    for name, make in (("traced", lambda: torch.jit.trace(model, x[:1])),
                       ("scripted", lambda: torch.jit.script(model))):  # fmt: skip
        path = tmp_path / f"{name}.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
            torch.jit.save(make(), str(path))
        loaded = load_user_model(ModelSource("torchscript", str(path)), ("a", "b"),
                                 preprocessing=PREP)  # fmt: skip
        with torch.no_grad():
            torch.testing.assert_close(loaded.module(x), model(x), rtol=0, atol=1e-5)
        assert loaded.gradients and loaded.target_layer is None and not loaded.eager
        assert loaded.description.startswith(f"TorchScript model {path}: 11,177,538 parameters")
        with pytest.raises(MedxaiError, match="runs no forward hooks"):
            loaded.with_target_layer("layer4")


def test_import_factory_with_weights_round_trip(usernet, tmp_path):
    torch.manual_seed(3)
    import usernet as package

    trained = package.tiny().eval()
    with torch.no_grad():
        trained[1].running_mean.uniform_(-1, 1)  # weights a fresh build cannot have
    torch.save(trained.state_dict(), tmp_path / "tiny.pth")
    source = ModelSource("import", "usernet:tiny", weights=tmp_path / "tiny.pth")
    loaded = load_user_model(source, ("a", "b", "c"), preprocessing=PREP)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), trained(x), rtol=0, atol=0)
    assert not loaded.module.training and loaded.gradients and loaded.eager
    assert loaded.target_layer == "1", "the automatic search: the last 4-D block (batch norm)"
    assert loaded.spec.name == "import:usernet:tiny"
    assert f"imported model usernet:tiny: 135 parameters from {tmp_path / 'tiny.pth'}" in (
        loaded.description
    )
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), tmp_path / "other.pth")
    wrong = ModelSource("import", "usernet:tiny", weights=tmp_path / "other.pth")
    message = (r"other\.pth: weights do not fit the model \(missing \['0\.bias', '0\.weight', "
               r"'1\.bias'\] …; unexpected \['bn1\.bias'")  # fmt: skip
    with pytest.raises(MedxaiError, match=message):
        load_user_model(wrong, ("a", "b", "c"), preprocessing=PREP)


def test_output_width_and_missing_classes_are_clear_errors(usernet):
    resnet2 = ModelSource("import", "usernet:resnet2")
    with pytest.raises(MedxaiError, match=r"usernet:resnet2: the model gives 2 outputs per "
                       r"image but 3 classes are named \(a, b, c\)"):  # fmt: skip
        load_user_model(resnet2, ("a", "b", "c"), preprocessing=PREP)
    with pytest.raises(MedxaiError, match=r"name its outputs in order with --classes"):
        load_user_model(resnet2, None, preprocessing=PREP)
    numbered = load_user_model(resnet2, None, preprocessing=Preprocessing(64, 3), numbered=True)
    assert numbered.spec.classes == ("0", "1") and numbered.target_layer == "layer4"
    with pytest.raises(MedxaiError, match=r"fails on a \(1, 1, 32, 32\) input"):
        load_user_model(resnet2, ("a", "b"), preprocessing=Preprocessing(SIZE, 1))
    with pytest.raises(MedxaiError, match="cannot import 'usernet:absent'"):
        load_user_model(ModelSource("import", "usernet:absent"), ("a", "b"))


def test_preprocessing_file_yaml_and_json(tmp_path, usernet):
    spec = tmp_path / "prep.yaml"
    spec.write_text("image_size: 32\nchannels: 3\nmean: [0.5, 0.25, 0.0]\nstd: [0.5, 0.25, 2]\n"
                    "classes: [normal, covid]\n")  # fmt: skip
    read = read_preprocessing_file(spec)
    assert read.classes == ("normal", "covid")
    assert read.preprocessing == Preprocessing(32, 3, intensity="custom", mean=(0.5, 0.25, 0.0),
                                               std=(0.5, 0.25, 2.0))  # fmt: skip
    loaded = load_user_model(ModelSource("import", "usernet:resnet2", preprocessing=spec), None)
    assert loaded.spec.classes == ("normal", "covid")
    assert "(mean [0.5, 0.25, 0.0], std [0.5, 0.25, 2.0])" in loaded.description
    with pytest.raises(MedxaiError, match="--classes a,b contradict .*prep.yaml's classes"):
        load_user_model(ModelSource("import", "usernet:resnet2", preprocessing=spec), ("a", "b"))
    js = tmp_path / "prep.json"
    js.write_text(json.dumps({"image_size": 48, "intensity": "unit", "resize": 56}))
    assert read_preprocessing_file(js).preprocessing == Preprocessing(48, 1, intensity="unit",
                                                                      resize=56)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image_size: 32\nsize: 3\n", r"prep\.yaml: unknown key 'size' \(expected some of image"),
        ("image_size: 32.5\n", r"prep\.yaml: image_size must be an integer"),
        ("intensity: gamma\n", r"prep\.yaml: unknown intensity 'gamma'"),
        ("intensity: imagenet\nmean: [0.5]\nstd: [0.5]\n", "mean/std go with intensity custom"),
        ("channels: 3\nmean: [0.5, 0.5]\nstd: [1]\n", "needs mean as 1 or 3 .channels. numbers"),
        ("mean: [0.5]\nstd: [0]\n", r"prep\.yaml: std must be positive"),
        ("classes: [a, a]\n", r"prep\.yaml: name two or more distinct classes"),
        ("- a list\n", r"prep\.yaml: expected a mapping of image_size"),
        ("image_size: [32\n", r"prep\.yaml: not valid YAML"),
    ],
)
def test_preprocessing_file_errors_name_the_file_and_key(tmp_path, text, message):
    (tmp_path / "prep.yaml").write_text(text)
    with pytest.raises(MedxaiError, match=message) as info:
        read_preprocessing_file(tmp_path / "prep.yaml")
    assert "\n" not in str(info.value)


def test_explicit_mean_and_std_are_applied_per_channel():
    image = np.full((3, 20, 20), 1.0, np.float32)
    prep = Preprocessing(8, 3, intensity="custom", mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = torch.as_tensor(np.asarray(build_transforms(prep)(image)))
    torch.testing.assert_close(x[:, 3, 3], torch.tensor([1.0, 3.0, 0.5]))  # (1 - m) / s
    one = Preprocessing(8, 3, intensity="custom", mean=(0.2,), std=(0.4,))  # one for all
    torch.testing.assert_close(
        torch.as_tensor(np.asarray(build_transforms(one)(image * 0)))[:, 0, 0],
        torch.full((3,), -0.5),
    )


def test_checkpoint_preprocessing_stays_backward_compatible(tmp_path):
    old = {"image_size": 48, "channels": 1, "top_crop": 0.0, "intensity": "standardize"}
    assert Preprocessing.from_dict(old) == Preprocessing(48, 1) and Preprocessing(48).to_dict() == (
        old
    )
    spec = ModelSpec("covidnet-s", ("a", "b"), Preprocessing(48, 1))
    model = spec.build()
    save_checkpoint(tmp_path / "old.pt", model, spec)
    payload = torch.load(tmp_path / "old.pt", weights_only=True)
    assert payload["preprocessing"] == old, "a checkpoint without mean/std keeps the old form"
    stats = Preprocessing(48, 1, intensity="custom", mean=(0.3,), std=(0.2,))
    custom = ModelSpec("covidnet-s", ("a", "b"), stats)
    save_checkpoint(tmp_path / "custom.pt", model, custom)
    assert load_checkpoint(tmp_path / "custom.pt")[1] == custom


def test_a_medxai_checkpoint_brings_its_classes_and_preprocessing(tmp_path):
    spec = ModelSpec("covidnet-s", ("normal", "pneumonia", "COVID-19"), Preprocessing(48, 1))
    torch.manual_seed(0)
    model = spec.build().eval()
    save_checkpoint(tmp_path / "model.pt", model, spec)
    source = ModelSource("checkpoint", str(tmp_path / "model.pt"))
    loaded = load_user_model(source, None)
    assert loaded.spec == spec and loaded.target_layer == "features.stage4" and loaded.gradients
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), model(x), rtol=0, atol=0)
    assert loaded.description.startswith(f"medxai checkpoint {tmp_path / 'model.pt'}: 369,835")
    assert load_user_model(source, spec.classes).spec == spec, "the same classes agree"
    with pytest.raises(MedxaiError, match="contradict the checkpoint's classes"):
        load_user_model(source, ("COVID-19", "normal", "pneumonia"))
    with pytest.raises(MedxaiError, match="brings its own preprocessing"):
        load_user_model(source, None, preprocessing=Preprocessing(64, 1))
    with pytest.raises(MedxaiError, match="carries its own preprocessing and classes"):
        ModelSource("checkpoint", "model.pt", preprocessing=tmp_path / "prep.yaml")
    with pytest.raises(MedxaiError, match="--weights goes with --model-import"):
        ModelSource("onnx", "m.onnx", weights=tmp_path / "w.pth")


def test_imported_architecture_retrains_and_its_checkpoint_loads_back(usernet, tmp_path):
    source = ModelSource("import", "usernet:tiny")
    assert architecture_name(source) == "import:usernet:tiny"
    torch.manual_seed(0)
    model, spec = fresh_model(source, ("a", "b", "c"), PREP)
    with torch.no_grad():
        model[-1].bias.add_(1.0)  # "trained"
    save_checkpoint(tmp_path / "model.pt", model, spec)
    loaded, loaded_spec = load_checkpoint(tmp_path / "model.pt")
    assert loaded_spec == spec
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    torch.save(model.state_dict(), tmp_path / "tiny.pth")
    with torch.no_grad():
        started = spec.build(weights=tmp_path / "tiny.pth").eval()(x)
    torch.testing.assert_close(started, model(x), rtol=0, atol=0)
    checkpoint = ModelSource("checkpoint", str(tmp_path / "model.pt"))
    assert architecture_name(checkpoint) == "import:usernet:tiny"
    assert load_user_model(checkpoint, None).target_layer == "1"
    with pytest.raises(MedxaiError, match="gives 3 outputs per image but 2 classes"):
        fresh_model(source, ("a", "b"), PREP)
    with pytest.raises(MedxaiError, match="m.onnx: cannot be retrained"):
        architecture_name(ModelSource("onnx", "m.onnx"))
    with pytest.raises(MedxaiError, match="cannot be rebuilt with fresh weights"):
        ModelSpec("torchscript:m.pt", ("a", "b"), PREP).build()


def test_the_models_level_loader_needs_no_explanation_methods(usernet):
    source = ModelSource("import", "usernet:tiny")
    model = load_model(source, ("a", "b", "c"), preprocessing=PREP)
    assert model.kind == "import" and model.gradients and model.model_kind.eager
    assert not hasattr(model, "target_layer"), "the CAM layer is medxai.explain's"
    loaded = load_user_model(source, ("a", "b", "c"), preprocessing=PREP)
    assert (loaded.spec, loaded.description) == (model.spec, model.description)
    assert loaded.target_layer == "1"
