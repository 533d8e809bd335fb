"""Model shape and layout against LAB_SPEC (counts asserted in benchmarks/test_q_structure.py too)."""

import pytest
import torch
from torch import nn

from resnet_lab import resnet18
from resnet_lab.structure import conv_counts, final_linear_input_width, trainable_parameters


def test_forward_shape_and_no_maxpool():
    model = resnet18()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())


def test_stem_is_3x3_stride1_no_bias():
    stem = resnet18().conv1
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding) == (3, 64, (3, 3), (1, 1), (1, 1))


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
