"""The answer sheet's data-parallel sections: D1-D5 and the scaling model, read from saved runs.

Called by `report.answer_sheet`; `resnet-lab scaling` reuses the scaling part. Nothing here
measures anything or imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import plots_distributed
from .benchjson import Bench, Run, as_number
from .distributed.scaling import GB, BACKWARD_FRACTION, ScalingInputs, predict, relative_error, ring_bytes_per_rank, scaling_table
from .report import NR, fmt_int, fmt_loss, fmt_num, fmt_pct, fmt_rate, fmt_s, md_table, not_run, sources_line

if TYPE_CHECKING:
    from .report import Figures

D_GROUPS = ("D1", "D2", "D3", "D4", "D5")
MODEL_WORLD_SIZES = (1, 2, 4, 8)
# Bus bandwidth of an allreduce over NVLink between H100s, as published nccl-tests runs report it
# (about 370 GB/s); used for GPU predictions where no D4 of that device was measured.
PUBLISHED_NVLINK_BUSBW = 370.0


def found(runs: Sequence[Run], group: str) -> list[tuple[Run, Bench]]:
    return [(run, b) for run in runs for b in run.group(group)]


def param(bench: Bench, key: str) -> Any:
    value = bench.params.get(key)
    return bench.extra(key) if value is None else value


def device_of(bench: Bench) -> str:
    return str(bench.extra("device") or param(bench, "device") or NR)


def ranks_of(bench: Bench) -> int:
    return int(as_number(bench.extra("world_size")) or as_number(param(bench, "world_size")) or 1)


def batch_of(bench: Bench) -> int | None:
    value = as_number(bench.extra("batch_per_rank")) or as_number(param(bench, "batch_per_rank"))
    return int(value) if value is not None else None


def steps(bench: Bench) -> int | None:
    value = as_number(bench.extra("batches_per_epoch"))
    return int(value) if value else None


def per_step(bench: Bench, key: str) -> float | None:
    value, count = bench.number(key), steps(bench)
    return value / count if value is not None and count else None


def fmt_pct_signed(value: float | None) -> str:
    return NR if value is None else f"{100 * value:+.1f} %"


def fmt_share(value: float | None) -> str:
    """A fraction as percent; unlike report.fmt_pct, values above 1 (efficiency, shares) stay fractions."""
    return NR if value is None else f"{100 * value:.1f} %"


def fmt_ms(seconds: float | None) -> str:
    return NR if seconds is None else f"{1e3 * seconds:.2f}"


def oom(bench: Bench) -> bool:
    return bench.extra("out_of_memory") is True


# ----------------------------------------------------------------------------- D1


def d1_section(runs: Sequence[Run]) -> list[str]:
    lines = [
        "## D1: batch size on one device",
        "",
        "Training time of the 2nd of 2 epochs: host→device copy, forward, backward and update, device-synchronized; "
        "no data I/O (waiting for the loader is timed apart). Batches 32, 128, 512, … ×4 until the device runs out of memory, "
        "which is recorded as the answer. `step` = epoch training time / batches; the full-epoch figure is that step "
        "× the steps of one pass over the training set (the smoke preset caps epochs at a few batches).",
        "",
    ]
    benches = found(runs, "D1")
    if not benches:
        return lines + not_run("D1", runs)
    lines += sources_line(run for run, _ in benches)
    for device in dict.fromkeys(device_of(b) for _, b in benches):
        rows, fits, failed = [], [], []
        mine = sorted((b for _, b in benches if device_of(b) == device), key=lambda b: batch_of(b) or 0)
        for b in mine:
            batch = batch_of(b)
            if oom(b):
                failed.append((batch, b.extra("error")))
                rows.append([fmt_int(batch), fmt_int(b.extra("threads_per_rank")), NR, NR, NR, NR, NR, NR, "**out of memory**"])
                continue
            fits.append(batch)
            records = b.epochs()
            images = as_number(records[-1].get("images")) if records else None
            training = b.number("training_s")
            rows.append([
                fmt_int(batch), fmt_int(b.extra("threads_per_rank")), fmt_int(b.extra("batches_per_epoch")), fmt_s(training),
                fmt_s(b.number("step_s")), fmt_rate(images / training if images and training else None),
                fmt_s(b.number("full_epoch_training_s")), fmt_loss(b.number("loss")), "no",
            ])
        lines += [f"### device={device}", ""]
        lines += md_table(["batch", "threads", "batches/epoch", "training (s/epoch)", "step (s)", "images/s", "full-epoch estimate (s)",
                           "loss", "out of memory"], rows)
        largest = max((f for f in fits if f is not None), default=None)
        if failed:
            batch, error = min(failed, key=lambda f: f[0] or 0)
            lines += [f"**Largest batch that fits on {device}: {fmt_int(largest)}** (out of memory at batch {fmt_int(batch)}: {error or NR}).", ""]
        else:
            cap = " (on a CPU the preset caps the sweep: there is no out-of-memory error to stop at)" if device == "cpu" else ""
            lines += [f"**Largest batch run on {device}: {fmt_int(largest)}**; memory did not run out{cap}.", ""]
    return lines


# ----------------------------------------------------------------------------- D2


def d1_step(runs: Sequence[Run], device: str, batch: int | None) -> float | None:
    for _, b in found(runs, "D1"):
        if device_of(b) == device and batch_of(b) == batch and not oom(b):
            return b.number("step_s")
    return None


def d2_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = ["## D2: speedup with more ranks (DistributedDataParallel)", ""]
    benches = found(runs, "D2")
    if not benches:
        return lines + not_run("D2", runs)
    note = next((b.extra("scaling_note") for _, b in benches if b.extra("scaling_note")), None)
    lines += [
        f"**Weak scaling.** {note[0].upper() + note[1:] if isinstance(note, str) else NR}. Speedup = images/s with N ranks ÷ images/s of D1 "
        "at the same per-rank batch (= N × D1 step ÷ DDP step); efficiency = speedup ÷ N.",
        "",
    ]
    lines += sources_line(run for run, _ in benches)
    rows = []
    for _, b in sorted(benches, key=lambda rb: (device_of(rb[1]), batch_of(rb[1]) or 0, ranks_of(rb[1]))):
        step, base = b.number("step_s"), b.number("d1_step_s") or d1_step(runs, device_of(b), batch_of(b))
        speedup = ranks_of(b) * base / step if step and base else None
        rows.append([
            device_of(b), str(b.extra("backend") or NR), str(ranks_of(b)), fmt_int(batch_of(b)), fmt_int(b.extra("global_batch")),
            fmt_int(b.extra("threads_per_rank")), fmt_s(step), fmt_s(base), fmt_num(speedup, 3), fmt_num(speedup / ranks_of(b) if speedup else None, 3),
            fmt_s(b.number("full_epoch_training_s")),
        ])
    lines += md_table(["device", "backend", "ranks", "batch/rank", "global batch", "threads/rank", "step (s)", "D1 step (s)", "speedup",
                       "efficiency", "full-epoch estimate (s)"], rows)
    cpu = [(run, b) for run, b in benches if device_of(b) == "cpu"]
    if cpu:
        run, b = cpu[0]
        cores = run.machine().cpu_count
        d1_threads = next((x.extra("threads_per_rank") for _, x in found(runs, "D1") if device_of(x) == "cpu"), None)
        lines += [
            f"**What a CPU \"speedup\" measures.** The ranks shared the {fmt_int(cores)} cores of one CPU "
            f"({fmt_int(b.extra('threads_per_rank'))} thread(s) per rank; D1 ran one process with {fmt_int(d1_threads)}). "
            "No hardware was added: the figure mostly measures how splitting the same cores between processes (and their "
            "contention for memory bandwidth, plus gloo's allreduce running on those cores) changes a step, not what more "
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
        lines += figures.add("d2_speedup", title, lambda p: plots_distributed.speedup_vs_world_size(p, measured, predicted, title))
    return lines


# ----------------------------------------------------------------------------- D3


def d3_section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = [
        "## D3: computation vs communication",
        "",
        "Seconds per epoch (the reported epoch's steps). *Lab's method*: the DDP epoch minus D1's training time for as many "
        "steps at that per-rank batch. *Direct*, in the same processes: every step also runs under `no_sync()` (forward and "
        "backward without allreduce); DDP minus no_sync is the communication backward did not hide (exposed), and a DDP "
        "communication hook times each bucket's allreduce; allreduce minus exposed is what overlapped with backward. "
        "Where the two methods differ, D1's process was not a fair compute baseline for a rank (other threads, other contention).",
        "",
    ]
    benches = found(runs, "D3")
    if not benches:
        return lines + not_run("D3", runs)
    lines += sources_line(run for run, _ in benches)
    rows, labels, compute, comm = [], [], [], []
    for _, b in sorted(benches, key=lambda rb: (device_of(rb[1]), batch_of(rb[1]) or 0, ranks_of(rb[1]))):
        reduce, exposed, overlap = b.number("allreduce_s"), b.number("comm_exposed_s"), b.number("overlap_s")
        share = overlap / reduce if overlap is not None and reduce else None
        d1 = b.number("d1_training_s")
        if d1 is None and (base := d1_step(runs, device_of(b), batch_of(b))) is not None and steps(b):
            d1 = base * steps(b)  # type: ignore[operator]
        ddp = b.number("ddp_training_s")
        lab = b.number("comm_lab_s") if b.number("comm_lab_s") is not None else (ddp - d1 if ddp is not None and d1 is not None else None)
        rows.append([
            device_of(b), str(ranks_of(b)), fmt_int(batch_of(b)), fmt_int(steps(b)), fmt_s(ddp), fmt_s(b.number("nosync_training_s")),
            fmt_s(exposed), fmt_s(reduce), f"{fmt_s(overlap)} ({fmt_share(share)})", fmt_s(lab), fmt_s(d1),
        ])
        name = f"{device_of(b)} ×{ranks_of(b)}, b{batch_of(b)}"
        if b.number("nosync_training_s") is not None and exposed is not None:
            labels.append(f"{name}: direct")
            compute.append(float(b.number("nosync_training_s")))  # type: ignore[arg-type]
            comm.append(exposed)
        if d1 is not None and lab is not None:
            labels.append(f"{name}: lab's method")
            compute.append(d1)
            comm.append(lab)
    lines += md_table(["device", "ranks", "batch/rank", "steps", "DDP training (s)", "no_sync training (s)", "exposed comm (s)",
                       "allreduce, hook (s)", "overlapped (s, share)", "lab's method: DDP − D1 (s)", "D1 training (s)"], rows)
    lines += ["Negative communication means the baseline was slower than the DDP pass it is subtracted from: "
              "noise, or (lab's method) a baseline measured under other conditions.", ""]
    if labels:
        title = "D3: computation and communication per epoch"
        parts = {"computation": compute, "communication (exposed)": comm}
        lines += figures.add("d3_compute_comm", title, lambda p: plots_distributed.stacked_bars(p, labels, parts, title, "seconds per epoch"))
    return lines


# ----------------------------------------------------------------------------- D4


def d4_section(runs: Sequence[Run]) -> list[str]:
    lines = [
        "## D4: allreduce bandwidth",
        "",
        "fp32 allreduce of all gradients (the lab's 11,173,962 parameters, 44.7 MB) and of one DDP bucket (25 MiB). As nccl-tests "
        "defines them: algbw = bytes ÷ time; busbw = algbw × 2(n−1)/n, since a ring allreduce moves 2(n−1)/n × the bytes through "
        "each rank's link. Time per allreduce: median over rounds of back-to-back operations, each round the slowest rank's.",
        "",
    ]
    benches = found(runs, "D4")
    if not benches:
        return lines + not_run("D4", runs)
    lines += sources_line(run for run, _ in benches)
    rows = []
    for _, b in benches:
        rows.append([
            device_of(b), str(b.extra("backend") or NR), str(ranks_of(b)), str(b.extra("size") or NR), fmt_int(b.extra("size_bytes")),
            fmt_ms(b.number("time_s")), fmt_num(b.number("algbw_gb_per_s"), 4), fmt_num(b.number("busbw_gb_per_s"), 4),
            fmt_int(b.extra("ring_bytes_per_rank")),
        ])
    lines += md_table(["device", "backend", "ranks", "size", "bytes", "ms per allreduce", "algbw (GB/s)", "busbw (GB/s)", "ring bytes per rank"], rows)
    util = []
    for _, d3 in found(runs, "D3"):
        bw = gradient_bandwidth(runs, device_of(d3), ranks_of(d3))
        gradient_bytes = as_number(d3.extra("gradient_bytes"))
        hook = per_step(d3, "allreduce_s")
        if bw is None or not gradient_bytes:
            continue
        implied = gradient_bytes / (bw.number("algbw_gb_per_s") * GB)  # type: ignore[operator]
        effective = ring_bytes_per_rank(gradient_bytes, ranks_of(d3)) / hook / GB if hook else None
        util.append([
            device_of(d3), str(ranks_of(d3)), fmt_int(batch_of(d3)), fmt_ms(implied), fmt_ms(hook), fmt_ms(per_step(d3, "comm_exposed_s")),
            fmt_ms(per_step(d3, "comm_lab_s")), fmt_share(implied / hook if hook else None), fmt_num(effective, 4),
        ])
    if util:
        lines += [
            "**Utilization (the lab's question).** The ring-allreduce time per step that D4's bandwidth implies for the gradients, "
            "against D3's communication per step in training: the hook's allreduce time, the exposed part, and the lab's method. "
            "Utilization = implied ÷ hook time (how much of the measured allreduce bandwidth DDP got while training); the "
            "effective busbw is 2(n−1)/n × gradient bytes ÷ hook time.",
            "",
        ]
        lines += md_table(["device", "ranks", "batch/rank", "implied (ms/step)", "hook allreduce (ms/step)", "exposed (ms/step)",
                           "lab's method (ms/step)", "utilization", "effective busbw (GB/s)"], util)
    return lines


def gradient_bandwidth(runs: Sequence[Run], device: str, ranks: int) -> Bench | None:
    """D4's all-gradients benchmark for (device, ranks), the last one found."""
    match = [b for _, b in found(runs, "D4") if device_of(b) == device and ranks_of(b) == ranks and b.extra("size") == "gradients"]
    return match[-1] if match else None


