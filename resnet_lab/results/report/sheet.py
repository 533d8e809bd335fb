"""`resnet-lab report RUN.json [RUN.json ...] --out DIR`: the lab's answer sheet from saved runs.

Writes DIR/answers.md (one section per question, each naming the run, machine
and preset its numbers come from) and the PNG figures it links. A question
that is absent from every input is listed as "not run"; a figure a run did not
record reads "not recorded". Nothing here measures anything.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import plots
from .benchjson import DEFAULT_STORAGE, Bench, Run, as_number, load_runs
from .errors import LabError
from .fileio import atomic_open

NR = "not recorded"
PHASES = ("startup_s", "load_s", "copy_s", "train_s", "metrics_s")
# LAB_SPEC's answers to Q1-Q4, shown beside the measured figures.
LAB_ANSWERS = {
    ("sgd", "conv_main_path"): 17,
    ("sgd", "conv_shortcut"): 3,
    ("sgd", "conv_all_conv2d"): 20,
    ("sgd", "linear_in_features"): 512,
    ("sgd", "parameters"): 11_173_962,
    ("sgd", "gradient_elements"): 11_173_962,
    ("sgd", "gradient_tensors"): 62,
    ("no_bn", "parameters"): 11_164_362,
    ("adam", "gradient_elements"): 11_173_962,
    ("adam", "gradient_tensors"): 62,
    ("sgd", "state_tensors"): 62,
    ("adam", "state_tensors"): 2 * 62,
    ("adam", "state_elements"): 2 * 11_173_962,
    ("adam", "state_bytes"): 2 * 11_173_962 * 4,  # float32
}


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------


def fmt_s(value: Any) -> str:
    v = as_number(value)
    if v is None:
        return NR
    return f"{v:.3f}" if abs(v) >= 0.1 else f"{v:.4f}"


def fmt_num(value: Any, digits: int = 4) -> str:
    v = as_number(value)
    return NR if v is None else f"{v:.{digits}g}"


def fmt_rate(value: Any) -> str:
    v = as_number(value)
    return NR if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}")


def fmt_loss(value: Any) -> str:
    v = as_number(value)
    return NR if v is None else f"{v:.4f}"


def fmt_int(value: Any) -> str:
    v = as_number(value)
    return NR if v is None else f"{int(v):,}"


def percent(value: Any) -> float | None:
    """top-1 is recorded as a fraction; a value above 1 is taken as already in percent."""
    v = as_number(value)
    if v is None:
        return None
    return v * 100.0 if v <= 1.0 else v


def fmt_pct(value: Any) -> str:
    v = percent(value)
    return NR if v is None else f"{v:.2f} %"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def phase_mean(bench: Bench, key: str, *, skip_warmup: bool = False) -> float | None:
    """Mean of `key` over the epoch records (optionally without warm-up epochs), else the summary value."""
    records = [r for r in bench.epochs() if not (skip_warmup and r.get("warmup") is True)]
    values = [v for v in (as_number(r.get(key)) for r in records) if v is not None]
    if values:
        return statistics.fmean(values)
    return None if skip_warmup else bench.number(key)


def last_value(bench: Bench, key: str) -> float | None:
    value = bench.number(key)
    if value is None:
        values = bench.epoch_values(key)
        value = values[-1] if values else None
    return value


def epoch_time(bench: Bench) -> float | None:
    """Mean epoch time: the per-epoch records, else pytest-benchmark's mean over rounds."""
    return phase_mean(bench, "epoch_s") or bench.stat("mean")


def from_line(run: Run, bench: Bench | None = None) -> str:
    what = f", benchmark `{bench.name}`" if bench else ""
    return f"_From {run.describe()}{what}._"


def sources_line(runs: Iterable[Run]) -> list[str]:
    """`_From A (machine; preset) and B (...)._` for a table that mixes runs."""
    return ["_From " + " and ".join(run.describe() for run in dict.fromkeys(runs)) + "._", ""]


def answered_by(bench: Bench) -> str:
    """' (measured by `test_c3_workers[...]`)' for a question answered by another benchmark's run (lab.served)."""
    by = bench.extra("served_by")
    return f" (measured by `{by}`)" if by else ""


