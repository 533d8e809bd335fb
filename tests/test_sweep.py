"""One training run serves every question with its configuration (suite/sweep.py), the numerics and memory each
benchmark records, the short answers and the cross-benchmark figures."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fixtures.labruns import make_run

from resnet_lab.engine.run import RunConfig
from resnet_lab.engine.step import Numerics, configure_backends
from resnet_lab.machine import numerics_state
from resnet_lab.perf.memory import memory_peaks
from resnet_lab.results.answers import short_answers
from resnet_lab.results.loading import parse_run
from resnet_lab.results.report.sheet import answer_sheet
from resnet_lab.suite.options import LabOptions, build_options
from resnet_lab.suite.sweep import SweepState, lab_record

ROOT = Path(__file__).resolve().parents[1]


class FakeRun:
    """What SweepState needs of a trained LabRun: its evaluation, counted."""

    def __init__(self) -> None:
        self.evaluations = 0

    def evaluate(self) -> dict[str, object]:
        self.evaluations += 1
        return {"test_top1": 0.5, "test_loss": 1.25, "test_images": 200, "eval_s": 0.1}


C3_NAME = "test_c3_workers[device=cpu-workers=4]"
BASE = LabOptions(devices=("cpu",)).base_config  # the smoke preset's base run, as the benchmarks replace it


def config(*, workers: int = 4, **changes: object) -> RunConfig:
    return replace(BASE, **{"device": "cpu", **changes}).with_workers(workers)  # type: ignore[arg-type]


def sweep_with_c3_point() -> tuple[SweepState, FakeRun, dict]:
    sweep, run, extra = SweepState(), FakeRun(), {"loss": 1.0}
    sweep.record_trained(config(), C3_NAME, run, extra)  # type: ignore[arg-type]
    return sweep, run, extra


def test_only_the_same_configuration_is_served():
    sweep, _, _ = sweep_with_c3_point()
    assert sweep.serving_run(config(optimizer="sgd")) == C3_NAME
    assert sweep.serving_run(config(eval_batches=0)) == C3_NAME  # needs no evaluation
    for other in (
        config(optimizer="adam"),
        config(batch_norm=False),
        config(workers=2),
        config(device="cuda"),
        config(eval_batches=5),
        config(epochs=10, eval_batches=0),
    ):
        assert sweep.serving_run(other) is None, other


def test_a_run_without_evaluation_serves_no_question_that_needs_one():
    sweep, run, extra = SweepState(), FakeRun(), {}
    sweep.record_trained(config(eval_batches=0), "test_c2_phases[device=cpu]", run, extra)  # type: ignore[arg-type]
    assert sweep.serving_run(config(eval_batches=0)) == "test_c2_phases[device=cpu]"
    assert sweep.serving_run(config()) is None


def test_a_served_question_is_recorded_and_the_run_evaluated_once():
    sweep, run, extra = sweep_with_c3_point()
    reason = sweep.serve_reason(
        config(), "C6", "test_c6_optimizer[device=cpu-optimizer=sgd]", {"device": "cpu", "optimizer": "sgd"}
    )
    assert reason and C3_NAME in reason and "trained and evaluated" in reason
    sweep.serve_reason(
        config(), "C7", "test_c7_batch_norm[device=cpu-batch_norm=True]", {"device": "cpu", "batch_norm": True}
    )
    sweep.serve_reason(config(eval_batches=0), "C4", "test_c4_workers[device=cpu-workers=c3.2]", {"choice": "c3.2"})
    assert run.evaluations == 1  # evaluated on first need, not per question, and not in C3 itself
    assert extra["test_top1"] == 0.5  # the serving benchmark's own record gains the evaluation
    assert [e["group"] for e in sweep.served] == ["C6", "C7", "C4"]
    assert "evaluation" in sweep.served[0] and "evaluation" not in sweep.served[2]
    assert sweep.serves() == {C3_NAME: ["C6", "C7", "C4"]}
    assert sweep.serve_reason(config(optimizer="adam"), "C6", "x", {}) is None


def served_run() -> dict:
    """A suite run in which C3's point at 4 workers answered C6 sgd (with its evaluation) and C4's C3.2 row."""
    data = make_run(groups=("C3", "C4", "C6"))
    name = "test_c6_optimizer[device=cpu-optimizer=sgd]"
    data["benchmarks"] = [
        b for b in data["benchmarks"] if b["name"] not in (name, "test_c4_workers[device=cpu-choice=c3.2]")
    ]
    data["lab"]["served"] = [
        {
            "group": "C6",
            "name": name,
            "params": {"device": "cpu", "optimizer": "sgd"},
            "by": C3_NAME,
            "evaluation": {"test_top1": 0.375, "test_loss": 1.5},
        },
        {
            "group": "C4",
            "name": "test_c4_workers[device=cpu-choice=c3.2]",
            "params": {"device": "cpu", "choice": "c3.2"},
            "by": C3_NAME,
        },
    ]
    return data


def test_served_views_read_the_serving_benchmark(tmp_path):
    run = parse_run(tmp_path / "run.json", served_run())
    c3 = next(b for b in run.benchmarks if b.name == C3_NAME)
    sgd = next(b for b in run.group("C6") if b.params.get("optimizer") == "sgd")
    assert sgd.extra("served_by") == C3_NAME and sgd.extra("test_top1") == 0.375
    assert sgd.epochs() == c3.epochs() and sgd.round_times() == c3.round_times()
    assert (
        len(run.group("C6")) == 5 and len([b for b in run.benchmarks if b.group == "C6"]) == 4
    )  # a view, not a benchmark
    assert run.serves(C3_NAME) == ["C6", "C4"]


def test_report_names_the_run_that_answered(tmp_path):
    run = parse_run(tmp_path / "run.json", served_run())
    text, _ = answer_sheet([run], tmp_path)
    c6 = text[text.index("## C6") : text.index("## C7")]
    assert f"sgd (measured by `{C3_NAME}`)" in c6 and "37.50 %" in c6
    c3 = text[text.index("## C3") : text.index("## C4")]
    assert "| C6, C4 |" in c3
    c4 = text[text.index("## C4") : text.index("## C5")]
    assert f"(C3.2) (measured by `{C3_NAME}`)" in c4


def test_short_answers_from_the_records(tmp_path):
    cpu = parse_run(tmp_path / "cpu.json", make_run(devices=("cpu", "cuda")))
    lines = short_answers(cpu)
    c6 = [b for b in cpu.group("C6") if b.params["device"] == "cpu"]
    best = max(c6, key=lambda b: b.extra_info["top1"])
    assert any(line.startswith("C6 (cpu)") and f": {best.params['optimizer']}" in line for line in lines)
    c5 = {b.params["device"]: b.extra_info["epochs"] for b in cpu.group("C5")}
    ratio = (sum(r["epoch_s"] for r in c5["cpu"]) / len(c5["cpu"])) / (
        sum(r["epoch_s"] for r in c5["cuda"]) / len(c5["cuda"])
    )
    assert f"the GPU is {ratio:.1f}x the CPU per epoch" in "\n".join(lines)
    assert lines[0].startswith(f"C3.2: {cpu.lab['c3_2']['workers']} workers")


def test_numerics_are_set_by_every_cuda_run_and_recorded():
    before = numerics_state()
    try:
        configure_backends(torch.device("cuda"), Numerics(cudnn_tf32=False, matmul_precision="high"))
        state = numerics_state()
        assert (state["cudnn_allow_tf32"], state["float32_matmul_precision"], state["cudnn_benchmark"]) == (
            False,
            "high",
            True,
        )
        configure_backends(torch.device("cuda"), Numerics())
        assert (numerics_state()["cudnn_allow_tf32"], numerics_state()["float32_matmul_precision"]) == (True, "highest")
    finally:
        torch.backends.cudnn.allow_tf32 = before["cudnn_allow_tf32"]
        torch.backends.cudnn.benchmark = before["cudnn_benchmark"]
        torch.set_float32_matmul_precision(before["float32_matmul_precision"])


def test_tf32_option_reaches_the_lab_record():
    options = build_options(
        preset="full",
        data="synthetic",
        devices="cuda",
        epochs=None,
        batches=None,
        workers=None,
        out_dir="o",
        tf32=False,
    )
    record = lab_record(options, None)
    assert record["numerics"]["cudnn_tf32"] is False and "full fp32" in record["numerics"]["note"]


def test_host_peak_covers_an_allocation_inside_the_benchmark():
    size = 256 * 2**20
    with memory_peaks(torch.device("cpu")) as record:
        block = torch.ones(size // 4)  # touched pages: resident
        del block
    if record["host_peak_rss_since"] != "benchmark":
        pytest.skip("this kernel cannot reset the peak RSS (/proc/self/clear_refs)")
    assert record["host_peak_rss_bytes"] >= record["host_rss_bytes"] + size * 0.9
    assert record["device_peak_memory_bytes"] is None


def test_gpu_check_exit_status_reflects_its_parts(tmp_path):
    """The GPU check must not fail silently between GPU windows (CI runs its full dry run; this is the cheap part)."""
    script = ROOT / "benchmarks" / "gpu-check.sh"
    bad = subprocess.run(
        ["bash", str(script), str(tmp_path / "bad")],
        env={"PATH": "/usr/bin:/bin", "PARTS": "nonsense", "PYTHON": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "unknown part 'nonsense'" in bad.stdout and "did not pass: nonsense" in bad.stdout
    failing = subprocess.run(
        ["bash", str(script), str(tmp_path / "fail")],
        env={"PATH": "/usr/bin:/bin", "PARTS": "lab", "PYTHON": "false"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failing.returncode == 1 and "part lab: exit 1 (failed)" in failing.stdout


def test_cross_benchmark_figures_are_derived_from_the_finished_benchmarks():
    from resnet_lab.results.derived import add_cross_benchmark_figures

    def c8(variant, step, achieved, verdict="pass"):
        return {
            "group": "C8",
            "params": {"device": "cpu", "variant": variant},
            "extra_info": {
                "train_step_s": step,
                "achieved_flops_per_s": achieved,
                "peak_flops_per_s": 4.0e11,
                **({"equivalence": {"verdict": verdict}} if verdict else {}),
            },
        }

    def loader(pipeline, workers, rate):
        return {
            "group": "loader",
            "params": {"pipeline": pipeline, "workers": workers, "device": "cpu"},
            "extra_info": {"images_per_s": rate},
        }

    benches = [
        c8("eager", 3.0, 1.0e11),
        c8("best", 1.0, 3.0e11),
        loader("dataloader", 0, 5000.0),
        loader("dataloader", 2, 8000.0),
        loader("device-resident", 0, 1.6e6),
    ]
    add_cross_benchmark_figures(benches)
    assert benches[1]["extra_info"]["speedup_vs_eager"] == pytest.approx(3.0)
    assert benches[1]["extra_info"]["speedup_vs_eager_at_peak"] == pytest.approx(4.0)
    assert benches[4]["extra_info"]["speedup_vs_dataloader_w0"] == pytest.approx(320.0)
    assert benches[4]["extra_info"]["speedup_vs_dataloader_w2"] == pytest.approx(200.0)
    alone = [c8("best", 1.0, 3.0e11)]  # `-k best`: its baseline did not run, so there is no ratio to give
    add_cross_benchmark_figures(alone)
    assert "speedup_vs_eager" not in alone[0]["extra_info"]
    # A speedup counts only for a variant that passed the equivalence check, against an eager that passed it.
    unchecked = [
        c8("eager", 3.0, 1.0e11),
        c8("best", 1.0, 3.0e11, verdict=None),
        c8("bf16", 1.5, 2.0e11, verdict="fail"),
    ]
    add_cross_benchmark_figures(unchecked)
    assert [("speedup_vs_eager" in b["extra_info"]) for b in unchecked] == [True, False, False]
    failed_eager = [c8("eager", 3.0, 1.0e11, verdict="fail"), c8("best", 1.0, 3.0e11)]
    add_cross_benchmark_figures(failed_eager)
    assert "speedup_vs_eager" not in failed_eager[1]["extra_info"]


def test_every_benchmark_module_names_its_group_through_the_marker():
    """The group comes from pytest-benchmark's public `benchmark` marker (conftest adds the device's synced timer)."""
    modules = sorted((ROOT / "benchmarks").glob("test_*.py"))
    assert len(modules) >= 15
    for module in modules:
        assert "pytest.mark.benchmark(group=groups." in module.read_text(), (
            module.name
        )  # the names are spec/groups.py's