# ----------------------------------------------------------------------------- D5


def d5_section(runs: Sequence[Run]) -> list[str]:
    lines = [
        "## D5: large-batch accuracy",
        "",
        "Five epochs at D1's largest per-rank batch × the ranks, against the batch-128 run: learning rate as the lab prescribes "
        "(0.1), and scaled linearly with the global batch after a linear warm-up (Goyal et al., 2017).",
        "",
    ]
    benches = found(runs, "D5")
    if not benches:
        return lines + not_run("D5", runs, "D5 trains five full epochs: it runs in the full preset only.")
    lines += sources_line(run for run, _ in benches)
    rows = []
    for _, b in benches:
        rows.append([
            str(b.extra("d5_run") or NR), device_of(b), str(ranks_of(b)), fmt_int(batch_of(b)), fmt_int(b.extra("global_batch")),
            str(param(b, "lr_rule") or NR), fmt_num(b.number("lr"), 4), fmt_loss(b.number("loss")), fmt_pct(b.number("top1")),
            fmt_pct(b.number("test_top1")), fmt_s(b.number("epoch_s")),
        ])
    lines += md_table(["run", "device", "ranks", "batch/rank", "global batch", "lr rule", "final lr", "final loss", "train top-1",
                       "test top-1", "mean epoch (s)"], rows)
    return lines