def not_run(group: str, runs: Sequence[Run], why: str = "") -> list[str]:
    files = ", ".join(f"`{r.label}`" for r in runs)
    return [f"**Not run**: no `{group}` benchmark in {files}.{(' ' + why) if why else ''}", ""]


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------


@dataclass
class Figures:
    """Saves figures into the output folder and hands back the markdown that links them."""

    out: Path
    written: list[Path] = field(default_factory=list)

    def add(self, name: str, caption: str, draw: Callable[[Path], Path]) -> list[str]:
        path = draw(self.out / f"{slug(name)}.png")
        self.written.append(path)
        return [f"![{caption}]({path.name})", ""]


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------


def runs_section(runs: Sequence[Run]) -> list[str]:
    lines = ["## Inputs", ""]
    rows = []
    for run in runs:
        commit = run.commit_info.get("id")
        dirty = " (dirty)" if run.commit_info.get("dirty") else ""
        rows.append([
            f"`{run.label}`",
            str(run.path),
            run.datetime or NR,
            f"{str(commit)[:10]}{dirty}" if commit else NR,
            run.machine().text,
            run.workload(),
            str(len(run.benchmarks)),
        ])
    lines += md_table(["run", "file", "date", "commit", "machine", "workload", "benchmarks"], rows)
    return lines


def c2_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = [
        "## C1/C2: where an epoch goes (data loading, training, total)",
        "",
        "Data loading is the time spent waiting for the next batch, excluding the host→device copy; "
        "training is forward, loss, backward and optimizer step, device-synchronized; metric bookkeeping "
        "(loss.item(), accuracy) is timed apart. Top-1 is the fraction of correct argmax over every "
        "training sample seen in the epoch (C1). Times in seconds.",
        "",
    ]
    benches = [(run, b) for run in runs for b in run.group("C2")]
    if not benches:
        return lines + not_run("C2", runs)
    for index, (run, bench) in enumerate(benches, 1):
        lines += [f"### {bench.param_text}", "", from_line(run, bench), ""]
        records = bench.epochs()
        rows = []
        for r in records:
            rows.append([
                str(r.get("epoch", NR)), fmt_int(r.get("batches")), fmt_int(r.get("images")),
                *(fmt_s(r.get(k)) for k in PHASES), fmt_s(r.get("epoch_s")), fmt_rate(r.get("images_per_s")),
                fmt_loss(r.get("loss")), fmt_pct(r.get("top1")), "yes" if r.get("warmup") is True else "no",
            ])
        rows.append([
            f"**mean over {len(records) or 'all'} epochs**", "", "",
            *(fmt_s(phase_mean(bench, k)) for k in PHASES), fmt_s(epoch_time(bench)),
            fmt_rate(phase_mean(bench, "images_per_s")), fmt_loss(last_value(bench, "loss")) + " (last)",
            fmt_pct(last_value(bench, "top1")) + " (last)", "",
        ])
        if len(records) > 1 and any(r.get("warmup") is True for r in records):
            rows.append([
                "**mean without warm-up**", "", "",
                *(fmt_s(phase_mean(bench, k, skip_warmup=True)) for k in PHASES),
                fmt_s(phase_mean(bench, "epoch_s", skip_warmup=True)),
                fmt_rate(phase_mean(bench, "images_per_s", skip_warmup=True)), "", "", "",
            ])
        lines += md_table(
            ["epoch", "batches", "images", "start-up (s)", "load (s)", "copy (s)", "train (s)", "metrics (s)", "epoch (s)", "images/s", "loss", "top-1", "warm-up"],
            rows,
        )
        if bench.number("test_top1") is not None:
            lines += [f"Test set after the last epoch: loss {fmt_loss(bench.number('test_loss'))}, top-1 {fmt_pct(bench.number('test_top1'))}.", ""]
        plotted = phase_series(records)
        if plotted:
            epochs, phases = plotted
            title = f"C2 phases per epoch ({bench.param_text}, {run.label})"
            lines += figures.add(f"c2_phases_{index}_{bench.param_text}", title, lambda p: plots.phase_breakdown(p, epochs, phases, title))
    return lines


