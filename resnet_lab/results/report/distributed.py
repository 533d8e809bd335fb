"""The answer sheet's data-parallel sections: D1-D4 here, D5 in `d5.py`, read from saved runs.

The scaling model's section is `scaling.py` (`resnet-lab scaling` reuses it). Nothing here
measures anything or imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...distributed.scaling import GB, ring_bytes_per_rank, scaling_table
from ...spec import groups
from .. import plots_distributed
from ..runs import Bench, Run, as_number
from .d5 import d5_section
from .dvalues import MODEL_WORLD_SIZES, batch_of, device_of, fmt_ms, fmt_share, found, oom, per_step, ranks_of, steps
from .format import NR, Figures, fmt_int, fmt_loss, fmt_num, fmt_rate, fmt_s, md_table, not_run, sources_line
from .scaling import scaling_inputs

# ----------------------------------------------------------------------------- D1


def d1_section(runs: Sequence[Run]) -> list[str]:
    lines = [
        "## D1: batch size on one device",
        "",
        "Training time of the 2nd of 2 epochs: host→device copy, forward, backward and update, device-synchronized; "
        "no data I/O (waiting for the loader is timed apart). Batches 32, 128, "
        "512, … ×4 until the device runs out of memory, "
        "which is recorded as the answer. `step` = epoch training time / batches; the full-epoch figure is that step "
        "× the steps of one pass over the training set (the smoke preset caps epochs at a few batches).",
        "",
    ]
    benches = found(runs, groups.D1)
    if not benches:
        return lines + not_run(groups.D1, runs)
    lines += sources_line(run for run, _ in benches)
    for device in dict.fromkeys(device_of(b) for _, b in benches):
        rows, fits, failed = [], [], []
        mine = sorted((b for _, b in benches if device_of(b) == device), key=lambda b: batch_of(b) or 0)
        for b in mine:
            batch = batch_of(b)
            if oom(b):
                failed.append((batch, b.extra("error")))
                rows.append(
                    [fmt_int(batch), fmt_int(b.extra("threads_per_rank")), NR, NR, NR, NR, NR, NR, "**out of memory**"]
                )
                continue
            fits.append(batch)
            records = b.epochs()
            images = as_number(records[-1].get("images")) if records else None
            training = b.number("training_s")
            rows.append(
                [
                    fmt_int(batch),
                    fmt_int(b.extra("threads_per_rank")),
                    fmt_int(b.extra("batches_per_epoch")),
                    fmt_s(training),
                    fmt_s(b.number("step_s")),
                    fmt_rate(images / training if images and training else None),
                    fmt_s(b.number("full_epoch_training_s")),
                    fmt_loss(b.number("loss")),
                    "no",
                ]
            )
        lines += [f"### device={device}", ""]
        lines += md_table(
            [
                "batch",
                "threads",
                "batches/epoch",
                "training (s/epoch)",
                "step (s)",
                "images/s",
                "full-epoch estimate (s)",
                "loss",
                "out of memory",
            ],
            rows,
        )
        largest = max((f for f in fits if f is not None), default=None)
        if failed:
            batch, error = min(failed, key=lambda f: f[0] or 0)
            lines += [
                f"**Largest batch that fits on {device}: {fmt_int(largest)}** (out of "
                f"memory at batch {fmt_int(batch)}: {error or NR}).",
                "",
            ]
        else:
            cap = (
                " (on a CPU the preset caps the sweep: there is no out-of-memory error to stop at)"
                if device == "cpu"
                else ""
            )
            lines += [f"**Largest batch run on {device}: {fmt_int(largest)}**; memory did not run out{cap}.", ""]
    return lines


# ----------------------------------------------------------------------------- D2


def d1_step(runs: Sequence[Run], device: str, batch: int | None) -> float | None:
    for _, b in found(runs, groups.D1):
        if device_of(b) == device and batch_of(b) == batch and not oom(b):
            return b.number("step_s")
    return None


def d2_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = ["## D2: speedup with more ranks (DistributedDataParallel)", ""]
    benches = found(runs, groups.D2)
    if not benches:
        return lines + not_run(groups.D2, runs)
    note = next((b.extra("scaling_note") for _, b in benches if b.extra("scaling_note")), None)
    lines += [
        "**Weak scaling.** "
        f"{note[0].upper() + note[1:] if isinstance(note, str) else NR}. "
        "Speedup = images/s with N ranks ÷ images/s of D1 "
        "at the same per-rank batch (= N × D1 step ÷ DDP step); efficiency = speedup ÷ N.",
        "",
    ]
    lines += sources_line(run for run, _ in benches)
    rows = []
    for _, b in sorted(benches, key=lambda rb: (device_of(rb[1]), batch_of(rb[1]) or 0, ranks_of(rb[1]))):
        step, base = b.number("step_s"), b.number("d1_step_s") or d1_step(runs, device_of(b), batch_of(b))
        speedup = ranks_of(b) * base / step if step and base else None
        rows.append(
            [
                device_of(b),
                str(b.extra("backend") or NR),
                str(ranks_of(b)),
                fmt_int(batch_of(b)),
                fmt_int(b.extra("global_batch")),
                fmt_int(b.extra("threads_per_rank")),
                fmt_s(step),
                fmt_s(base),
                fmt_num(speedup, 3),
                fmt_num(speedup / ranks_of(b) if speedup else None, 3),
                fmt_s(b.number("full_epoch_training_s")),
            ]
        )
    lines += md_table(
        [
            "device",
            "backend",
            "ranks",
            "batch/rank",
            "global batch",
            "threads/rank",
            "step (s)",
            "D1 step (s)",
            "speedup",
            "efficiency",
            "full-epoch estimate (s)",
        ],
        rows,
    )
    cpu = [(run, b) for run, b in benches if device_of(b) == "cpu"]
    if cpu:
        run, b = cpu[0]
        cores = run.machine().cpu_count
        d1_threads = next(
            (x.extra("threads_per_rank") for _, x in found(runs, groups.D1) if device_of(x) == "cpu"), None
        )
        lines += [
            f'**What a CPU "speedup" measures.** The ranks shared the {fmt_int(cores)} cores of one CPU '
            f"({fmt_int(b.extra('threads_per_rank'))} thread(s) per rank; D1 ran "
            f"one process with {fmt_int(d1_threads)}). "
            "No hardware was added: the figure mostly measures how splitting the "
            "same cores between processes (and their "
            "contention for memory bandwidth, plus gloo's allreduce running on "
            "those cores) changes a step, not what more "
            "devices would give. The scaling model below separates the two.",
            "",
        ]
    measured: dict[str, tuple[list[int], list[float]]] = {}
    for _, b in benches:
        step, base = b.number("step_s"), b.number("d1_step_s") or d1_step(runs, device_of(b), batch_of(b))
        if step and base:
            label = f"{device_of(b)}, batch {batch_of(b)}/rank"
            xs, ys = measured.setdefault(label, ([1], [1.0]))
            xs.append(ranks_of(b))
            ys.append(ranks_of(b) * base / step)
    predicted: dict[str, tuple[list[int], list[float]]] = {}
    for label in measured:
        device, batch = label.split(", batch ")[0], int(label.split("batch ")[1].split("/")[0])
        inputs, _ = scaling_inputs(runs, device, batch)
        if inputs is not None:
            sizes = sorted(set(MODEL_WORLD_SIZES) | set(measured[label][0]))
            table = scaling_table(inputs, sizes)
            predicted[label] = (sizes, [float(r["speedup_no_overlap"]) for r in table])
    if measured:
        title = "D2: speedup vs ranks, per batch (weak scaling)"
        lines += figures.add("d2_speedup", title, plots_distributed.speedup_vs_world_size, measured, predicted, title)
    return lines


# ----------------------------------------------------------------------------- D3


def d3_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = [
        "## D3: computation vs communication",
        "",
        "Seconds per epoch (the reported epoch's steps). *Lab's method*: the "
        "DDP epoch minus D1's training time for as many "
        "steps at that per-rank batch. *Direct*, in the same processes: every "
        "step also runs under `no_sync()` (forward and "
        "backward without allreduce); DDP minus no_sync is the communication "
        "backward did not hide (exposed), and a DDP "
        "communication hook times each bucket's allreduce; allreduce minus exposed is what overlapped with backward. "
        "Where the two methods differ, D1's process was not a fair compute "
        "baseline for a rank (other threads, other contention).",
        "",
    ]
    benches = found(runs, groups.D3)
    if not benches:
        return lines + not_run(groups.D3, runs)
    lines += sources_line(run for run, _ in benches)
    rows, labels, compute, comm = [], [], [], []
    for _, b in sorted(benches, key=lambda rb: (device_of(rb[1]), batch_of(rb[1]) or 0, ranks_of(rb[1]))):
        reduce, exposed, overlap = b.number("allreduce_s"), b.number("comm_exposed_s"), b.number("overlap_s")
        share = overlap / reduce if overlap is not None and reduce else None
        d1 = b.number("d1_training_s")
        if d1 is None and (base := d1_step(runs, device_of(b), batch_of(b))) is not None and steps(b):
            d1 = base * steps(b)  # type: ignore[operator]  # steps(b) tested just above
        ddp = b.number("ddp_training_s")
        lab = (
            b.number("comm_lab_s")
            if b.number("comm_lab_s") is not None
            else (ddp - d1 if ddp is not None and d1 is not None else None)
        )
        rows.append(
            [
                device_of(b),
                str(ranks_of(b)),
                fmt_int(batch_of(b)),
                fmt_int(steps(b)),
                fmt_s(ddp),
                fmt_s(b.number("nosync_training_s")),
                fmt_s(exposed),
                fmt_s(reduce),
                f"{fmt_s(overlap)} ({fmt_share(share)})",
                fmt_s(lab),
                fmt_s(d1),
            ]
        )
        name = f"{device_of(b)} ×{ranks_of(b)}, b{batch_of(b)}"
        if b.number("nosync_training_s") is not None and exposed is not None:
            labels.append(f"{name}: direct")
            compute.append(float(b.number("nosync_training_s")))  # type: ignore[arg-type]  # tested not None just above
            comm.append(exposed)
        if d1 is not None and lab is not None:
            labels.append(f"{name}: lab's method")
            compute.append(d1)
            comm.append(lab)
    lines += md_table(
        [
            "device",
            "ranks",
            "batch/rank",
            "steps",
            "DDP training (s)",
            "no_sync training (s)",
            "exposed comm (s)",
            "allreduce, hook (s)",
            "overlapped (s, share)",
            "lab's method: DDP − D1 (s)",
            "D1 training (s)",
        ],
        rows,
    )
    lines += [
        "Negative communication means the baseline was slower than the DDP pass it is subtracted from: "
        "noise, or (lab's method) a baseline measured under other conditions.",
        "",
    ]
    if labels:
        title = "D3: computation and communication per epoch"
        parts = {"computation": compute, "communication (exposed)": comm}
        lines += figures.add(
            "d3_compute_comm",
            title,
            plots_distributed.stacked_bars,
            labels,
            parts,
            title,
            "seconds per epoch",
        )
    return lines


# ----------------------------------------------------------------------------- D4


def d4_section(runs: Sequence[Run]) -> list[str]:
    lines = [
        "## D4: allreduce bandwidth",
        "",
        "fp32 allreduce of all gradients (the lab's 11,173,962 parameters, "
        "44.7 MB) and of one DDP bucket (25 MiB). As nccl-tests "
        "defines them: algbw = bytes ÷ time; busbw = algbw × 2(n−1)/n, since a "
        "ring allreduce moves 2(n−1)/n × the bytes through "
        "each rank's link. Time per allreduce: median over rounds of "
        "back-to-back operations, each round the slowest rank's.",
        "",
    ]
    benches = found(runs, groups.D4)
    if not benches:
        return lines + not_run(groups.D4, runs)
    lines += sources_line(run for run, _ in benches)
    rows = []
    for _, b in benches:
        rows.append(
            [
                device_of(b),
                str(b.extra("backend") or NR),
                str(ranks_of(b)),
                str(b.extra("size") or NR),
                fmt_int(b.extra("size_bytes")),
                fmt_ms(b.number("time_s")),
                fmt_num(b.number("algbw_gb_per_s"), 4),
                fmt_num(b.number("busbw_gb_per_s"), 4),
                fmt_int(b.extra("ring_bytes_per_rank")),
            ]
        )
    lines += md_table(
        [
            "device",
            "backend",
            "ranks",
            "size",
            "bytes",
            "ms per allreduce",
            "algbw (GB/s)",
            "busbw (GB/s)",
            "ring bytes per rank",
        ],
        rows,
    )
    util = []
    for _, d3 in found(runs, groups.D3):
        bw = gradient_bandwidth(runs, device_of(d3), ranks_of(d3))
        gradient_bytes = as_number(d3.extra("gradient_bytes"))
        hook = per_step(d3, "allreduce_s")
        if bw is None or not gradient_bytes:
            continue
        implied = gradient_bytes / (bw.number("algbw_gb_per_s") * GB)  # type: ignore[operator]  # bw is a D4 bench with algbw recorded
        effective = ring_bytes_per_rank(gradient_bytes, ranks_of(d3)) / hook / GB if hook else None
        util.append(
            [
                device_of(d3),
                str(ranks_of(d3)),
                fmt_int(batch_of(d3)),
                fmt_ms(implied),
                fmt_ms(hook),
                fmt_ms(per_step(d3, "comm_exposed_s")),
                fmt_ms(per_step(d3, "comm_lab_s")),
                fmt_share(implied / hook if hook else None),
                fmt_num(effective, 4),
            ]
        )
    if util:
        lines += [
            "**Utilization (the lab's question).** The ring-allreduce time per "
            "step that D4's bandwidth implies for the gradients, "
            "against D3's communication per step in training: the hook's allreduce "
            "time, the exposed part, and the lab's method. "
            "Utilization = implied ÷ hook time (how much of the measured allreduce "
            "bandwidth DDP got while training); the "
            "effective busbw is 2(n−1)/n × gradient bytes ÷ hook time.",
            "",
        ]
        lines += md_table(
            [
                "device",
                "ranks",
                "batch/rank",
                "implied (ms/step)",
                "hook allreduce (ms/step)",
                "exposed (ms/step)",
                "lab's method (ms/step)",
                "utilization",
                "effective busbw (GB/s)",
            ],
            util,
        )
    return lines


def gradient_bandwidth(runs: Sequence[Run], device: str, ranks: int) -> Bench | None:
    """D4's all-gradients benchmark for (device, ranks), the last one found."""
    match = [
        b
        for _, b in found(runs, groups.D4)
        if device_of(b) == device and ranks_of(b) == ranks and b.extra("size") == "gradients"
    ]
    return match[-1] if match else None


def section(runs: Sequence[Run], figures: Figures) -> list[str]:
    """Every D section, in the lab's order (the scaling model follows as its own section, scaling.py)."""
    return (
        d1_section(runs) + d2_section(runs, figures) + d3_section(runs, figures) + d4_section(runs) + d5_section(runs)
    )
