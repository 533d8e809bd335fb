"""`resnet-lab compare`: threshold grammar, the noise-aware rule, pairing, machines, exit codes, and end to end."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import textwrap

import pytest
from fixtures.labruns import make_run, stats_of, write_run

from resnet_lab import cli
from resnet_lab.results.compare import (
    CI_THRESHOLDS,
    METRICS,
    NOISE_K,
    Value,
    metric_value,
    pair_benchmarks,
    parse_threshold,
    quality_violation,
    spread,
    timing_violation,
)
from resnet_lab.results.runs import load_run, machine_id, summarize

pytest_plugins = ["pytester"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["compare", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture
def base_path(tmp_path):
    return write_run(tmp_path / "base.json", make_run(seed=0))


# ---------------------------------------------------------------------------
# --fail grammar
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, metric, stat, direction, amount, relative",
    [
        ("epoch_s:median:+15%", "epoch_s", "median", 1, 0.15, True),
        ("load_s:mean:+25%", "load_s", "mean", 1, 0.25, True),
        ("top1:-2", "top1", "last", -1, 2.0, False),
        ("train_s:0.5", "train_s", "median", 1, 0.5, False),  # no sign: the metric's bad direction
        ("top1:mean:3", "top1", "mean", -1, 3.0, False),
        ("loss:+10%", "loss", "last", 1, 0.10, True),
        ("epoch_s:min:-.5%", "epoch_s", "min", -1, 0.005, True),
    ],
)
def test_threshold_grammar(text, metric, stat, direction, amount, relative):
    t = parse_threshold(text)
    assert (t.metric.name, t.stat, t.direction, t.relative) == (metric, stat, direction, relative)
    assert t.amount == pytest.approx(amount)


@pytest.mark.parametrize(
    "text, message",
    [
        ("epoch_s", "is not METRIC"),
        ("a:b:c:d", "is not METRIC"),
        ("speed:+1", "unknown metric 'speed'"),
        ("epoch_s:p99:+1%", "unknown statistic 'p99'"),
        ("epoch_s:last:+1%", "not 'last'"),
        ("epoch_s:median:fast", "is not [+|-]NUMBER[%]"),
        ("top1:--2", "is not [+|-]NUMBER[%]"),
    ],
)
def test_threshold_grammar_errors(text, message):
    with pytest.raises(argparse.ArgumentTypeError) as exc:
        parse_threshold(text)
    assert message in str(exc.value)


def test_ci_thresholds_parse():
    assert [parse_threshold(t).text for t in CI_THRESHOLDS] == list(CI_THRESHOLDS)


# ---------------------------------------------------------------------------
# the noise-aware rule, on hand-computed numbers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "old, new, threshold, k, floor, violated, margin",
    [
        # +30% beyond +15%, spread margin 1.5 x 0.1 = 0.15 < 0.3: a regression
        (Value(1.0, 0.10, 5), Value(1.3, 0.05, 5), "epoch_s:median:+15%", 1.5, 0.05, True, 0.15),
        # same change, but the new run varies by 0.25 over its rounds: 1.5 x 0.25 = 0.375 > 0.3, noise
        (Value(1.0, 0.10, 5), Value(1.3, 0.25, 5), "epoch_s:median:+15%", 1.5, 0.05, False, 0.375),
        # +10% is inside a +15% threshold whatever the spread
        (Value(1.0, 0.0, 5), Value(1.1, 0.0, 5), "epoch_s:median:+15%", 1.5, 0.05, False, 0.0),
        # +50% of 40 ms is 20 ms: below the 50 ms floor
        (Value(0.04, 0.0, 2), Value(0.06, 0.0, 2), "load_s:median:+15%", 1.5, 0.05, False, 0.0),
        # absolute threshold in seconds
        (Value(2.0, 0.0, 2), Value(2.6, 0.0, 2), "train_s:median:+0.5", 1.5, 0.05, True, 0.0),
        # faster is never a violation of a + threshold
        (Value(2.0, 0.0, 2), Value(1.0, 0.0, 2), "train_s:median:+15%", 1.5, 0.05, False, 0.0),
    ],
)
def test_timing_rule(old, new, threshold, k, floor, violated, margin):
    got, got_margin = timing_violation(parse_threshold(threshold), old, new, k, floor)
    assert got is violated
    assert got_margin == pytest.approx(margin)


def test_phase_values_are_pytest_benchmark_statistics_over_epochs(tmp_path):
    bench = load_run(write_run(tmp_path / "three.json", make_run(seed=0, epochs=3))).group("C2")[0]
    loads = [r["load_s"] for r in bench.extra_info["epochs"]]
    value = metric_value(bench, METRICS["load_s"], "median")
    assert value.value == pytest.approx(statistics.median(loads))  # the figure: every epoch, the lab's epoch 1 included
    # The spread: epochs 2 and 3 only (IQR of two values, as pytest-benchmark computes it: max - min), not the warm-up gap.
    assert value.spread == pytest.approx(abs(loads[2] - loads[1]))
    epoch = metric_value(bench, METRICS["epoch_s"], "median")
    rounds = bench.stats["data"]
    assert epoch.value == pytest.approx(bench.stats["median"]) and epoch.spread == pytest.approx(
        abs(rounds[2] - rounds[1])
    )
    assert summarize(bench.epoch_values("epoch_s"))["median"] == pytest.approx(bench.stats["median"])
    top1 = metric_value(bench, METRICS["top1"], "last")
    assert top1.value == pytest.approx(100 * bench.extra_info["epochs"][-1]["top1"]) and top1.spread is None


def test_one_steady_round_has_no_spread(base_path):
    """Two epochs (the smoke preset): one steady round, no spread; the warm-up gap is not taken for noise."""
    bench = load_run(base_path).group("C2")[0]
    assert metric_value(bench, METRICS["load_s"], "median").spread is None
    assert metric_value(bench, METRICS["epoch_s"], "median").spread is None
    probe = load_run(base_path).group("Q1-Q4")[0]  # one round, no epoch records
    assert metric_value(probe, METRICS["epoch_s"], "median").spread is None


def test_rounds_without_epoch_records_all_count_as_steady(tmp_path):
    data = make_run(seed=0, groups=("loader",))
    rounds = [0.5, 0.75, 1.0]
    data["benchmarks"][1]["stats"] = stats_of(rounds)  # the device-resident loader's rounds
    bench = load_run(write_run(tmp_path / "loader.json", data)).benchmarks[1]
    assert (
        metric_value(bench, METRICS["epoch_s"], "median").spread
        == pytest.approx(summarize(rounds)["iqr"])
        == pytest.approx(0.375)
    )


# ---------------------------------------------------------------------------
# the command: pass, fail, machines, pairing, exit 2
# ---------------------------------------------------------------------------


def test_run_against_itself_passes(capsys, base_path):
    rc, out, err = run_cli(capsys, str(base_path), str(base_path))
    assert rc == 0, out + err
    assert "result: ok" in out and err == ""
    for metric in ("epoch_s", "load_s", "train_s", "loss", "top1"):
        assert metric in out
    assert "1.00x" in out


@pytest.mark.parametrize("phase", ["train_s", "load_s"])
def test_twice_slower_phase_fails(capsys, tmp_path, base_path, phase):
    slow = write_run(tmp_path / "slow.json", make_run(seed=1, slow={phase: 2.0}))
    rc, out, _ = run_cli(capsys, str(base_path), str(slow))
    assert rc == 1
    assert "result: FAIL" in out
    failing = [line for line in out.splitlines() if line.strip().startswith("FAIL")]
    assert any(f" {phase} " in line for line in failing), out


def test_without_steady_rounds_the_threshold_and_the_floor_decide(capsys, tmp_path, base_path):
    slow = write_run(tmp_path / "slow.json", make_run(seed=1, slow={"train_s": 2.0}))
    _, out, _ = run_cli(capsys, str(base_path), str(slow))
    failing = [line for line in out.splitlines() if line.strip().startswith("FAIL") and " train_s " in line]
    assert failing and all("no noise margin: fewer than 2 steady rounds" in line for line in failing), out
    assert "note:" in out and "the threshold and --min-delta alone decide them" in out


def test_a_steady_spread_is_the_margin(capsys, tmp_path):
    """Three epochs: the steady epochs' spread is the noise margin, shown with each timing check."""
    base = write_run(tmp_path / "base.json", make_run(seed=0, epochs=3))
    slow = write_run(tmp_path / "slow.json", make_run(seed=1, epochs=3, slow={"train_s": 2.0}))
    _, out, _ = run_cli(capsys, str(base), str(slow))
    failing = [line for line in out.splitlines() if line.strip().startswith("FAIL") and " train_s " in line]
    assert failing and all("noise margin" in line and "no noise margin" not in line for line in failing), out
    c2 = {path: next(b for b in load_run(path).benchmarks if b.group == "C2") for path in (base, slow)}
    margin = NOISE_K * max(spread(bench.epoch_values("train_s", steady=True)) for bench in c2.values())
    assert margin > 0
    assert any(line.strip().startswith("FAIL C2 ") and f"noise margin {margin:.3g} s)" in line for line in failing), out