# ----------------------------------------------------------------------------- the scaling model


@dataclass(frozen=True)
class Overrides:
    """Figures given on the command line instead of read from runs (None: from the runs)."""

    step_s: float | None = None
    busbw_gb_per_s: float | None = None
    gradient_bytes: int | None = None
    images: int | None = None
    backward_fraction: float = BACKWARD_FRACTION
    ranks_share_device: bool | None = None
    last_bucket_bytes: int | None = None


def scaling_inputs(runs: Sequence[Run], device: str, batch: int, overrides: Overrides = Overrides()) -> tuple[ScalingInputs | None, list[str]]:
    """The model's inputs for (device, batch) from D1 / D4 / D3 of the runs and the overrides, with where each came from."""
    d1 = next((b for _, b in found(runs, "D1") if device_of(b) == device and batch_of(b) == batch and not oom(b)), None)
    step = overrides.step_s if overrides.step_s is not None else (d1.number("step_s") if d1 else None)
    gradient = overrides.gradient_bytes or (as_number(d1.extra("gradient_bytes")) if d1 else None) or next(
        (as_number(b.extra("gradient_bytes")) for g in ("D2", "D3") for _, b in found(runs, g) if b.extra("gradient_bytes")), None)
    bandwidths = sorted((b for _, b in found(runs, "D4") if device_of(b) == device and b.extra("size") == "gradients"), key=ranks_of)
    busbw, source = overrides.busbw_gb_per_s, "given"
    if busbw is None and bandwidths:
        busbw, source = bandwidths[-1].number("busbw_gb_per_s"), f"D4, {bandwidths[-1].extra('backend')}, {ranks_of(bandwidths[-1])} ranks"
    elif busbw is None and device.startswith("cuda"):
        busbw, source = PUBLISHED_NVLINK_BUSBW, "published nccl-tests NVLink H100 figure, not measured here"
    last = overrides.last_bucket_bytes or next(
        (as_number(b.extra("last_bucket_bytes")) for _, b in found(runs, "D3") if device_of(b) == device and b.extra("last_bucket_bytes")), None)
    images = overrides.images or (as_number(d1.extra("train_images")) if d1 else None) or 50_000
    share = overrides.ranks_share_device if overrides.ranks_share_device is not None else device == "cpu"
    missing = [name for name, v in (("D1 step (or --step-s)", step), ("gradient bytes", gradient), ("bus bandwidth (D4 or --busbw)", busbw)) if not v]
    if missing:
        return None, [f"missing: {', '.join(missing)}"]
    inputs = ScalingInputs(
        step_s=float(step), batch_per_rank=batch, gradient_bytes=int(gradient), busbw_gb_per_s=float(busbw), images=int(images),  # type: ignore[arg-type]
        backward_fraction=overrides.backward_fraction, last_bucket_bytes=int(last) if last else None, ranks_share_device=share,
    )
    notes = [
        f"compute: {'given' if overrides.step_s is not None else 'D1'} step {fmt_s(step)} s at batch {batch} on {device}",
        f"gradients: {fmt_int(gradient)} bytes; last bucket {fmt_int(last) if last else 'all of them (no D3, none given)'}",
        f"bus bandwidth: {fmt_num(busbw, 4)} GB/s ({source})",
        f"ranks share one device: {'yes (one CPU)' if share else 'no (one device per rank)'}; backward share of a step {overrides.backward_fraction:.2f}",
    ]
    return inputs, notes


