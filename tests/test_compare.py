"""`resnet-lab compare`, the command: pass and fail, machines, pairing, storage ids, exit codes."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from fixtures.labruns import make_run, write_run

from resnet_lab import cli
from resnet_lab.results.compare import (
    CI_THRESHOLDS,
    METRICS,
    NOISE_K,
    metric_value,
    pair_benchmarks,
    spread,
)
from resnet_lab.results.loading import load_run, machine_id


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["compare", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture
def base_path(tmp_path):
    return write_run(tmp_path / "base.json", make_run(seed=0))


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
    """BASE trained in bf16 and NEW in fp32 (or the other way round) on another machine: not the same numerics
    either."""
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
        "FAIL C2 test_c2_phases[device=cpu]: train_s non-finite in NEW (BASE "
        "median "
        f"{metric_value(load_run(base_path).group('C2')[0], METRICS['train_s'], 'median').value:.4g})"
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