def phase_series(records: Sequence[dict[str, Any]]) -> tuple[list[int], dict[str, list[float]]] | None:
    """Per-epoch phase seconds for the stacked plot, with `other_s` = epoch - phases (>= 0)."""
    rows = [r for r in records if as_number(r.get("epoch_s")) is not None]
    if not rows:
        return None
    epochs = [int(as_number(r.get("epoch")) or i) for i, r in enumerate(rows, 1)]
    phases: dict[str, list[float]] = {}
    for key in PHASES:
        values = [as_number(r.get(key)) for r in rows]
        if all(v is not None for v in values):
            phases[key] = [float(v) for v in values]  # type: ignore[arg-type]
    phases["other_s"] = [
        max(0.0, float(r["epoch_s"]) - sum(phases[k][i] for k in phases)) for i, r in enumerate(rows)
    ]
    return epochs, phases


def c32_of(run: Run) -> tuple[dict[str, Any] | None, str]:
    """The run's recorded C3.2 answer, else one computed here with the suite's rule from what it measured."""
    answer = run.lab.get("c3_2")
    if isinstance(answer, dict) and answer.get("workers") is not None:
        return answer, "recorded by the suite"
    from .suite import c32_answer  # the suite's own rule, not a copy of it

    for group, source in (("C3-loader", "C3-loader (full CPU loader epochs)"), ("C3", "C3 (training)")):
        times = {}
        for bench in run.group(group):
            workers, load = as_number(bench.params.get("workers", bench.extra("workers"))), phase_mean(bench, "load_s")
            if workers is not None and load is not None and bench.params.get("device", "cpu") == "cpu":
                times[int(workers)] = load
        if len(times) >= 2:
            return c32_answer(times, source=source), "computed by the report with the suite's rule (the run did not record it)"
    return None, ""


def c3_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = [
        "## C3: data-loading time vs num_workers",
        "",
        "Total data-loading time per epoch for num_workers = 0, 4, 8, 12, 16, … (continued while it improves). "
        "`C3` measures it while training; `C3-loader` iterates one full epoch of the loader alone on the CPU.",
        "",
    ]
    present = [r for r in runs if r.group("C3") or r.group("C3-loader")]
    if not present:
        return lines + not_run("C3", runs)
    for index, run in enumerate(present, 1):
        lines += [f"### {run.label}", "", from_line(run), ""]
        series: dict[str, tuple[list[int], list[float]]] = {}
        training = sorted(run.group("C3"), key=lambda b: (str(b.params.get("device")), as_number(b.params.get("workers")) or 0))
        if training:
            rows = []
            for bench in training:
                rows.append([
                    str(bench.params.get("device", bench.extra("device") or NR)), str(bench.params.get("workers", bench.extra("workers"))),
                    fmt_s(phase_mean(bench, "load_s")), fmt_s(phase_mean(bench, "train_s")), fmt_s(epoch_time(bench)),
                    fmt_int(bench.extra("batches_per_epoch")), ", ".join(run.serves(bench.name)) or "—",
                ])
            lines += ["With training (`C3`), means over epochs. The point at the C3.2 count is also the configuration of "
                      "C4's C3.2 row, C5, C6's sgd and C7's BN on: the suite trains it once and those questions read it.", ""]
            lines += md_table(["device", "workers", "load (s/epoch)", "train (s/epoch)", "epoch (s)", "batches/epoch", "also answers"], rows)
            for device in dict.fromkeys(str(b.params.get("device", "cpu")) for b in training):
                points = [(b, as_number(b.params.get("workers"))) for b in training if str(b.params.get("device", "cpu")) == device]
                load = [(int(w), phase_mean(b, "load_s")) for b, w in points if w is not None and phase_mean(b, "load_s") is not None]
                epoch = [(int(w), epoch_time(b)) for b, w in points if w is not None and epoch_time(b) is not None]
                if load:
                    series[f"data loading, with training ({device})"] = ([w for w, _ in load], [t for _, t in load])  # type: ignore[misc]
                if epoch:
                    series[f"whole epoch, with training ({device})"] = ([w for w, _ in epoch], [t for _, t in epoch])  # type: ignore[misc]
        loader = sorted(run.group("C3-loader"), key=lambda b: as_number(b.params.get("workers", b.extra("workers"))) or 0)
        if loader:
            rows = [[
                str(b.params.get("workers", b.extra("workers"))), fmt_s(phase_mean(b, "load_s") or b.stat("mean")),
                fmt_int(b.extra("images")), fmt_rate(b.extra("images_per_s")),
            ] for b in loader]
            lines += ["Loader only, one full epoch on the CPU (`C3-loader`):", ""]
            lines += md_table(["workers", "load (s/epoch)", "images", "images/s"], rows)
            pts = [(as_number(b.params.get("workers", b.extra("workers"))), phase_mean(b, "load_s") or b.stat("mean")) for b in loader]
            pts = [(int(w), t) for w, t in pts if w is not None and t is not None]
            if pts:
                series["data loading, loader only, full epoch"] = ([w for w, _ in pts], [t for _, t in pts])
        answer, how = c32_of(run)
        chosen = None
        if answer:
            chosen = int(answer["workers"])
            measured = answer.get("measured") or {}
            measured_text = ", ".join(f"{w}: {fmt_s(t)} s" for w, t in measured.items()) if isinstance(measured, dict) else NR
            lines += [
                f"**C3.2: {chosen} workers** (loading {fmt_s(answer.get('load_s'))} s per epoch; "
                f"best {fmt_s(answer.get('best_load_s'))} s at {answer.get('best_workers', NR)} workers).",
                "",
                f"Rule: {answer.get('rule', NR)}. Source: {answer.get('source', NR)}; {how}. Measured load_s by workers: {measured_text}.",
                "",
            ]
        else:
            lines += ["**C3.2**: not recorded (the run has neither a recorded answer nor two worker counts to choose from).", ""]
        if series:
            title = f"C3: loading time vs workers ({run.label})"
            lines += figures.add(f"c3_workers_{index}", title, lambda p: plots.workers_curve(p, series, title, chosen))
    return lines