def validation_rows(runs: Sequence[Run], device: str, batch: int, inputs: ScalingInputs) -> list[dict[str, Any]]:
    """The model against each measured DDP step (D2, and D3's synced pass) at (device, batch).

    `compute` says where the model's compute came from: "D1" (the prediction proper) or "D3 no_sync"
    (the compute measured inside the ranks, so only the communication part is modelled).
    """
    rows = []
    rank_compute = {
        ranks_of(b): per_step(b, "nosync_training_s")
        for _, b in found(runs, "D3") if device_of(b) == device and batch_of(b) == batch and per_step(b, "nosync_training_s")
    }
    for group, key in (("D2", "step_s"), ("D3", "ddp_training_s")):
        for run, b in found(runs, group):
            if device_of(b) != device or batch_of(b) != batch or ranks_of(b) < 2:
                continue
            measured = b.number(key) if key == "step_s" else per_step(b, key)
            if not measured:
                continue
            models = [("D1", predict(inputs, ranks_of(b)))]
            if rank_compute.get(ranks_of(b)):
                local = ScalingInputs(**{**inputs.__dict__, "step_s": rank_compute[ranks_of(b)], "ranks_share_device": False})
                models.append(("D3 no_sync", predict(local, ranks_of(b))))
            for compute, model in models:
                rows.append({
                    "group": group, "run": run.label, "ranks": ranks_of(b), "compute": compute, "measured_step_s": measured,
                    "no_overlap_s": model["step_no_overlap_s"], "overlap_s": model["step_overlap_s"],
                    "error_no_overlap": relative_error(float(model["step_no_overlap_s"]), measured),
                    "error_overlap": relative_error(float(model["step_overlap_s"]), measured),
                })
    return rows


