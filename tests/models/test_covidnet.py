import pytest
import torch
from torch import nn

from medxai.models.covidnet import HEAD_UNITS, STAGE_DEPTHS, WIDTHS, COVIDNet


def expected_parameters(variant: str, in_channels: int, classes: int) -> int:
    """Parameter count worked out from the architecture description, layer by layer."""
    widths, (fc1, fc2) = WIDTHS[variant], HEAD_UNITS[variant]
    stem = widths[0] // 4 if variant == "covidnet-s" else 64
    total = 7 * 7 * in_channels * stem + 2 * stem  # conv (no bias) + batch norm
    cin = stem
    for width, depth in zip(widths, STAGE_DEPTHS, strict=True):
        total += cin * width + 2 * width  # 1×1 long-range projection
        for module in range(depth):
            c = cin if module == 0 else width
            low, high = width // 4, width // 2
            total += c * low + low * high + 9 * high + high * low + low * width  # convs
            total += 2 * (low + high + high + low + width)  # batch norms
        cin = width
    total += cin * fc1 + fc1 + fc1 * fc2 + fc2 + fc2 * classes + classes
    return total


@pytest.mark.parametrize("variant", ["covidnet-s", "covidnet-l"])
def test_shapes_and_parameter_counts(variant):
    model = COVIDNet(variant, num_classes=3, in_channels=1).eval()
    assert sum(p.numel() for p in model.parameters()) == expected_parameters(variant, 1, 3)
    with torch.no_grad():
        features = model.features(torch.zeros(2, 1, 96, 128))
        logits = model(torch.zeros(2, 1, 97, 131))
    assert features.shape == (2, WIDTHS[variant][-1], 96 // 32, 128 // 32)
    assert logits.shape == (2, 3)
    assert COVIDNet(variant, 2, 3)(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_parameter_counts_are_what_the_readme_states():
    counts = {v: sum(p.numel() for p in COVIDNet(v, 3, 1).parameters()) for v in WIDTHS}
    assert counts == {"covidnet-s": 369_835, "covidnet-l": 19_673_923}


def test_pepx_layer_sequence():
    block = COVIDNet("covidnet-s").features.stage2.blocks[0]
    layers = list(block.layers)
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU"] * 4 + ["Conv2d", "BatchNorm2d"]
    convs = [layer for layer in layers if isinstance(layer, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(1, 1), (1, 1), (3, 3), (1, 1), (1, 1)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (32, 16), (16, 32), (32, 32), (32, 16), (16, 64)
    ]  # fmt: skip
    assert convs[2].groups == 32, "the 3×3 convolution is depth-wise"
    assert convs[2].stride == (2, 2), "the first module of a later stage downsamples"


def test_each_module_reads_the_sum_of_all_earlier_outputs():
    stage = COVIDNet("covidnet-s").features.stage1.eval()
    seen_inputs, outputs = [], []

    def record(_module, args, out) -> None:
        seen_inputs.append(args[0])
        outputs.append(out)

    hooks = [block.register_forward_hook(record) for block in stage.blocks]
    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        result = stage(x)
        running = stage.shortcut(x) + outputs[0]
        for j in range(1, len(stage.blocks)):
            torch.testing.assert_close(seen_inputs[j], torch.relu(running))
            running = running + outputs[j]
    torch.testing.assert_close(result, torch.relu(running))
    for hook in hooks:
        hook.remove()
