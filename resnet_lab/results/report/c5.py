"""C5: CPU against GPU at the C3.2 worker count, and the speedup where both ran."""

from __future__ import annotations

from collections.abc import Sequence

from ...spec import groups
from .. import plots
from ..runs import Run
from .format import NR, Figures, answered_by, fmt_int, fmt_rate, fmt_s, md_table, not_run, sources_line
from .values import epoch_time, phase_mean


def section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = ["## C5: CPU vs GPU at the C3.2 worker count", ""]
    benches = [(run, b) for run in runs for b in run.group(groups.C5)]
    if not benches:
        return lines + not_run(groups.C5, runs)
    rows, labels, epoch_s, rates = [], [], [], []
    by_device: dict[str, tuple[float | None, float | None]] = {}
    for run, b in benches:
        device = str(b.param("device", NR))
        ep, rate = epoch_time(b), phase_mean(b, "images_per_s")
        rows.append(
            [
                device + answered_by(b),
                str(b.extra("workers") if b.extra("workers") is not None else NR),
                fmt_s(ep),
                fmt_s(b.number("steady_epoch_s")),
                fmt_rate(rate),
                fmt_int(b.extra("batches_per_epoch")),
                f"`{run.label}`",
            ]
        )
        by_device.setdefault(device.split(":")[0], (ep, rate))
        if ep is not None:
            labels.append(f"{device} ({run.label})" if len(runs) > 1 else device)
            epoch_s.append(ep)
            rates.append(rate)
    lines += sources_line(run for run, _ in benches)
    lines += md_table(
        ["device", "workers", "mean epoch (s)", "steady epoch (s)", "images/s", "batches/epoch", "run"], rows
    )
    cpu, gpu = by_device.get("cpu"), by_device.get("cuda")
    if cpu and gpu and cpu[0] and gpu[0]:
        speed = f"**GPU speedup: {cpu[0] / gpu[0]:.1f}×** in mean epoch time"
        if cpu[1] and gpu[1]:
            speed += f" ({gpu[1] / cpu[1]:.1f}× in images/s, the fair figure when epochs are capped)"
        lines += [speed + ".", ""]
    else:
        missing = "GPU (cuda)" if not gpu else "CPU"
        lines += [
            f"Speedup: not measured — no {missing} C5 benchmark in the input (CUDA "
            "benchmarks are skipped on machines without a GPU; "
            "pass a GPU run's JSON as another input).",
            "",
        ]
    if labels:
        title = "C5: CPU vs GPU"
        lines += figures.add("c5_devices", title, plots.device_bars, labels, epoch_s, rates, title)
    return lines