def scaling_lines(runs: Sequence[Run], device: str, batch: int, world_sizes: Sequence[int], overrides: Overrides = Overrides()) -> list[str]:
    """The prediction table for (device, batch) and, where the runs measured it, the model's error."""
    inputs, notes = scaling_inputs(runs, device, batch, overrides)
    lines = [f"### {device}, batch {batch} per rank", ""]
    if inputs is None:
        return lines + [f"Not modelled: {notes[0]}.", ""]
    lines += ["Inputs: " + "; ".join(notes) + ".", ""]
    rows = []
    for r in scaling_table(inputs, list(world_sizes)):
        rows.append([
            str(r["world_size"]), fmt_int(r["global_batch"]), fmt_s(r["compute_s"]), fmt_s(r["allreduce_s"]), fmt_s(r["step_no_overlap_s"]),
            fmt_s(r["step_overlap_s"]), fmt_s(r["epoch_no_overlap_s"]), fmt_s(r["epoch_overlap_s"]),
            f"{fmt_num(r['speedup_no_overlap'], 3)} / {fmt_num(r['speedup_overlap'], 3)}",
            f"{fmt_share(r['efficiency_no_overlap'])} / {fmt_share(r['efficiency_overlap'])}",
        ])
    lines += md_table(["ranks", "global batch", "compute (s/step)", "allreduce (s/step)", "step, no overlap (s)", "step, overlap (s)",
                       "epoch, no overlap (s)", "epoch, overlap (s)", "speedup (no overlap / overlap)", "efficiency (no overlap / overlap)"], rows)
    checks = validation_rows(runs, device, batch, inputs)
    if checks:
        lines += ["Against the measurements (model compute from D1: the prediction; from D3's no_sync passes: the compute "
                  "measured inside the ranks, so the error is the communication model's alone):", ""]
        lines += md_table(["measured in", "ranks", "model compute from", "measured (s/step)", "model, no overlap (s/step)", "error",
                           "model, overlap (s/step)", "error"], [
            [f"{c['group']} (`{c['run']}`)", str(c["ranks"]), c["compute"], fmt_s(c["measured_step_s"]), fmt_s(c["no_overlap_s"]),
             fmt_pct_signed(c["error_no_overlap"]), fmt_s(c["overlap_s"]), fmt_pct_signed(c["error_overlap"])] for c in checks
        ])
    else:
        lines += ["No DDP measurement at this batch to check the model against: the figures above are predictions.", ""]
    return lines


