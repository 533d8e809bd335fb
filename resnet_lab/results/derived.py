"""Figures that compare benchmarks, derived once from the finished benchmarks of a run.

No benchmark hands a figure to another: `speedup_vs_eager` (C8) and `speedup_vs_dataloader_w*`
(loader) are computed here from the records of the benchmarks they compare, wherever those ran
in the same run (`pytest_benchmark_update_json` calls `add_cross_benchmark_figures`). No torch here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..spec import groups


def speedup_record(step_s: float, baseline: dict[str, Any] | None, peak_flops_per_s: float) -> dict[str, object]:
    """A C8 variant against the eager baseline of the same run and device.

    `speedup_vs_eager` is the measured ratio of train-step times. `speedup_vs_eager_at_peak`
    is the ratio the variant would reach at MFU 1.0 (its dtype's measured matmul peak over the
    baseline's achieved FLOP/s): a yardstick, not a hard bound, since a convolution can run
    faster than the matmul the peak is calibrated on.
    """
    if not baseline:
        return {}
    return {
        "speedup_vs_eager": baseline["train_step_s"] / step_s,
        "speedup_vs_eager_at_peak": peak_flops_per_s / baseline["achieved_flops_per_s"],
        "eager_train_step_s": baseline["train_step_s"],
    }


def _params(bench: dict[str, Any]) -> dict[str, Any]:
    return bench.get("params") or {}


def equivalence_verdict(extra_info: dict[str, Any]) -> str:
    """A C8 variant's equivalence verdict (perf/equivalence.py): "pass", "fail", or "not checked" (older runs)."""
    record = extra_info.get("equivalence")
    return str(record.get("verdict", "not checked")) if isinstance(record, dict) else "not checked"


def add_c8_speedups(benchmarks: Iterable[dict[str, Any]]) -> None:
    """`speedup_vs_eager` for the variants that passed the equivalence check, against an eager that passed it too."""
    c8 = [
        b
        for b in benchmarks
        if b.get("group") == groups.C8
        and b.get("extra_info", {}).get("train_step_s")
        and equivalence_verdict(b["extra_info"]) == "pass"
    ]
    eager = {str(_params(b).get("device")): b["extra_info"] for b in c8 if _params(b).get("variant") == "eager"}
    for bench in c8:
        info = bench["extra_info"]
        info.update(
            speedup_record(
                float(info["train_step_s"]),
                eager.get(str(_params(bench).get("device"))),
                float(info["peak_flops_per_s"]),
            )
        )


def add_loader_speedups(benchmarks: Iterable[dict[str, Any]]) -> None:
    loader = [b for b in benchmarks if b.get("group") == groups.LOADER and b.get("extra_info", {}).get("images_per_s")]
    dataloader = {
        int(_params(b)["workers"]): float(b["extra_info"]["images_per_s"])
        for b in loader
        if _params(b).get("pipeline") == "dataloader"
    }
    for bench in loader:
        if _params(bench).get("pipeline") == "dataloader":
            continue
        for workers, rate in sorted(dataloader.items()):
            bench["extra_info"][f"speedup_vs_dataloader_w{workers}"] = float(bench["extra_info"]["images_per_s"]) / rate


def add_cross_benchmark_figures(benchmarks: list[dict[str, Any]]) -> None:
    add_c8_speedups(benchmarks)
    add_loader_speedups(benchmarks)