def c4_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = ["## C4: one worker vs the C3.2 worker count", "", "Means over epochs, seconds per epoch.", ""]
    blocks = [(run, device, [b for b in run.group("C4") if str(b.params.get("device", "cpu")) == device])
              for run in runs for device in dict.fromkeys(str(b.params.get("device", "cpu")) for b in run.group("C4"))]
    if not blocks:
        return lines + not_run("C4", runs)
    for index, (run, device, benches) in enumerate(blocks, 1):
        benches.sort(key=lambda b: as_number(b.extra("workers")) or 0)
        lines += [f"### device={device}", "", from_line(run), ""]
        rows, labels, load, train = [], [], [], []
        for b in benches:
            workers = b.extra("workers")
            choice = b.params.get("choice") or b.extra("choice") or ""
            label = f"{workers} worker{'s' if workers != 1 else ''}" + (" (C3.2)" if str(choice).startswith("c3") else "") + answered_by(b)
            ld, tr, ep = phase_mean(b, "load_s"), phase_mean(b, "train_s"), epoch_time(b)
            share = f"{ld / ep:.0%}" if ld is not None and ep else NR
            rows.append([label, fmt_s(ld), fmt_s(tr), fmt_s(ep), share])
            if ld is not None and tr is not None:
                labels.append(label)
                load.append(ld)
                train.append(tr)
        lines += md_table(["workers", "load (s)", "train (s)", "epoch (s)", "loading share of epoch"], rows)
        rule = next((b.extra("c32_rule") for b in benches if b.extra("c32_rule")), None)
        if rule:
            lines += [f"C3.2 count from: {rule}.", ""]
        if labels:
            title = f"C4: loading vs training time ({device}, {run.label})"
            parts = {plots.PHASE_NAMES["load_s"]: load, plots.PHASE_NAMES["train_s"]: train}
            lines += figures.add(f"c4_side_by_side_{index}_{device}", title, lambda p: plots.grouped_bars(p, labels, parts, title))
    return lines


