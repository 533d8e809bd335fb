"""`resnet-lab estimate` (results/estimate.py): the plan is the suite's, the rates are the recorded ones."""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.labruns import make_run

from resnet_lab.cli import main
from resnet_lab.results import estimate as est
from resnet_lab.results.loading import load_run, parse_run
from resnet_lab.spec.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def one_config_run(
    batches: int, load: float, train: float, other: float, rounds_extra: float, first_extra: float
) -> dict:
    """A run whose C2 benchmark (2 workers) has exact phases: per-batch rates and per-epoch overheads known by
    construction."""
    data = make_run(groups=("C2",))
    bench = data["benchmarks"][0]
    records = []
    for epoch in (1, 2, 3):
        phases = {"load_s": load * batches, "copy_s": 0.0, "train_s": train * batches, "metrics_s": 0.0}
        epoch_s = sum(phases.values()) + other + (first_extra if epoch == 1 else 0.0)
        records.append(
            {
                "epoch": epoch,
                "batches": batches,
                **phases,
                "epoch_s": epoch_s,
                "loss": 2.0,
                "top1": 0.1,
                "warmup": epoch == 1,
            }
        )
    bench["extra_info"]["epochs"] = records
    bench["stats"]["data"] = [r["epoch_s"] + rounds_extra for r in records]
    return data


def test_estimate_composes_the_recorded_rates(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps(one_config_run(batches=2, load=0.5, train=2.0, other=0.25, rounds_extra=0.125, first_extra=1.0))
    )
    args = argparse.Namespace(
        runs=[str(path)],
        preset="smoke",
        device=("cpu",),
        epochs=3,
        batches=4,
        eval_batches=None,
        c8=(),
        storage=".benchmarks",
    )
    predictions, _work = est.estimate([load_run(path)], args)
    c2 = next(p for p in predictions if p.planned.question == "C2")
    # 3 epochs x (0.25 other + 4 batches x 2.5 s + 0.125 round overhead) + 1.0 first-epoch extra
    assert c2.seconds == pytest.approx(3 * (0.25 + 4 * 2.5 + 0.125) + 1.0)
    assert "setup" in c2.notes  # this run has no test_call_s: said, not guessed
    c6 = [p for p in predictions if p.planned.question == "C6"]
    assert c6 and all(p.seconds is None and "training with" in p.missing for p in c6)  # no optimizer but sgd recorded


def test_estimate_plan_follows_the_suite():
    work = est.workload("full", ("cuda",), None, None, None, c32=4)
    assert work.epochs == PRESETS["full"].epochs and work.batches == 391 and work.full_epochs
    names = [p.name for p in est.plan(work)]
    assert "test_c6_optimizer[device=cuda-optimizer=sgd]" not in names  # served by C3's point at the C3.2 count
    assert "test_c4_workers[device=cuda-workers=one]" in names and not any("loader_only" in n for n in names)
    smoke = est.workload("smoke", ("cpu",), None, None, None, c32=4)
    assert smoke.batches == PRESETS["smoke"].max_batches and any("loader_only" in p.name for p in est.plan(smoke))


def test_estimate_plan_names_are_the_suites_test_ids():
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--lab-device",
            "cpu",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    ids = {line.split("::", 1)[1] for line in collected.splitlines() if "::" in line}
    names = {p.name for p in est.plan(est.workload("smoke", ("cpu",), None, None, None, c32=4))}
    assert names <= ids, names - ids


def test_estimate_cli_last_line_and_uninformed(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps(one_config_run(batches=2, load=0.5, train=2.0, other=0.25, rounds_extra=0.125, first_extra=1.0))
    )
    assert main(["estimate", str(path), "--preset", "smoke", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("predicted smoke preset: ") and out[-1].endswith(" s")
    assert any(
        line.startswith("not informed by the inputs") and "test_c6_optimizer[device=cpu-optimizer=adam]" in line
        for line in out
    )


def test_estimate_reads_the_committed_gpu_runs():
    runs = [load_run(p) for p in sorted((ROOT / "results").glob("*h200*/*.json"))]
    args = argparse.Namespace(
        runs=[], preset="full", device=None, epochs=None, batches=None, eval_batches=None, c8=(), storage=".benchmarks"
    )
    predictions, work = est.estimate(runs, args)
    assert work.devices == ("cuda",) and work.c32 is not None
    assert any(p.seconds for p in predictions if p.planned.question == "C3")


def test_c32_for_the_estimate_from_training_or_loader_sweeps():
    run = parse_run(Path("x.json"), copy.deepcopy(make_run(groups=("C3", "C3-loader"))))
    assert est.c32_from([run], full_epochs=False) == run.lab["c3_2"]["workers"]
    trained = make_run(groups=("C3",), record_c32=False)
    for b in trained["benchmarks"]:
        b["extra_info"]["full_epoch"] = True
    loads = {
        b["params"]["workers"]: sum(r["load_s"] for r in b["extra_info"]["epochs"]) / 2 for b in trained["benchmarks"]
    }
    best = min(loads.values())
    expected = min(w for w, t in loads.items() if t <= best * 1.10)
    assert est.c32_from([parse_run(Path("y.json"), trained)], full_epochs=True) == expected


def test_a_group_no_planner_times_is_named_as_not_predicted(monkeypatch):
    """A new group the suite writes and `plan` does not time is listed, not silently left out of the total."""
    assert est.not_modelled() == ("loader", "D1", "D2", "D3", "D4", "D5")
    monkeypatch.setattr(est.groups, "GROUPS", (*est.groups.GROUPS, "C9"))
    assert est.not_modelled()[-1] == "C9"
    work = est.Workload("smoke", 1, 1, 1, 1, 1, (0,), ("cpu",), None, full_epochs=False)
    assert est.render([], work)[1].endswith("loader, D1, D2, D3, D4, D5, C9")