def test_ordinary_noise_passes(capsys, tmp_path, base_path):
    """Another seed = other ±3% jitter per phase and epoch: no threshold is crossed."""
    other = write_run(tmp_path / "other.json", make_run(seed=7))
    rc, out, _ = run_cli(capsys, str(base_path), str(other))
    assert rc == 0, out


def test_quality_drop_fails_in_points(capsys, tmp_path, base_path):
    worse = write_run(tmp_path / "worse.json", make_run(seed=0, top1_shift=-0.03))  # 3 points lower
    rc, out, _ = run_cli(capsys, str(base_path), str(worse), "--fail", "top1:-2")
    assert rc == 1
    assert "pt" in out
    failing = [line for line in out.splitlines() if line.strip().startswith("FAIL")]
    assert failing and all(re.search(r": top1 last [\d.]+ % -> [\d.]+ % \(", line) for line in failing), out
    rc, _, _ = run_cli(capsys, str(base_path), str(worse), "--fail", "top1:-5")
    assert rc == 0


def test_explicit_thresholds_replace_the_defaults(capsys, tmp_path, base_path):
    slow = write_run(tmp_path / "slow.json", make_run(seed=0, slow={"train_s": 2.0}))
    rc, out, _ = run_cli(capsys, str(base_path), str(slow), "--fail", "top1:-2")
    assert rc == 0
    assert "train_s:median" not in out