def c5_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = ["## C5: CPU vs GPU at the C3.2 worker count", ""]
    benches = [(run, b) for run in runs for b in run.group("C5")]
    if not benches:
        return lines + not_run("C5", runs)
    rows, labels, epoch_s, rates = [], [], [], []
    by_device: dict[str, tuple[float | None, float | None]] = {}
    for run, b in benches:
        device = str(b.params.get("device", b.extra("device") or NR))
        ep, rate = epoch_time(b), phase_mean(b, "images_per_s")
        rows.append([device + answered_by(b), str(b.extra("workers") if b.extra("workers") is not None else NR), fmt_s(ep),
                     fmt_s(b.number("steady_epoch_s")), fmt_rate(rate), fmt_int(b.extra("batches_per_epoch")), f"`{run.label}`"])
        by_device.setdefault(device.split(":")[0], (ep, rate))
        if ep is not None:
            labels.append(f"{device} ({run.label})" if len(runs) > 1 else device)
            epoch_s.append(ep)
            rates.append(rate)
    lines += sources_line(run for run, _ in benches)
    lines += md_table(["device", "workers", "mean epoch (s)", "steady epoch (s)", "images/s", "batches/epoch", "run"], rows)
    cpu, gpu = by_device.get("cpu"), by_device.get("cuda")
    if cpu and gpu and cpu[0] and gpu[0]:
        speed = f"**GPU speedup: {cpu[0] / gpu[0]:.1f}×** in mean epoch time"
        if cpu[1] and gpu[1]:
            speed += f" ({gpu[1] / cpu[1]:.1f}× in images/s, the fair figure when epochs are capped)"
        lines += [speed + ".", ""]
    else:
        missing = "GPU (cuda)" if not gpu else "CPU"
        lines += [f"Speedup: not measured — no {missing} C5 benchmark in the input (CUDA benchmarks are skipped on machines without a GPU; "
                  "pass a GPU run's JSON as another input).", ""]
    if labels:
        title = "C5: CPU vs GPU"
        lines += figures.add("c5_devices", title, lambda p: plots.device_bars(p, labels, epoch_s, rates, title))
    return lines


def curves_of(bench: Bench) -> tuple[list[int], list[float], list[float]]:
    records = bench.epochs()
    epochs = [int(as_number(r.get("epoch")) or i) for i, r in enumerate(records, 1)]
    loss = [v for v in (as_number(r.get("loss")) for r in records) if v is not None]
    top1 = [v for v in (percent(r.get("top1")) for r in records) if v is not None]
    return epochs, loss, top1


def training_table_section(
    runs: Sequence[Run], figures: Figures, group: str, param: str, title: str, intro: str, label: Callable[[Any], str]
) -> list[str]:
    """C6 and C7: one row per configuration, curves of loss and top-1 per epoch."""
    lines = [title, "", intro, ""]
    blocks = [(run, device, [b for b in run.group(group) if str(b.params.get("device", "cpu")) == device])
              for run in runs for device in dict.fromkeys(str(b.params.get("device", "cpu")) for b in run.group(group))]
    if not blocks:
        return lines + not_run(group, runs)
    for index, (run, device, benches) in enumerate(blocks, 1):
        lines += [f"### device={device}", "", from_line(run), ""]
        rows, curves = [], {}
        for b in benches:
            name = label(b.params.get(param, b.extra(param)))
            rows.append([name + answered_by(b), fmt_s(phase_mean(b, "train_s")), fmt_s(epoch_time(b)), fmt_loss(last_value(b, "loss")),
                         fmt_pct(last_value(b, "top1")), fmt_pct(b.number("test_top1"))])
            epochs, loss, top1 = curves_of(b)
            if loss or top1:
                curves[name] = (epochs, loss, top1)
        lines += md_table([param.replace("_", " "), "mean train (s/epoch)", "mean epoch (s)", "final loss", "final top-1 (train)", "test top-1"], rows)
        if curves:
            plot_title = f"{group}: loss and top-1 per epoch ({device}, {run.label})"
            lines += figures.add(f"{group}_curves_{index}_{device}", plot_title, lambda p: plots.epoch_curves(p, curves, plot_title))
    return lines


