import pytest
import torch

from resnet_lab import resnet18
from resnet_lab.errors import LabError
from resnet_lab.optim import OPTIMIZERS, canonical_optimizer, make_optimizer


def test_registry_has_the_five():
    assert list(OPTIMIZERS) == ["sgd", "sgd-nesterov", "adagrad", "adadelta", "adam"]


@pytest.mark.parametrize(
    "name, cls, momentum",
    [
        ("sgd", torch.optim.SGD, 0.9),
        ("sgd-nesterov", torch.optim.SGD, 0.9),
        ("adagrad", torch.optim.Adagrad, None),
        ("adadelta", torch.optim.Adadelta, None),
        ("adam", torch.optim.Adam, None),
    ],
)
def test_hyperparameters(name, cls, momentum):
    opt = make_optimizer(name, resnet18().parameters())
    group = opt.param_groups[0]
    assert type(opt) is cls
    assert group["lr"] == 0.1 and group["weight_decay"] == 5e-4
    if momentum is not None:
        assert group["momentum"] == momentum
    assert group.get("nesterov", False) is (name == "sgd-nesterov")


@pytest.mark.parametrize("alias", ["nesterov", "sgd_nesterov", "SGD-Nesterov", " Nesterov "])
def test_aliases(alias):
    assert canonical_optimizer(alias) == "sgd-nesterov"


def test_unknown_lists_valid_and_suggests():
    with pytest.raises(LabError) as err:
        canonical_optimizer("adadelat")
    message = str(err.value)
    assert "did you mean 'adadelta'" in message
    assert all(name in message for name in OPTIMIZERS)


def test_unknown_without_close_match_has_no_suggestion():
    with pytest.raises(LabError, match="unknown optimizer 'zzzz'") as err:
        canonical_optimizer("zzzz")
    assert "did you mean" not in str(err.value)