def scaling_section(runs: Sequence[Run]) -> list[str]:
    lines = [
        "## Scaling model: epoch time and efficiency for N ranks",
        "",
        "Per step and rank (weak scaling): compute c = D1's step × (N if the N ranks share one device, as CPU ranks on one "
        "host do; 1 with a device per rank); allreduce a = 2(N−1)/N × gradient bytes ÷ busbw; without overlap t = c + a; with "
        "overlap t = c + max(a_last, a − f × c), since DDP reduces buckets while backward (a share f of the step) runs and only "
        "the last bucket waits for backward to end. Epoch = ⌈images ÷ (N × batch)⌉ × t. Error = (model − measured) ÷ measured.",
        "",
    ]
    d1 = [(run, b) for run, b in found(runs, "D1") if not oom(b)]
    if not d1:
        return lines + not_run("D1", runs, "The model starts from D1's measured step time (or use `resnet-lab scaling --step-s`).")
    lines += sources_line(run for g in ("D1", "D2", "D3", "D4") for run, _ in found(runs, g))
    pairs = dict.fromkeys((device_of(b), batch_of(b)) for _, b in d1 if batch_of(b))
    for device, batch in pairs:
        sizes = sorted(set(MODEL_WORLD_SIZES) | {ranks_of(b) for g in ("D2", "D3") for _, b in found(runs, g) if device_of(b) == device})
        lines += scaling_lines(runs, device, batch, sizes)  # type: ignore[arg-type]
    return lines


def sections(runs: Sequence[Run], figures: Figures) -> list[str]:
    """Every D section, in the lab's order, then the scaling model."""
    return d1_section(runs) + d2_section(runs, figures) + d3_section(runs, figures) + d4_section(runs) + d5_section(runs) + scaling_section(runs)