def c6_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    return training_table_section(
        runs, figures, "C6", "optimizer", "## C6: optimizers",
        "SGD, SGD-Nesterov, Adagrad, Adadelta, Adam; lr 0.1, weight decay 5e-4, momentum 0.9 where the optimizer has it. "
        "Final loss and top-1 are the last epoch's; test top-1 is evaluated after it where the run did.",
        str,
    )


def c7_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    return training_table_section(
        runs, figures, "C7", "batch_norm", "## C7: with and without BatchNorm",
        "C6's SGD setup; 'off' removes every BatchNorm layer (no conv bias either way).",
        lambda v: {True: "BN on", False: "BN off", "True": "BN on", "False": "BN off"}.get(v, f"batch_norm={v}"),
    )


def q_section(runs: Sequence[Run]) -> list[str]:
    lines = ["## Q1–Q4: structure of the model and the optimizer state", ""]
    found = [(run, b) for run in runs for b in run.group("Q1-Q4")]
    if not found:
        return lines + not_run("Q1-Q4", runs)
    run, bench = found[0]
    lines += [from_line(run, bench), ""]
    convention = bench.extra("convention")
    if convention:
        lines += [f"Convention: {convention}.", ""]

    def fact(model: str, key: str) -> Any:
        record = bench.extra(model)
        return record.get(key) if isinstance(record, dict) else None

    facts = [
        ("Q1", "Conv2d on the main path (stem + 16 in blocks)", "sgd", "conv_main_path"),
        ("Q1", "1×1 projection shortcuts", "sgd", "conv_shortcut"),
        ("Q1", "all Conv2d modules", "sgd", "conv_all_conv2d"),
        ("Q2", "input features of the final Linear", "sgd", "linear_in_features"),
        ("Q3", "trainable parameters (SGD model)", "sgd", "parameters"),
        ("Q3", "gradient elements after one backward", "sgd", "gradient_elements"),
        ("Q3", "gradient tensors", "sgd", "gradient_tensors"),
        ("Q3", "SGD state tensors (momentum buffers)", "sgd", "state_tensors"),
        ("Q3", "parameters without BatchNorm", "no_bn", "parameters"),
        ("Q4", "gradient elements with Adam", "adam", "gradient_elements"),
        ("Q4", "gradient tensors with Adam", "adam", "gradient_tensors"),
        ("Q4", "Adam state tensors", "adam", "state_tensors"),
        ("Q4", "Adam state elements", "adam", "state_elements"),
        ("Q4", "Adam state size (bytes)", "adam", "state_bytes"),
    ]
    rows = []
    for question, what, model, key in facts:
        measured = fact(model, key)
        expected = LAB_ANSWERS.get((model, key))
        check = "" if expected is None or measured is None else ("yes" if measured == expected else "**NO**")
        rows.append([question, what, fmt_int(measured), fmt_int(expected) if expected is not None else "", check])
    lines += md_table(["question", "fact", "measured", "lab's answer", "agrees"], rows)
    by_key = fact("adam", "state_by_key")
    if isinstance(by_key, dict) and by_key:
        parts = [f"`{k}`: {fmt_int(v.get('tensors'))} tensors, {fmt_int(v.get('elements'))} elements"
                 for k, v in by_key.items() if isinstance(v, dict)]
        lines += ["Adam state by key: " + "; ".join(parts) + ".", ""]
    if len(found) > 1:
        same = all(b.extra_info.get("sgd") == bench.extra_info.get("sgd") for _, b in found[1:])
        lines += [f"The other {len(found) - 1} input(s) with Q1-Q4 {'agree' if same else 'DIFFER'}.", ""]
    return lines