def test_different_machines_warn_and_skip_timing(capsys, tmp_path, base_path):
    other = write_run(
        tmp_path / "gpu-box.json",
        make_run(seed=0, slow={"train_s": 2.0}, cpu="Intel Xeon", cpu_count=16, gpu="NVIDIA H100"),
    )
    rc, out, err = run_cli(capsys, str(base_path), str(other))
    assert rc == 0, out
    assert "warning: different machines" in err and "--cross-machine" in err
    assert "train_s median" in out and "[not enforced: different machines]" in out
    rc, _, _ = run_cli(capsys, str(base_path), str(other), "--cross-machine")
    assert rc == 1


def test_quality_thresholds_hold_across_machines(capsys, tmp_path, base_path):
    other = write_run(tmp_path / "other.json", make_run(seed=0, cpu="Intel Xeon", top1_shift=-0.10))
    rc, _, err = run_cli(capsys, str(base_path), str(other))
    assert rc == 1
    assert "different machines" in err


def _bf16_c8_drop(run: dict, top1_shift: float, bf16: bool = True) -> dict:
    """Mark the C8 variants as bf16-trained (unless not `bf16`) and move their last-epoch top-1."""
    for bench in run["benchmarks"]:
        if bench["group"] == "C8":
            if bf16:
                bench["extra_info"]["amp_dtype"] = "bfloat16"
            bench["extra_info"]["epochs"][-1]["top1"] += top1_shift
            bench["extra_info"]["top1"] += top1_shift
    return run


def test_reduced_precision_quality_is_enforced_on_one_machine_only(capsys, tmp_path):
    base = write_run(tmp_path / "base.json", _bf16_c8_drop(make_run(seed=0), 0.0))
    same = write_run(tmp_path / "same.json", _bf16_c8_drop(make_run(seed=0), -0.10))
    rc, out, _ = run_cli(capsys, str(base), str(same), "--fail", "top1:-5")
    assert rc == 1 and "FAIL C8" in out
    other = write_run(tmp_path / "other.json", _bf16_c8_drop(make_run(seed=0, cpu="Intel Xeon"), -0.10))
    rc, out, _ = run_cli(capsys, str(base), str(other), "--fail", "top1:-5")
    assert rc == 0, out
    assert "warn C8" in out and "bfloat16 numerics differ between machines" in out
    fp32_drop = make_run(seed=0, cpu="Intel Xeon", top1_shift=-0.10)
    rc, _, _ = run_cli(capsys, str(base), str(write_run(tmp_path / "fp32.json", fp32_drop)), "--fail", "top1:-5")
    assert rc == 1  # the fp32 groups are still gated across machines


@pytest.mark.parametrize("bf16_side", ["base", "new"])
def test_reduced_precision_on_either_side_is_not_gated_across_machines(capsys, tmp_path, bf16_side):
    """BASE trained in bf16 and NEW in fp32 (or the other way round) on another machine: not the same numerics either."""
    base = _bf16_c8_drop(make_run(seed=0), 0.0, bf16=bf16_side == "base")
    new = _bf16_c8_drop(make_run(seed=0, cpu="Intel Xeon"), -0.10, bf16=bf16_side == "new")
    paths = write_run(tmp_path / "base.json", base), write_run(tmp_path / "new.json", new)
    rc, out, _ = run_cli(capsys, *map(str, paths), "--fail", "top1:-5")
    assert rc == 0, out
    assert "bfloat16 numerics differ between machines" in out


