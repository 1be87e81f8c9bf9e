import pytest
import torch
import torchvision

from medxai.data.transforms import Preprocessing
from medxai.errors import MedxaiError
from medxai.models.checkpoint import ModelSpec, load_checkpoint, save_checkpoint
from medxai.models.zoo import MODEL_NAMES, build_model, target_layer


def test_every_model_builds_for_one_channel_and_has_its_target_layer():
    for name in ("resnet18", "monai-densenet121", "covidnet-s"):
        model = build_model(name, num_classes=3, in_channels=1).eval()
        with torch.no_grad():
            assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 3)
        assert model.get_submodule(target_layer(name)) is not None
    assert {"resnet50", "densenet121", "covidnet-l"} <= set(MODEL_NAMES)
    with pytest.raises(MedxaiError, match="unknown model 'vit'; choose one of"):
        build_model("vit", 3)


def test_imagenet_style_weights_load_and_first_conv_is_averaged(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None)  # stands in for ImageNet weights
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = build_model("resnet18", num_classes=3, in_channels=1, weights=path)
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight.mean(1, keepdim=True))
    torch.testing.assert_close(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert model.fc.out_features == 3, "the 1000-class head is replaced, not loaded"
    rgb = build_model("resnet18", num_classes=1000, in_channels=3, weights=path)
    torch.testing.assert_close(rgb.fc.weight, source.fc.weight)


def test_foreign_corrupt_and_missing_weights_are_clear_errors(tmp_path):
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "r50.pth")
    with pytest.raises(MedxaiError, match="do not fit this architecture"):
        build_model("resnet18", 3, weights=tmp_path / "r50.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a zip file at all")
    with pytest.raises(MedxaiError, match="junk.pth: not a readable PyTorch weights file"):
        build_model("resnet18", 3, weights=tmp_path / "junk.pth")
    with pytest.raises(MedxaiError, match="weights file not found"):
        build_model("resnet18", 3, weights=tmp_path / "absent.pth")


def spec(classes=("normal", "pneumonia", "COVID-19")) -> ModelSpec:
    return ModelSpec("covidnet-s", classes, Preprocessing(image_size=48, channels=1))


def test_checkpoint_round_trip_reproduces_predictions(tmp_path):
    model = spec().build().eval()
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        before = model(x)
    save_checkpoint(tmp_path / "model.pt", model, spec(), epoch=4)
    loaded, loaded_spec = load_checkpoint(tmp_path / "model.pt")
    assert loaded_spec == spec() and not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), before, rtol=0, atol=0)


def test_corrupt_foreign_and_mismatched_checkpoints(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, spec().build(), spec())
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(MedxaiError, match="cut.pt: corrupt or unreadable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save(spec().build().state_dict(), tmp_path / "plain.pt")
    with pytest.raises(MedxaiError, match="not a medxai checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    payload = torch.load(path, weights_only=True)
    payload["classes"] = ["negative", "positive"]
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(MedxaiError, match="weights do not match model 'covidnet-s'"):
        load_checkpoint(tmp_path / "mismatch.pt")
    with pytest.raises(MedxaiError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_head_layer_is_the_output_layer_of_every_zoo_model(name):
    from medxai.models.zoo import head_layer

    model = build_model(name, 5, 3)
    head = model.get_submodule(head_layer(name))
    assert isinstance(head, torch.nn.Linear) and head.out_features == 5
    outputs = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 5]
    assert outputs == [head], "exactly one layer makes the class scores"
