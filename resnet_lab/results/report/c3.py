"""C3: data-loading time against the number of DataLoader workers, and the C3.2 answer with its rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...spec import groups
from ...spec.presets import c32_answer  # the suite's own rule, not a copy of it
from .. import plots
from ..runs import Run, as_number
from .format import NR, Figures, fmt_int, fmt_rate, fmt_s, from_line, md_table, not_run
from .values import epoch_time, phase_mean


def c32_of(run: Run) -> tuple[dict[str, Any] | None, str]:
    """The run's recorded C3.2 answer, else one computed here with the suite's rule from what it measured."""
    answer = run.lab.get("c3_2")
    if isinstance(answer, dict) and answer.get("workers") is not None:
        return answer, "recorded by the suite"
    for group, source in ((groups.C3_LOADER, "C3-loader (full CPU loader epochs)"), (groups.C3, "C3 (training)")):
        times = {}
        for bench in run.group(group):
            workers, load = as_number(bench.param("workers")), phase_mean(bench, "load_s")
            if workers is not None and load is not None and bench.param("device", "cpu") == "cpu":
                times[int(workers)] = load
        if len(times) >= 2:
            return c32_answer(
                times, source=source
            ), "computed by the report with the suite's rule (the run did not record it)"
    return None, ""


def section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = [
        "## C3: data-loading time vs num_workers",
        "",
        "Total data-loading time per epoch for num_workers = 0, 4, 8, 12, 16, … (continued while it improves). "
        "`C3` measures it while training; `C3-loader` iterates one full epoch of the loader alone on the CPU.",
        "",
    ]
    present = [r for r in runs if r.group(groups.C3) or r.group(groups.C3_LOADER)]
    if not present:
        return lines + not_run(groups.C3, runs)
    for index, run in enumerate(present, 1):
        lines += [f"### {run.label}", "", from_line(run), ""]
        series: dict[str, tuple[list[int], list[float]]] = {}
        training = sorted(
            run.group(groups.C3), key=lambda b: (str(b.param("device")), as_number(b.param("workers")) or 0)
        )
        if training:
            rows = []
            for bench in training:
                rows.append(
                    [
                        str(bench.param("device", NR)),
                        str(bench.param("workers")),
                        fmt_s(phase_mean(bench, "load_s")),
                        fmt_s(phase_mean(bench, "train_s")),
                        fmt_s(epoch_time(bench)),
                        fmt_int(bench.extra("batches_per_epoch")),
                        ", ".join(run.serves(bench.name)) or "—",
                    ]
                )
            lines += [
                "With training (`C3`), means over epochs. The point at the C3.2 count is also the configuration of "
                "C4's C3.2 row, C5, C6's sgd and C7's BN on: the suite trains it once and those questions read it.",
                "",
            ]
            lines += md_table(
                [
                    "device",
                    "workers",
                    "load (s/epoch)",
                    "train (s/epoch)",
                    "epoch (s)",
                    "batches/epoch",
                    "also answers",
                ],
                rows,
            )
            for device in dict.fromkeys(str(b.param("device", "cpu")) for b in training):
                points = [
                    (b, as_number(b.param("workers"))) for b in training if str(b.param("device", "cpu")) == device
                ]
                load = [
                    (int(w), phase_mean(b, "load_s"))
                    for b, w in points
                    if w is not None and phase_mean(b, "load_s") is not None
                ]
                epoch = [(int(w), epoch_time(b)) for b, w in points if w is not None and epoch_time(b) is not None]
                if load:
                    series[f"data loading, with training ({device})"] = ([w for w, _ in load], [t for _, t in load])  # type: ignore[misc]  # the filter above leaves no None
                if epoch:
                    series[f"whole epoch, with training ({device})"] = ([w for w, _ in epoch], [t for _, t in epoch])  # type: ignore[misc]  # the filter above leaves no None
        loader = sorted(run.group(groups.C3_LOADER), key=lambda b: as_number(b.param("workers")) or 0)
        if loader:
            rows = [
                [
                    str(b.param("workers")),
                    fmt_s(phase_mean(b, "load_s") or b.stat("mean")),
                    fmt_int(b.extra("images")),
                    fmt_rate(b.extra("images_per_s")),
                ]
                for b in loader
            ]
            lines += ["Loader only, one full epoch on the CPU (`C3-loader`):", ""]
            lines += md_table(["workers", "load (s/epoch)", "images", "images/s"], rows)
            loader_points = [(as_number(b.param("workers")), phase_mean(b, "load_s") or b.stat("mean")) for b in loader]
            pts = [(int(w), t) for w, t in loader_points if w is not None and t is not None]
            if pts:
                series["data loading, loader only, full epoch"] = ([w for w, _ in pts], [t for _, t in pts])
        answer, how = c32_of(run)
        chosen = None
        if answer:
            chosen = int(answer["workers"])
            measured = answer.get("measured") or {}
            measured_text = (
                ", ".join(f"{w}: {fmt_s(t)} s" for w, t in measured.items()) if isinstance(measured, dict) else NR
            )
            lines += [
                f"**C3.2: {chosen} workers** (loading {fmt_s(answer.get('load_s'))} s per epoch; "
                f"best {fmt_s(answer.get('best_load_s'))} s at {answer.get('best_workers', NR)} workers).",
                "",
                f"Rule: {answer.get('rule', NR)}. Source: {answer.get('source', NR)}; "
                f"{how}. Measured load_s by workers: {measured_text}.",
                "",
            ]
        else:
            lines += [
                "**C3.2**: not recorded (the run has neither a recorded answer nor two worker counts to choose from).",
                "",
            ]
        if series:
            title = f"C3: loading time vs workers ({run.label})"
            lines += figures.add(f"c3_workers_{index}", title, plots.workers_curve, series, title, chosen)
    return lines
