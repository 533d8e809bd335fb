"""Q1-Q4: the structural facts measured from the module, recorded for the answer sheet.

Q1 convention: `conv_main_path` = stem + convs inside blocks (17); `conv_all_conv2d` = every
Conv2d module, i.e. main path + 3 projection shortcuts (20). The figures are checked against a
derivation from LAB_SPEC in tests/test_model.py; here, against each other.
"""

import pytest

from resnet_lab import resnet18
from resnet_lab.optim import make_optimizer
from resnet_lab.spec import groups
from resnet_lab.structure import structure_report

pytestmark = pytest.mark.benchmark(group=groups.Q1_Q4)
STATE_PER_PARAMETER = {"sgd": 1, "adam": 2, "no_bn": 1}  # momentum buffer; Adam's exp_avg and exp_avg_sq


def test_q1_q4_record(benchmark):
    """Saves the Q1-Q4 facts into the benchmark JSON (timing one structure probe) for the answer sheet."""

    def probe():
        out = {}
        for label, batch_norm, optimizer in (("sgd", True, "sgd"), ("adam", True, "adam"), ("no_bn", False, "sgd")):
            model = resnet18(batch_norm=batch_norm)
            out[label] = structure_report(model, make_optimizer(optimizer, model.parameters()))
        return out

    facts = benchmark.pedantic(probe, rounds=1, iterations=1)
    for label, record in facts.items():
        assert record["conv_all_conv2d"] == record["conv_main_path"] + record["conv_shortcut"], label
        assert (
            record["gradient_elements"] == record["parameters"]
            and record["gradient_tensors"] == record["parameter_tensors"]
        ), label
        assert record["state_elements"] == STATE_PER_PARAMETER[label] * record["parameters"], label
    assert facts["no_bn"]["parameters"] < facts["sgd"]["parameters"] == facts["adam"]["parameters"]
    benchmark.extra_info.update(
        facts, convention="conv_main_path excludes the 1x1 projection shortcuts; conv_all_conv2d counts every Conv2d"
    )
