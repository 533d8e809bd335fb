"""The epoch record's declaration (engine/phases.py) is what the loop writes and what its readers show."""

from __future__ import annotations

import torch
from torch import nn

from resnet_lab.cli.train import epoch_line, summary_line
from resnet_lab.distributed.ddp import combine_rank_records
from resnet_lab.engine import phases
from resnet_lab.engine.loop import summarize, train_one_epoch
from resnet_lab.optim import make_optimizer
from resnet_lab.results import plots
from resnet_lab.results.metrics import METRICS
from resnet_lab.suite.benchmarking import SUMMARY_KEYS, epoch_problems


def epoch(n: int = 2) -> dict[str, object]:
    batches = [(torch.randn(4, 3, 4, 4), torch.randint(0, 10, (4,))) for _ in range(n)]
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    return train_one_epoch(model, batches, make_optimizer("sgd", model.parameters()), "cpu")


def test_the_loop_writes_exactly_the_declared_keys_in_order():
    record = epoch()
    assert list(record) == [key.name for key in phases.EPOCH_KEYS]  # a CPU run: the optional CPU keys too
    assert all(isinstance(record[key], float) and record[key] >= 0 for key in phases.TIMING_KEYS)
    assert epoch_problems(record) == []


def test_a_new_phase_reaches_every_reader():
    """Each reader lists the declared phases, in the declared order, none typed again by hand."""
    keys = [phase.key for phase in phases.PHASE_LIST]
    assert [k for k in METRICS if k in keys] == keys and all(phase.cpu_key in METRICS for phase in phases.PHASE_LIST)
    assert list(plots.PHASE_NAMES)[:-1] == keys and list(plots.PHASE_COLORS)[:-1] == keys
    assert [k for k in SUMMARY_KEYS if k in keys] == keys
    records = [epoch(), epoch()]
    summary = summarize(records)
    assert set(keys) <= set(summary) and set(phases.CPU_KEYS) <= set(summary)
    for line in (epoch_line(records[0], 2), summary_line(summary)):
        assert [line.index(f" {phase.name} ") for phase in phases.PHASE_LIST] == sorted(
            line.index(f" {phase.name} ") for phase in phases.PHASE_LIST
        )
    job = combine_rank_records(records)
    assert all(set(keys) <= set(rank) for rank in job["ranks"])


def test_per_batch_phases_are_the_ones_the_check_requires_to_take_time():
    record = epoch()
    for phase in phases.PHASE_LIST:
        broken = {**record, phase.key: 0.0}
        assert bool(epoch_problems(broken)) == phase.per_batch, phase.name