def test_runs_saved_without_round_data_compare_on_their_statistics(capsys, tmp_path):
    """A JSON with pytest-benchmark's statistics but no per-round `data` (saved without --benchmark-save-data)."""
    bare = bare_run(tmp_path)
    benchmarks = len(json.loads(bare.read_text())["benchmarks"])
    rc, out, _ = run_cli(capsys, str(bare), str(bare), "--fail", "epoch_s:median:+15%")
    assert rc == 0, out
    assert f"result: ok ({benchmarks} checks)" in out and "not recorded" not in out


def test_benchmarks_in_one_file_only_are_listed(capsys, tmp_path, base_path):
    fewer = write_run(tmp_path / "fewer.json", make_run(seed=0, groups=("C2", "C6", "C8", "Q1-Q4")))
    rc, out, _ = run_cli(capsys, str(base_path), str(fewer))
    assert rc == 0
    assert "only in BASE" in out and "test_c7_batch_norm[device=cpu-batch_norm=True]" in out
    assert "only in NEW" not in out


def test_pairing_falls_back_to_name_and_params(base_path):
    base = load_run(base_path)
    moved = json.loads(base_path.read_text())
    for b in moved["benchmarks"]:
        b["fullname"] = "elsewhere/" + b["fullname"]
    pairing = pair_benchmarks(base.benchmarks, load_run(write_run(base_path.with_name("moved.json"), moved)).benchmarks)
    assert len(pairing.pairs) == len(base.benchmarks)
    assert not pairing.only_base and not pairing.only_new
    assert all(a.name == b.name and a.params == b.params for a, b in pairing.pairs)


def test_group_filter(capsys, tmp_path, base_path):
    slow = write_run(tmp_path / "slow.json", make_run(seed=0, slow={"train_s": 2.0}))
    rc, out, _ = run_cli(capsys, str(base_path), str(slow), "--group", "Q1-Q4,C3-loader")
    assert rc == 0
    assert "test_c2_phases" not in out


def bare_run(tmp_path):
    bare = make_run(seed=0)
    for b in bare["benchmarks"]:
        b["extra_info"] = {}
        b["stats"] = {"median": b["stats"]["median"]}
    return write_run(tmp_path / "bare.json", bare)


def test_figures_the_base_lacks_are_not_recorded_not_a_crash(capsys, tmp_path, base_path):
    rc, out, _ = run_cli(capsys, str(bare_run(tmp_path)), str(base_path))
    assert rc == 0, out
    assert "not recorded" in out


def test_figures_the_new_run_lacks_fail_with_their_names(capsys, tmp_path, base_path):
    rc, out, _ = run_cli(capsys, str(base_path), str(bare_run(tmp_path)))
    assert rc == 1, out
    assert "FAIL C2 test_c2_phases[device=cpu]: train_s not recorded in NEW (BASE median " in out
    assert "FAIL C6 test_c6_optimizer[device=cpu-optimizer=adam]: top1 not recorded in NEW" in out


def test_a_non_finite_epoch_fails_with_its_name(capsys, tmp_path, base_path):
    data = make_run(seed=0)
    c2 = next(b for b in data["benchmarks"] if b["group"] == "C2")
    c2["extra_info"]["epochs"][1]["train_s"] = float("nan")  # the other epoch is finite: its median alone would pass
    rc, out, _ = run_cli(capsys, str(base_path), str(write_run(tmp_path / "nan.json", data)))
    assert rc == 1, out
    failing = [line.strip() for line in out.splitlines() if line.strip().startswith("FAIL")]
    assert failing == [
        f"FAIL C2 test_c2_phases[device=cpu]: train_s non-finite in NEW (BASE median {metric_value(load_run(base_path).group('C2')[0], METRICS['train_s'], 'median').value:.4g})"
    ]


def test_different_library_versions_are_warned(capsys, tmp_path, base_path):
    data = make_run(seed=0)
    data["machine_info"].update(torch="2.15.0", cudnn=91100)
    rc, _, err = run_cli(capsys, str(base_path), str(write_run(tmp_path / "newer.json", data)))
    assert rc == 0
    assert "warning: different library versions (torch 2.14.1 vs 2.15.0; cudnn None vs 91100)" in err