def q3b_section(runs: Sequence[Run]) -> list[str]:
    lines = ["## Q3b: profiler summary", ""]
    found = [(run, b) for run in runs for b in run.group("Q3b")]
    if not found:
        return lines + not_run("Q3b", runs)
    for run, bench in found:
        lines += [f"### {bench.param_text}", "", from_line(run, bench), ""]
        phases = bench.extra("phases")
        if isinstance(phases, dict) and phases:
            total = sum(as_number(p.get("cpu_time_s")) or 0.0 for p in phases.values() if isinstance(p, dict)) or None
            rows = []
            for name, p in phases.items():
                if not isinstance(p, dict):
                    continue
                cpu = as_number(p.get("cpu_time_s"))
                share = f"{cpu / total:.1%}" if cpu is not None and total else NR
                rows.append([name, fmt_s(cpu), fmt_s(p.get("device_time_s")), fmt_int(p.get("count")), share])
            lines += md_table(["phase", "CPU time (s)", "device time (s)", "calls", "share of CPU time"], rows)
        else:
            lines += ["Phase summary: not recorded.", ""]
        lines += [f"Profiled steps: {fmt_int(bench.extra('steps'))}. Trace (Chrome/Perfetto): `{bench.extra('trace_path') or NR}`. "
                  f"Operator table: `{bench.extra('table_path') or NR}`.", ""]
    return lines


def c8_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = ["## C8: torch.compile and other variants vs eager", ""]
    found = [(run, b) for run in runs for b in run.group("C8")]
    if not found:
        return lines + not_run("C8", runs, "C8 is optional (newer editions of the lab).")
    for index, run in enumerate(dict.fromkeys(r for r, _ in found), 1):
        benches = [b for r, b in found if r is run]
        lines += [f"### {run.label}", "", from_line(run), ""]
        rows, labels, first, steady = [], [], [], []
        # Ratios against the eager baseline of the same run and device, computed here so older JSON gets them too.
        eager_step = {str(b.params.get("device", b.extra("device") or "")): b.number("train_step_s")
                      for b in benches if b.params.get("variant", b.extra("variant")) == "eager"}
        for b in benches:
            variant = str(b.params.get("variant", b.extra("variant") or NR))
            device = str(b.params.get("device", b.extra("device") or ""))
            achieved, peak, mfu = b.number("achieved_flops_per_s"), b.number("peak_flops_per_s"), b.number("mfu")
            step_s, base_s = b.number("train_step_s"), eager_step.get(device)
            ratio = NR if not (step_s and base_s) else f"{base_s / step_s:.2f}×"
            rows.append([variant, device, fmt_s(b.number("first_epoch_s")), fmt_s(b.number("steady_epoch_s")), fmt_s(step_s), ratio,
                         NR if achieved is None else f"{achieved / 1e12:.3g}", NR if peak is None else f"{peak / 1e12:.3g}",
                         NR if mfu is None else f"{mfu:.1%}", fmt_loss(last_value(b, "loss"))])
            if b.number("first_epoch_s") is not None and b.number("steady_epoch_s") is not None:
                labels.append(f"{variant} ({device})" if device else variant)
                first.append(b.number("first_epoch_s"))
                steady.append(b.number("steady_epoch_s"))
        lines += md_table(["variant", "device", "first epoch (s)", "steady epoch (s)", "train step (s)", "vs eager", "achieved TFLOP/s", "peak TFLOP/s", "MFU", "loss"], rows)
        lines += compile_cache_note(benches)
        if labels:
            title = f"C8: first epoch vs steady state ({run.label})"
            parts = {"first epoch (compilation included)": first, "steady-state epoch": steady}
            lines += figures.add(f"c8_variants_{index}", title, lambda p: plots.grouped_bars(p, labels, parts, title, "time per epoch (s)"))
    return lines


def compile_cache_note(benches: Sequence[Bench]) -> list[str]:
    """Whether a compiled variant's first epoch is a cold build or may have loaded an earlier one."""
    compiled = [b for b in benches if b.extra("compile_mode")]
    if not compiled:
        return []
    if all(b.extra("compile_caches") == "off" for b in compiled):
        return ["Compiled variants' first epoch is a cold build: torch.compiler's caches were off.", ""]
    return ["Compiled variants' first epoch: compiler caches were not turned off in every run, so a first epoch "
            "may have loaded an earlier build and understate the compile cost.", ""]


