"""Model shape and layout, and the Q1-Q4 answers, against a derivation from LAB_SPEC written out here."""

import pytest
import torch
from torch import nn

from resnet_lab import resnet18
from resnet_lab.optim import make_optimizer
from resnet_lab.structure import conv_counts, final_linear_input_width, structure_report, trainable_parameters


def test_forward_shape_and_no_maxpool():
    model = resnet18()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())


def test_stem_is_3x3_stride1_no_bias():
    stem = resnet18().conv1
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding) == (
        3,
        64,
        (3, 3),
        (1, 1),
        (1, 1),
    )


def test_no_conv_has_bias_in_either_variant():
    for batch_norm in (True, False):
        convs = [m for m in resnet18(batch_norm=batch_norm).modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 20 and all(c.bias is None for c in convs)


def test_no_batch_norm_variant_has_none():
    model = resnet18(batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert trainable_parameters(model)["parameters"] == 11_164_362


def test_shortcuts_are_projections_exactly_where_shape_changes():
    model = resnet18()
    projected = [name for name, m in model.named_modules() if name.endswith("shortcut") and len(m) > 0]
    assert projected == ["layer2.0.shortcut", "layer3.0.shortcut", "layer4.0.shortcut"]
    assert conv_counts(model) == {"main_path": 17, "shortcut": 3, "all_conv2d": 20}


def test_feature_map_before_pool_is_512x4x4():
    model = resnet18().eval()
    x = torch.zeros(1, 3, 32, 32)
    feats = model.layer4(model.layer3(model.layer2(model.layer1(model.bn1(model.conv1(x))))))
    assert feats.shape == (1, 512, 4, 4)
    assert final_linear_input_width(model) == 512


def test_num_classes_and_validation():
    assert resnet18(num_classes=100)(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
    with pytest.raises(ValueError, match="num_classes"):
        resnet18(num_classes=0)


def test_final_linear_width_probe_restores_training_mode():
    model = resnet18().train()
    final_linear_input_width(model)
    assert model.training


# LAB_SPEC's architecture, written out independently of model.py.
WIDTHS, STRIDES, BLOCKS, CLASSES = (64, 128, 256, 512), (1, 2, 2, 2), 2, 10


def derived_counts(batch_norm: bool) -> dict[str, int]:
    convs = [(3, 64, 3)]  # (in, out, kernel): stem
    shortcuts = []
    cin = 64
    for width, stride in zip(WIDTHS, STRIDES, strict=True):
        for b in range(BLOCKS):
            s = stride if b == 0 else 1
            convs += [(cin, width, 3), (width, width, 3)]
            if s != 1 or cin != width:
                shortcuts.append((cin, width, 1))
            cin = width
    bn_channels = [c[1] for c in convs + shortcuts] if batch_norm else []
    params = sum(i * o * k * k for i, o, k in convs + shortcuts) + 2 * sum(bn_channels) + WIDTHS[-1] * CLASSES + CLASSES
    tensors = len(convs) + len(shortcuts) + 2 * len(bn_channels) + 2
    return {"main_path": len(convs), "shortcut": len(shortcuts), "params": params, "tensors": tensors}


@pytest.fixture(scope="module", params=["sgd", "adam"], ids=lambda o: f"optimizer={o}")
def report(request):
    model = resnet18()
    return request.param, structure_report(model, make_optimizer(request.param, model.parameters()))


def test_q1_conv_layers_both_conventions():
    counts = derived_counts(True)
    record = structure_report(m := resnet18(), make_optimizer("sgd", m.parameters()))
    assert record["conv_main_path"] == counts["main_path"] == 17
    assert record["conv_shortcut"] == counts["shortcut"] == 3
    assert record["conv_all_conv2d"] == record["conv_main_path"] + record["conv_shortcut"] == 20


def test_q2_final_linear_input_width():
    model = resnet18()
    record = structure_report(model, make_optimizer("sgd", model.parameters()))
    assert record["linear_in_features"] == WIDTHS[-1] == model.linear.in_features == 512


def test_q3_q4_parameters_and_gradients(report):
    _name, record = report
    counts = derived_counts(True)
    assert record["parameters"] == counts["params"] == 11_173_962
    assert record["gradient_elements"] == record["parameters"]
    assert record["gradient_tensors"] == counts["tensors"] == 62


def test_q3_without_batch_norm():
    model = resnet18(batch_norm=False)
    record = structure_report(model, make_optimizer("sgd", model.parameters()))
    assert record["parameters"] == derived_counts(False)["params"] == 11_164_362
    assert record["conv_all_conv2d"] == 20


def test_q4_optimizer_state(report):
    name, record = report
    per_param = {"sgd": ["momentum_buffer"], "adam": ["exp_avg", "exp_avg_sq"]}[name]
    assert record["state_tensors"] == len(per_param) * record["parameter_tensors"]
    assert record["state_elements"] == len(per_param) * record["parameters"]
    for key in per_param:
        assert record["state_by_key"][key]["elements"] == record["parameters"]