def test_workload_difference_is_warned(capsys, tmp_path, base_path):
    full = write_run(tmp_path / "full.json", make_run(seed=0, preset="full", max_batches=None))
    _, _, err = run_cli(capsys, str(base_path), str(full))
    assert "did different work" in err and "preset 'smoke' vs 'full'" in err


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ('{"machine_info": {}, "benchmarks": [', "is not valid JSON"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"),
        ("[1, 2, 3]", "not a pytest-benchmark JSON file: the top level is a JSON list"),
        ('{"results": []}', "no 'benchmarks' list"),
        ('{"benchmarks": []}', "no 'machine_info' object"),
        ('{"machine_info": {}, "benchmarks": [{"fullname": "x"}]}', "has no 'name' and 'stats'"),
        ('{"config": {}, "summary": {}, "epochs": []}', "resnet-lab train --json"),
    ],
)
def test_unreadable_or_foreign_files_exit_2(capsys, tmp_path, base_path, content, message):
    path = tmp_path / "new.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    rc, out, err = run_cli(capsys, str(base_path), str(path))
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resnet-lab: error:") and message in lines[0], err
    assert "Traceback" not in err


def test_folder_instead_of_file_exits_2(capsys, tmp_path, base_path):
    rc, _, err = run_cli(capsys, str(base_path), str(tmp_path))
    assert rc == 2 and "is a folder" in err


def test_no_benchmark_in_common_exits_2(capsys, tmp_path):
    a = write_run(tmp_path / "a.json", make_run(groups=("C2",)))
    b = write_run(tmp_path / "b.json", make_run(groups=("C6",)))
    rc, _, err = run_cli(capsys, str(a), str(b))
    assert rc == 2
    assert "no benchmark in common" in err and len(err.strip().splitlines()) == 1