def loader_section(runs: Sequence[Run]) -> list[str]:
    lines = ["## Loader pipelines: DataLoader vs device-resident", ""]
    found = [(run, b) for run in runs for b in run.group("loader")]
    if not found:
        return lines + not_run("loader", runs)
    lines += sources_line(run for run, _ in found)
    rows = []
    for run, b in found:
        speedups = ", ".join(f"{fmt_num(v, 3)}× vs {k.removeprefix('speedup_vs_').replace('_w', ' w')}"
                             for k, v in b.extra_info.items() if k.startswith("speedup_vs_") and as_number(v) is not None)
        rows.append([str(b.params.get("pipeline", b.extra("pipeline") or NR)), str(b.params.get("workers", b.extra("workers"))),
                     str(b.params.get("device", b.extra("device") or NR)), fmt_rate(b.number("images_per_s")),
                     fmt_s(b.stat("median")), speedups, f"`{run.label}`"])
    lines += md_table(["pipeline", "workers", "device", "images/s", "median epoch (s)", "speedup", "run"], rows)
    return lines


KNOWN_GROUPS = {"C2", "C3", "C3-loader", "C4", "C5", "C6", "C7", "Q1-Q4", "Q3b", "C8", "loader", "D1", "D2", "D3", "D4", "D5"}


def other_section(runs: Sequence[Run]) -> list[str]:
    others = [(run, b) for run in runs for b in run.benchmarks if b.group not in KNOWN_GROUPS]
    if not others:
        return []
    lines = ["## Other benchmarks in the input", ""]
    rows = [[str(b.group or ""), f"`{b.name}`", fmt_s(b.stat("median")), f"`{run.label}`"] for run, b in others]
    return lines + md_table(["group", "benchmark", "median (s)", "run"], rows)


def answer_sheet(runs: Sequence[Run], out: Path) -> tuple[str, list[Path]]:
    """The markdown text of answers.md; its figures are written into `out` on the way."""
    figures = Figures(out)
    lines = [
        "# ResNet-18 on CIFAR-10: where does training time go? (answer sheet)",
        "",
        "Generated by `resnet-lab report` from the pytest-benchmark runs listed below. Times are seconds per epoch "
        "unless a column says otherwise; top-1 is in percent; \"not recorded\" means the run did not save that figure.",
        "",
    ]
    lines += runs_section(runs)
    lines += c2_section(runs, figures)
    lines += c3_section(runs, figures)
    lines += c4_section(runs, figures)
    lines += c5_section(runs, figures)
    lines += c6_section(runs, figures)
    lines += c7_section(runs, figures)
    lines += q_section(runs)
    lines += q3b_section(runs)
    lines += c8_section(runs, figures)
    lines += loader_section(runs)
    from .report_distributed import sections as distributed_sections  # imports this module's helpers

    lines += distributed_sections(runs, figures)
    lines += other_section(runs)
    return "\n".join(lines).rstrip() + "\n", figures.written


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="pytest-benchmark JSON files (e.g. a CPU run and a GPU run) or storage ids (0001)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for answers.md and its PNG figures (created if needed)")
    parser.add_argument(
        "--storage", default=DEFAULT_STORAGE, metavar="DIR",
        help=f"pytest-benchmark storage for ids like 0001 (its --benchmark-storage). Default: {DEFAULT_STORAGE}",
    )


def prepare_out(path: str | Path) -> Path:
    """Create the output folder and prove it is writable before any work is done."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except FileExistsError:
        raise LabError(f"--out '{out}' exists and is not a folder") from None
    except OSError as exc:
        raise LabError(f"--out '{out}' is not a writable folder: {exc.strerror or exc}") from None
    return out


def main(args: argparse.Namespace) -> int:
    runs = load_runs(args.runs, args.storage)
    out = prepare_out(args.out)
    try:
        text, written = answer_sheet(runs, out)
        target = out / "answers.md"
        with atomic_open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise LabError(f"could not write into --out '{out}': {exc.strerror or exc}") from None
    print(f"wrote {target} and {len(written)} figure{'s' if len(written) != 1 else ''} in {out}{os.sep}")
    return 0
