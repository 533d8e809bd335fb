"""Q1-Q4: structural answers measured from the module, asserted against a derivation from LAB_SPEC.

Q1 convention: `main_path` = stem + convs inside blocks (17); `all_conv2d`
= every Conv2d module, i.e. main path + 3 projection shortcuts (20).
"""

import pytest

from resnet_lab import resnet18
from resnet_lab.optim import make_optimizer
from resnet_lab.structure import structure_report

# LAB_SPEC's architecture, written out independently of model.py.
WIDTHS, STRIDES, BLOCKS, CLASSES = (64, 128, 256, 512), (1, 2, 2, 2), 2, 10


def derived_counts(batch_norm: bool) -> dict[str, int]:
    convs = [(3, 64, 3)]  # (in, out, kernel): stem
    shortcuts = []
    cin = 64
    for width, stride in zip(WIDTHS, STRIDES):
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


def test_q1_q4_record(benchmark):
    """Saves the Q1-Q4 facts into the benchmark JSON (timing one structure probe) for the answer sheet."""

    def probe():
        out = {}
        for label, batch_norm, optimizer in (("sgd", True, "sgd"), ("adam", True, "adam"), ("no_bn", False, "sgd")):
            model = resnet18(batch_norm=batch_norm)
            out[label] = structure_report(model, make_optimizer(optimizer, model.parameters()))
        return out

    benchmark.group = "Q1-Q4"
    facts = benchmark.pedantic(probe, rounds=1, iterations=1)
    assert facts["sgd"]["parameters"] == derived_counts(True)["params"]
    benchmark.extra_info.update(facts, convention="conv_main_path excludes the 1x1 projection shortcuts; conv_all_conv2d counts every Conv2d")