def test_bad_fail_expression_is_a_usage_error(capsys, base_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", str(base_path), str(base_path), "--fail", "epoch_s:+fast"])
    assert exc.value.code == 2
    assert "--fail" in capsys.readouterr().err


def test_help_documents_the_noise_rule(capsys):
    with pytest.raises(SystemExit):
        cli.main(["compare", "--help"])
    out = capsys.readouterr().out
    for text in ("noise-aware", "interquartile range", "--cross-machine", "exit status", *CI_THRESHOLDS):
        assert text in out


# ---------------------------------------------------------------------------
# pytest-benchmark storage ids
# ---------------------------------------------------------------------------


def test_storage_ids(capsys, tmp_path, base_path, monkeypatch):
    storage = tmp_path / "bench-store"
    machine = storage / machine_id()
    machine.mkdir(parents=True)
    shutil.copy(base_path, machine / "0001_abc123_20261127_120000.json")
    write_run(machine / "0002_def456_20261127_130000.json", make_run(seed=3, slow={"train_s": 2.0}))
    rc, out, _ = run_cli(capsys, "0001", "0002", "--storage", str(storage))
    assert rc == 1 and "0002_def456" in out
    rc, _, _ = run_cli(capsys, "1", "0001_abc", "--storage", f"file://{storage}")
    assert rc == 0
    monkeypatch.chdir(tmp_path)
    shutil.copytree(storage, tmp_path / ".benchmarks")
    assert run_cli(capsys, "0001", "0001")[0] == 0  # default storage: ./.benchmarks


def test_storage_id_errors(capsys, tmp_path):
    storage = tmp_path / "store"
    for machine in ("Linux-CPython-3.10-64bit", "Linux-CPython-3.12-64bit"):
        (storage / machine).mkdir(parents=True)
        write_run(storage / machine / "0001_x.json", make_run())
    rc, _, err = run_cli(capsys, "0001", "0003", "--storage", str(storage))
    assert rc == 2 and "ambiguous" in err
    rc, _, err = run_cli(capsys, "0009", "0009", "--storage", str(storage))
    assert rc == 2 and "neither a file nor a saved run" in err
    rc, _, err = run_cli(capsys, "0001", "0001", "--storage", str(tmp_path / "nowhere"))
    assert rc == 2 and "does not exist" in err


# ---------------------------------------------------------------------------
# end to end: a real tiny benchmark, run twice with pytest-benchmark
# ---------------------------------------------------------------------------

TINY_BENCHMARK = textwrap.dedent(
    '''
    """A tiny real training loop recording the suite's per-epoch phases (load, train, metrics).

    Each load pass and each step also waits a fixed few milliseconds: that wait, not the tiny
    compute, sets the phases' cost, so the gap between two configurations is the same on an idle
    machine and on one busy with the rest of the test suite.
    """
    import os
    import time

    import torch

    BATCHES = int(os.environ["TINY_BATCHES"])  # more batches per epoch = genuinely more work
    AUGMENT_PASSES = int(os.environ["TINY_AUGMENT_PASSES"])  # a slower loading configuration
    BATCH = 32
    PASS_S = STEP_S = 0.01
    torch.set_num_threads(1)  # one core each, so a busy second core does not halve a run at random


    def make_state():
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (1024,), generator=g)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        return images, labels, model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), g


    def load_batch(images, labels, g):
        """Gather, crop, flip, normalize; AUGMENT_PASSES times over (the cost scales with it, like a slower decoder)."""
        for _ in range(AUGMENT_PASSES):
            idx = torch.randint(0, images.shape[0], (BATCH,), generator=g)
            padded = torch.nn.functional.pad(images[idx].float(), (4, 4, 4, 4))
            i, j = torch.randint(0, 9, (2,), generator=g).tolist()
            x = padded[:, :, i : i + 32, j : j + 32]
            x = torch.where(torch.rand(BATCH, 1, 1, 1, generator=g) < 0.5, x.flip(3), x)
            x = ((x / 255.0 - 0.48) / 0.2).contiguous()
            time.sleep(PASS_S)
        return x, labels[idx]


    def run_epoch(state, records):
        images, labels, model, opt, g = state
        load_s = train_s = metrics_s = loss_sum = 0.0
        correct = seen = 0
        start = time.perf_counter()
        for _ in range(BATCHES):
            t0 = time.perf_counter()
            x, y = load_batch(images, labels, g)
            t1 = time.perf_counter()
            out = model(x)
            loss = torch.nn.functional.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            time.sleep(STEP_S)
            t2 = time.perf_counter()
            loss_sum += loss.item() * y.shape[0]
            correct += int((out.argmax(1) == y).sum())
            seen += y.shape[0]
            t3 = time.perf_counter()
            load_s, train_s, metrics_s = load_s + t1 - t0, train_s + t2 - t1, metrics_s + t3 - t2
        epoch_s = time.perf_counter() - start
        records.append({"epoch": len(records) + 1, "batches": BATCHES, "images": seen, "load_s": load_s, "copy_s": 0.0,
                        "train_s": train_s, "metrics_s": metrics_s, "epoch_s": epoch_s, "images_per_s": seen / epoch_s,
                        "loss": loss_sum / seen, "top1": correct / seen, "warmup": not records})


    def test_tiny_training(benchmark):
        state = make_state()
        run_epoch(state, [])  # warm-up, outside the clock
        records = []
        benchmark.group = "C2"
        benchmark.pedantic(run_epoch, args=(state, records), rounds=5, iterations=1)
        benchmark.extra_info.update(epochs=records, loss=records[-1]["loss"], top1=records[-1]["top1"], device="cpu")
    '''
)


def run_tiny(pytester, monkeypatch, name: str, batches: int, augment_passes: int):
    # Under `pytest -n`, the inner run would inherit PYTEST_XDIST_WORKER and pytest-benchmark would disable itself.
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TINY_BATCHES", str(batches))
    monkeypatch.setenv("TINY_AUGMENT_PASSES", str(augment_passes))
    out = pytester.path / f"{name}.json"
    storage = f"file://{pytester.path / 'storage'}"  # also saved the --benchmark-autosave way, read back by storage id
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "--benchmark-json",
        str(out),
        "--benchmark-autosave",
        "--benchmark-storage",
        storage,
        "test_tiny.py",
    )
    result.assert_outcomes(passed=1)
    return out


def failing_lines(out: str) -> str:
    return "\n".join(line for line in out.splitlines() if line.strip().startswith("FAIL"))


def test_end_to_end_slower_runs_are_flagged_and_self_compare_passes(pytester, monkeypatch, capsys):
    """Twice the batches per epoch, then each batch loaded three times over, each against one base run."""
    pytester.makepyfile(test_tiny=TINY_BENCHMARK)
    base = run_tiny(pytester, monkeypatch, "base", 20, 1)
    more_batches = run_tiny(pytester, monkeypatch, "more-batches", 40, 1)
    slower_loading = run_tiny(pytester, monkeypatch, "slower-loading", 20, 3)
    rc, out, _ = run_cli(capsys, str(base), str(more_batches))
    assert rc == 1 and "epoch_s" in failing_lines(out) and "train_s" in failing_lines(out), out
    rc, out, _ = run_cli(capsys, str(base), str(slower_loading))
    assert rc == 1 and " load_s " in failing_lines(out), out
    rc, out, _ = run_cli(
        capsys, "0001", str(base), "--storage", str(pytester.path / "storage")
    )  # autosaved vs --benchmark-json
    assert rc == 0 and "result: ok" in out
    assert "1.00x" in out


