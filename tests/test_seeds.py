"""--lab-seeds: the option, the runs it configures, the names it gives, and how compare, ab, estimate and report read
them."""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

import pytest

from resnet_lab.argtypes import MAX_SEED, seed_list
from resnet_lab.engine.run import RunConfig
from resnet_lab.errors import LabError
from resnet_lab.results.ab import Gated, decide
from resnet_lab.results.compare import pair_benchmarks
from resnet_lab.results.estimate import Planned, per_seed
from resnet_lab.results.loading import parse_run
from resnet_lab.results.paired import GateRule
from resnet_lab.results.report.format import Figures
from resnet_lab.results.report.seeds import section
from resnet_lab.results.runs import without_seed
from resnet_lab.spec import groups
from resnet_lab.suite.options import build_options

pytest_plugins = ["pytester"]


def options(**overrides):
    kwargs = dict(preset="smoke", data="synthetic", devices="cpu", epochs=None, batches=None, workers=None, out_dir="o")
    return build_options(**(kwargs | overrides))


# ----------------------------------------------------------------------------- the option


def test_seed_list_keeps_the_order_given():
    assert seed_list("2,0,1") == (2, 0, 1)
    assert seed_list(" 3 ") == (3,)
    assert seed_list(f"0,{MAX_SEED}") == (0, MAX_SEED)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "comma-separated list of seeds"),
        ("1,,2", "comma-separated list of seeds"),
        ("1,", "comma-separated list of seeds"),
        ("x", "not an integer"),
        ("-1", "a seed from 0 to"),
        (str(MAX_SEED + 1), "a seed from 0 to"),
        ("1,2,1", "seed 1 is given twice"),
    ],
    ids=["empty", "empty-item", "trailing-comma", "not-int", "negative", "too-large", "duplicate"],
)
def test_seed_list_refuses_bad_lists(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        seed_list(text)


def test_default_is_one_seed_and_the_base_run_unchanged():
    o = options()
    assert o.seeds == (0,) and not o.seeded
    assert o.base_config == RunConfig(
        epochs=o.epochs, max_batches=o.max_batches, eval_batches=o.eval_batches, numerics=o.numerics
    )
    assert not options(seeds=(0,)).seeded  # --lab-seeds 0 is the default spelled out


def test_a_seed_sets_the_weights_and_the_loaders_stream():
    o = options(seeds=(5, 6))
    assert o.seeded and o.seeds == (5, 6)
    assert (o.base_config.seed, o.base_config.loader.seed) == (5, 5)


@pytest.mark.parametrize(
    ("seeds", "message"),
    [((), "at least one seed"), ((1, 1), "given twice"), ((-2,), "out of range"), ((True,), "out of range")],
)
def test_build_options_refuses_bad_seeds(seeds, message):
    with pytest.raises(LabError, match=message):
        options(seeds=seeds)


def test_training_benchmarks_get_a_seed_param_and_the_others_do_not(pytester):
    pytester.makeconftest(
        "from resnet_lab.suite.session import *  # noqa: F401,F403\npytest_plugins = ['resnet_lab.suite.plugin']\n"
    )
    pytester.makepyfile(
        test_b="""
import pytest
from resnet_lab.spec import groups

@pytest.mark.benchmark(group=groups.C6)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"], ids=lambda o: f"optimizer={o}")
def test_train(device, optimizer, lab_options):
    print("SEED", lab_options.seed, lab_options.base_config.seed, lab_options.base_config.loader.seed)

@pytest.mark.benchmark(group=groups.LOADER)
def test_loader(lab_options):
    pass
"""
    )
    result = pytester.runpytest("--collect-only", "-q", "--lab-device", "cpu", "--lab-seeds", "3,1")
    ids = [line for line in result.outlines if "::" in line]
    assert ids == [
        "test_b.py::test_train[device=cpu-optimizer=sgd-seed=3]",
        "test_b.py::test_train[device=cpu-optimizer=sgd-seed=1]",
        "test_b.py::test_train[device=cpu-optimizer=adam-seed=3]",
        "test_b.py::test_train[device=cpu-optimizer=adam-seed=1]",
        "test_b.py::test_loader",
    ]
    result = pytester.runpytest("-q", "-s", "-k", "sgd", "--lab-device", "cpu", "--lab-seeds", "3,1")
    assert re.findall(r"SEED \d+ \d+ \d+", result.stdout.str()) == [
        "SEED 3 3 3",
        "SEED 1 1 1",
    ]  # -s: prints share lines with the dots
    default = pytester.runpytest("--collect-only", "-q", "--lab-device", "cpu")
    assert "test_b.py::test_train[device=cpu-optimizer=sgd]" in default.outlines  # names as before without --lab-seeds
    bad = pytester.runpytest("--collect-only", "--lab-seeds", "1,1")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert any("seed 1 is given twice" in line for line in bad.errlines)


# ----------------------------------------------------------------------------- reading seeded runs


def bench(
    name: str, group: str = groups.C6, seed: int | None = None, losses=(2.0, 1.5), top1=(0.3, 0.5), train_s=(1.0, 1.0)
) -> dict:
    params = {"device": "cpu", "optimizer": "sgd"}
    if seed is not None:
        params["seed"] = seed
        name = f"{name[:-1]}-seed={seed}]"
    epochs = [
        {"epoch": i + 1, "loss": loss, "top1": t, "train_s": s, "warmup": i == 0}
        for i, (loss, t, s) in enumerate(zip(losses, top1, train_s, strict=True))
    ]
    return {
        "group": group,
        "name": name,
        "fullname": f"benchmarks/test_c6_optimizers.py::{name}",
        "params": params,
        "stats": {"median": 1.0, "data": [1.0, 1.0]},
        "extra_info": {"epochs": epochs, "loss": losses[-1], "top1": top1[-1]},
    }


def run(*benches: dict, label: str = "r.json"):
    return parse_run(Path(label), {"machine_info": {}, "benchmarks": list(benches)}, label=label)


def test_without_seed_strips_only_the_seed_id():
    assert without_seed("b.py::t[device=cpu-seed=12]") == "b.py::t[device=cpu]"
    assert without_seed("b.py::t[device=cpu]") == "b.py::t[device=cpu]"


def test_compare_pairs_seed_with_seed_and_an_unseeded_run_with_seed_0():
    name = "test_c6_optimizer[device=cpu-optimizer=sgd]"
    seeded = run(*(bench(name, seed=s) for s in (0, 1, 2)))
    pairing = pair_benchmarks(seeded.benchmarks, run(*(bench(name, seed=s) for s in (2, 1, 0))).benchmarks)
    assert [(a.seed, b.seed) for a, b in pairing.pairs] == [(0, 0), (1, 1), (2, 2)]
    pairing = pair_benchmarks(run(bench(name)).benchmarks, seeded.benchmarks)
    assert [(a.name, b.seed) for a, b in pairing.pairs] == [(name, 0)]
    assert sorted(b.seed for b in pairing.only_new) == [1, 2]


def test_ab_takes_the_median_over_seeds_of_each_run():
    name = "test_c6_optimizer[device=cpu-optimizer=sgd]"
    gated = Gated(f"benchmarks/test_c6_optimizers.py::{name}", "train_s")
    pairs = []
    for k in range(6):  # the gate's rule needs at least 5 pairs
        base = run(*(bench(name, seed=s, train_s=(9.0, 1.0 + s + k / 10)) for s in (0, 1, 2)))
        new = run(bench(name, train_s=(9.0, 2.0 + k / 10)))  # an unseeded run: its one benchmark
        pairs.append((base, new))
    row = decide(gated, pairs, GateRule())
    assert row.base == pytest.approx([statistics.median([1.0 + s + k / 10 for s in (0, 1, 2)]) for k in range(6)])
    assert row.new == pytest.approx([2.0 + k / 10 for k in range(6)])


def test_estimate_plans_each_training_benchmark_once_per_seed():
    items = [
        Planned(groups.C6, "test_c6_optimizer[device=cpu-optimizer=adam]", "cpu"),
        Planned(groups.Q3B, "test_q3b_profile[device=cpu]", "cpu", kind="probe"),
    ]
    assert per_seed(items, None) == items and per_seed(items, (0,)) == items
    assert [p.name for p in per_seed(items, (4, 7))] == [
        "test_c6_optimizer[device=cpu-optimizer=adam-seed=4]",
        "test_c6_optimizer[device=cpu-optimizer=adam-seed=7]",
        "test_q3b_profile[device=cpu]",
    ]


def test_report_shows_the_mean_and_spread_per_epoch(tmp_path):
    name = "test_c6_optimizer[device=cpu-optimizer=sgd]"
    losses = {0: (2.0, 1.4), 1: (2.2, 1.6), 2: (2.1, 1.8)}
    seeded = run(*(bench(name, seed=s, losses=losses[s], top1=(0.30 + s / 100, 0.50 + s / 50)) for s in losses))
    figures = Figures(tmp_path)
    text = "\n".join(section([seeded], figures))
    assert f"`{name}`, seeds 0,1,2" in text
    epoch2 = [statistics.fmean(v[1] for v in losses.values()), statistics.stdev(v[1] for v in losses.values())]
    assert f"| 2 | 3 | {epoch2[0]:.4f} ± {epoch2[1]:.4f} | 52.00 ± 2.00 |" in text
    assert [p.name for p in figures.written] == ["seeds-c6-1.png"] and figures.written[0].stat().st_size > 0
    assert f"]({figures.written[0].name})" in text
    assert section([run(bench(name))], Figures(tmp_path)) == []  # no seeds: no section, the sheet reads as before