# ---------------------------------------------------------------------------
# the rule's boundaries and defaults, pinned
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "old, new, threshold, violated",
    [
        # +16% against +15%: the limit is 15% of BASE (0.15 s), not of NEW (0.174 s)
        (1.0, 1.16, "epoch_s:median:+15%", True),
        (1.0, 1.14, "epoch_s:median:+15%", False),
        # exactly at the limit (binary-exact numbers): not beyond it; one step more is
        (2.0, 2.5, "train_s:median:+25%", False),
        (2.0, 2.5625, "train_s:median:+25%", True),
        (2.0, 2.5, "train_s:median:+0.5", False),
        (2.0, 2.5625, "train_s:median:+0.5", True),
        # a '-' threshold: getting faster by more than 10% of BASE is the violation
        (2.0, 1.75, "load_s:median:-10%", True),
        (2.0, 1.875, "load_s:median:-10%", False),
        (2.0, 2.5625, "load_s:median:-10%", False),
    ],
)
def test_timing_limit_is_relative_to_base(old, new, threshold, violated):
    got, margin = timing_violation(parse_threshold(threshold), Value(old, 0.0, 5), Value(new, 0.0, 5), 1.5, 0.05)
    assert (got, margin) == (violated, 0.0)


@pytest.mark.parametrize(
    "old, new, threshold, violated",
    [
        (2.0, 2.25, "loss:+10%", True),  # +0.25 > 10% of BASE's 2.0
        (2.0, 2.1875, "loss:+10%", False),
        (2.0, 2.5, "loss:+0.5", False),
        (50.0, 47.5, "top1:-2", True),  # points, in percent
        (50.0, 48.0, "top1:-2", False),
        (50.0, 55.0, "top1:-2", False),
    ],
)
def test_quality_limit_is_relative_to_base(old, new, threshold, violated):
    assert quality_violation(parse_threshold(threshold), Value(old, None, 1), Value(new, None, 1)) is violated


def test_relative_limit_is_a_magnitude():
    assert parse_threshold("loss:+25%").limit(-2.0) == 0.5
    assert parse_threshold("loss:+0.25").limit(-2.0) == 0.25


@pytest.mark.parametrize(
    "old, new, violated",
    [
        # margin 1.5 x 0.25 = 0.375 s: a change of exactly that is noise, one step more is not
        (Value(1.0, 0.25, 5), Value(1.375, 0.0, 5), False),
        (Value(1.0, 0.25, 5), Value(1.4375, 0.0, 5), True),
    ],
)
def test_noise_margin_is_exclusive(old, new, violated):
    assert timing_violation(parse_threshold("epoch_s:median:+10%"), old, new, 1.5, 0.05) == (violated, 0.375)


def test_min_delta_is_exclusive():
    threshold = parse_threshold("epoch_s:median:+1%")
    assert timing_violation(threshold, Value(1.0, 0.0, 5), Value(1.0625, 0.0, 5), 1.5, 0.0625) == (False, 0.0)
    assert timing_violation(threshold, Value(1.0, 0.0, 5), Value(1.125, 0.0, 5), 1.5, 0.0625) == (True, 0.0)


def test_margin_is_k_times_the_larger_spread():
    threshold = parse_threshold("epoch_s:median:+10%")
    # old spread 0.1, new 0.2: margin 2 x 0.2 = 0.4; a +0.5 s change is beyond it, +0.35 s is not
    assert timing_violation(threshold, Value(1.0, 0.1, 5), Value(1.5, 0.2, 5), 2.0, 0.05) == (True, 0.4)
    assert timing_violation(threshold, Value(1.0, 0.2, 5), Value(1.35, 0.1, 5), 2.0, 0.05) == (False, 0.4)
    # a missing spread counts as none
    assert timing_violation(threshold, Value(1.0, None, 1), Value(1.5, None, 1), 2.0, 0.05) == (True, 0.0)


def c2_run(train_s: tuple[float, ...]) -> dict:
    """A smoke run whose C2 benchmark took `train_s` seconds of training in its epochs (the first is the warm-up)."""
    data = make_run(groups=("C2",), epochs=len(train_s))
    (bench,) = data["benchmarks"]
    for record, seconds in zip(bench["extra_info"]["epochs"], train_s, strict=True):
        record["train_s"] = seconds
    return data


@pytest.mark.parametrize(
    "base, new, rc",
    [
        # Steady epochs 2 and 3: IQR of two rounds = max - min = 0.2 s; NOISE_K 1.5 makes the margin 0.3 s
        ((5.0, 1.0, 1.2), (5.0, 1.32, 1.52), 1),  # median +0.32 s: beyond the margin
        ((5.0, 1.0, 1.2), (5.0, 1.28, 1.48), 0),  # median +0.28 s: noise
        # The warm-up epoch is no noise: steady epochs without spread leave no margin
        ((3.0, 1.0, 1.0), (3.0, 1.32, 1.32), 1),  # median +0.32 s (+32%)
        # no spread; MIN_DELTA_S 0.05 s is the floor
        ((0.1, 0.1, 0.1), (0.16, 0.16, 0.16), 1),  # +0.06 s (+60%)
        ((0.1, 0.1, 0.1), (0.14, 0.14, 0.14), 0),  # +0.04 s (+40%): below the floor
        # two epochs, one steady round: no spread, the threshold and the floor decide
        ((1.0, 1.2), (1.28, 1.48), 1),  # median +0.28 s (+25%)
        ((1.0, 1.2), (1.1, 1.3), 0),  # median +0.1 s (+9.1%): inside +10%
    ],
    ids=[
        "beyond-noise",
        "within-noise",
        "warm-up-is-not-noise",
        "above-floor",
        "below-floor",
        "two-epochs-beyond",
        "two-epochs-within",
    ],
)
def test_default_noise_k_and_min_delta(capsys, tmp_path, base, new, rc):
    base_file = write_run(tmp_path / "base.json", c2_run(base))
    new_file = write_run(tmp_path / "new.json", c2_run(new))
    got, out, err = run_cli(capsys, str(base_file), str(new_file), "--fail", "train_s:median:+10%")
    assert got == rc, out + err
    assert "k=1.5, min delta 0.05 s" in out


def with_startup(data: dict, seconds: float, benches: slice) -> dict:
    for bench in data["benchmarks"][benches]:
        for record in bench["extra_info"]["epochs"]:
            record["startup_s"] = seconds
    return data


def test_runs_without_startup_s_compare_and_skip_it(capsys, tmp_path):
    """Runs saved before startup_s existed: its threshold checks nothing; the rest still applies."""
    old = write_run(tmp_path / "old.json", make_run(groups=("C2", "C7")))
    new = write_run(tmp_path / "new.json", with_startup(make_run(groups=("C2", "C7")), 0.25, slice(None)))
    rc, out, err = run_cli(capsys, str(old), str(new), "--fail", "startup_s:+10%", "--fail", "train_s:+40%")
    assert rc == 0, out + err
    assert "startup_s:+10%: 0 checked" in out and "train_s:+40%: 3 checked" in out


def test_a_benchmark_without_the_metric_is_skipped_not_the_rest(capsys, tmp_path):
    """C2 lacks startup_s in both runs (saved earlier); the two C7 benchmarks after it have it and are checked."""
    old = write_run(tmp_path / "old.json", with_startup(make_run(groups=("C2", "C7")), 0.25, slice(1, None)))
    new = write_run(tmp_path / "new.json", with_startup(make_run(groups=("C2", "C7")), 0.5, slice(1, None)))
    rc, out, err = run_cli(capsys, str(old), str(new), "--fail", "startup_s:+10%")
    assert rc == 1, out + err
    assert "startup_s:+10%: 2 checked, 2 beyond it" in out


def with_cpu_time(data: dict, train_cpu_s: float) -> dict:
    """Every epoch record gains train_cpu_s (and load_cpu_s), as CPU runs record them since issue 23."""
    for b in data["benchmarks"]:
        for record in b["extra_info"].get("epochs", []):
            record.update(train_cpu_s=train_cpu_s, load_cpu_s=0.01)
    return data


@pytest.mark.parametrize(("cpu_factor", "kind"), [(1.0, "waits more: CPU 1.000x"), (1.5, "computes more: CPU 1.500x")])
def test_the_table_says_whether_a_slower_phase_computes_or_waits_more(capsys, tmp_path, cpu_factor, kind):
    base = write_run(tmp_path / "base.json", with_cpu_time(make_run(seed=0), 2.0))
    slow = write_run(tmp_path / "slow.json", with_cpu_time(make_run(seed=0, slow={"train_s": 1.5}), 2.0 * cpu_factor))
    _, out, _ = run_cli(capsys, str(base), str(slow))
    rows = [line for line in out.splitlines() if " train_s " in f" {line} " and " 1.50x " in line]
    assert rows and all(kind in line for line in rows), out
    assert any(" train_cpu_s " in f" {line} " for line in out.splitlines())


def test_runs_without_cpu_time_compare_as_before(capsys, tmp_path, base_path):
    slow = write_run(tmp_path / "slow.json", make_run(seed=0, slow={"train_s": 1.5}))
    _, out, _ = run_cli(capsys, str(base_path), str(slow))
    assert "more: CPU" not in out and "train_cpu_s" not in out
