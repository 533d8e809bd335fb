"""The answer sheet's scaling model: epoch time and efficiency for N ranks from D1, D4 and D3, with its
error against the DDP steps measured (D2, D3). `resnet-lab scaling` prints the same tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...distributed.scaling import BACKWARD_FRACTION, ScalingInputs, predict, relative_error, scaling_table
from ...spec import groups
from ..runs import Run, as_number
from .dvalues import (
    MODEL_WORLD_SIZES,
    PUBLISHED_NVLINK_BUSBW,
    batch_of,
    device_of,
    fmt_pct_signed,
    fmt_share,
    found,
    oom,
    per_step,
    ranks_of,
)
from .format import Figures, fmt_int, fmt_num, fmt_s, md_table, not_run, sources_line


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


def scaling_inputs(
    runs: Sequence[Run], device: str, batch: int, overrides: Overrides = Overrides()
) -> tuple[ScalingInputs | None, list[str]]:
    """The model's inputs for (device, batch) from D1 / D4 / D3 of the runs and the overrides, with where each came
    from."""
    d1 = next(
        (b for _, b in found(runs, groups.D1) if device_of(b) == device and batch_of(b) == batch and not oom(b)), None
    )
    step = overrides.step_s if overrides.step_s is not None else (d1.number("step_s") if d1 else None)
    gradient = (
        overrides.gradient_bytes
        or (as_number(d1.extra("gradient_bytes")) if d1 else None)
        or next(
            (
                as_number(b.extra("gradient_bytes"))
                for g in (groups.D2, groups.D3)
                for _, b in found(runs, g)
                if b.extra("gradient_bytes")
            ),
            None,
        )
    )
    bandwidths = sorted(
        (b for _, b in found(runs, groups.D4) if device_of(b) == device and b.extra("size") == "gradients"),
        key=ranks_of,
    )
    busbw, source = overrides.busbw_gb_per_s, "given"
    if busbw is None and bandwidths:
        busbw, source = (
            bandwidths[-1].number("busbw_gb_per_s"),
            f"D4, {bandwidths[-1].extra('backend')}, {ranks_of(bandwidths[-1])} ranks",
        )
    elif busbw is None and device.startswith("cuda"):
        busbw, source = PUBLISHED_NVLINK_BUSBW, "published nccl-tests NVLink H100 figure, not measured here"
    last = overrides.last_bucket_bytes or next(
        (
            as_number(b.extra("last_bucket_bytes"))
            for _, b in found(runs, groups.D3)
            if device_of(b) == device and b.extra("last_bucket_bytes")
        ),
        None,
    )
    images = overrides.images or (as_number(d1.extra("train_images")) if d1 else None) or 50_000
    share = overrides.ranks_share_device if overrides.ranks_share_device is not None else device == "cpu"
    missing = [
        name
        for name, v in (
            ("D1 step (or --step-s)", step),
            ("gradient bytes", gradient),
            ("bus bandwidth (D4 or --busbw)", busbw),
        )
        if not v
    ]
    if missing or not (step and gradient and busbw):  # the second test only tells mypy what the first one did
        return None, [f"missing: {', '.join(missing)}"]
    inputs = ScalingInputs(
        step_s=float(step),
        batch_per_rank=batch,
        gradient_bytes=int(gradient),
        busbw_gb_per_s=float(busbw),
        images=int(images),
        backward_fraction=overrides.backward_fraction,
        last_bucket_bytes=int(last) if last else None,
        ranks_share_device=share,
    )
    notes = [
        f"compute: {'given' if overrides.step_s is not None else 'D1'} step "
        f"{fmt_s(step)} s at batch {batch} on {device}",
        f"gradients: {fmt_int(gradient)} bytes; last bucket "
        f"{fmt_int(last) if last else 'all of them (no D3, none given)'}",
        f"bus bandwidth: {fmt_num(busbw, 4)} GB/s ({source})",
        "ranks share one device: "
        f"{'yes (one CPU)' if share else 'no (one device per rank)'}; backward "
        f"share of a step {overrides.backward_fraction:.2f}",
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
        for _, b in found(runs, groups.D3)
        if device_of(b) == device and batch_of(b) == batch and per_step(b, "nosync_training_s")
    }
    for group, key in ((groups.D2, "step_s"), (groups.D3, "ddp_training_s")):
        for run, b in found(runs, group):
            if device_of(b) != device or batch_of(b) != batch or ranks_of(b) < 2:
                continue
            measured = b.number(key) if key == "step_s" else per_step(b, key)
            if not measured:
                continue
            models = [("D1", predict(inputs, ranks_of(b)))]
            if rank_compute.get(ranks_of(b)):
                local = ScalingInputs(
                    **{**inputs.__dict__, "step_s": rank_compute[ranks_of(b)], "ranks_share_device": False}
                )
                models.append(("D3 no_sync", predict(local, ranks_of(b))))
            for compute, model in models:
                rows.append(
                    {
                        "group": group,
                        "run": run.label,
                        "ranks": ranks_of(b),
                        "compute": compute,
                        "measured_step_s": measured,
                        "no_overlap_s": model["step_no_overlap_s"],
                        "overlap_s": model["step_overlap_s"],
                        "error_no_overlap": relative_error(float(model["step_no_overlap_s"]), measured),
                        "error_overlap": relative_error(float(model["step_overlap_s"]), measured),
                    }
                )
    return rows


def scaling_lines(
    runs: Sequence[Run], device: str, batch: int, world_sizes: Sequence[int], overrides: Overrides = Overrides()
) -> list[str]:
    """The prediction table for (device, batch) and, where the runs measured it, the model's error."""
    inputs, notes = scaling_inputs(runs, device, batch, overrides)
    lines = [f"### {device}, batch {batch} per rank", ""]
    if inputs is None:
        return [*lines, f"Not modelled: {notes[0]}.", ""]
    lines += ["Inputs: " + "; ".join(notes) + ".", ""]
    rows = []
    for r in scaling_table(inputs, list(world_sizes)):
        rows.append(
            [
                str(r["world_size"]),
                fmt_int(r["global_batch"]),
                fmt_s(r["compute_s"]),
                fmt_s(r["allreduce_s"]),
                fmt_s(r["step_no_overlap_s"]),
                fmt_s(r["step_overlap_s"]),
                fmt_s(r["epoch_no_overlap_s"]),
                fmt_s(r["epoch_overlap_s"]),
                f"{fmt_num(r['speedup_no_overlap'], 3)} / {fmt_num(r['speedup_overlap'], 3)}",
                f"{fmt_share(r['efficiency_no_overlap'])} / {fmt_share(r['efficiency_overlap'])}",
            ]
        )
    lines += md_table(
        [
            "ranks",
            "global batch",
            "compute (s/step)",
            "allreduce (s/step)",
            "step, no overlap (s)",
            "step, overlap (s)",
            "epoch, no overlap (s)",
            "epoch, overlap (s)",
            "speedup (no overlap / overlap)",
            "efficiency (no overlap / overlap)",
        ],
        rows,
    )
    checks = validation_rows(runs, device, batch, inputs)
    if checks:
        lines += [
            "Against the measurements (model compute from D1: the prediction; from D3's no_sync passes: the compute "
            "measured inside the ranks, so the error is the communication model's alone):",
            "",
        ]
        lines += md_table(
            [
                "measured in",
                "ranks",
                "model compute from",
                "measured (s/step)",
                "model, no overlap (s/step)",
                "error",
                "model, overlap (s/step)",
                "error",
            ],
            [
                [
                    f"{c['group']} (`{c['run']}`)",
                    str(c["ranks"]),
                    c["compute"],
                    fmt_s(c["measured_step_s"]),
                    fmt_s(c["no_overlap_s"]),
                    fmt_pct_signed(c["error_no_overlap"]),
                    fmt_s(c["overlap_s"]),
                    fmt_pct_signed(c["error_overlap"]),
                ]
                for c in checks
            ],
        )
    else:
        lines += ["No DDP measurement at this batch to check the model against: the figures above are predictions.", ""]
    return lines


def section(runs: Sequence[Run], figures: Figures | None = None) -> list[str]:
    lines = [
        "## Scaling model: epoch time and efficiency for N ranks",
        "",
        "Per step and rank (weak scaling): compute c = D1's step × (N if the N "
        "ranks share one device, as CPU ranks on one "
        "host do; 1 with a device per rank); allreduce a = 2(N−1)/N × gradient "
        "bytes ÷ busbw; without overlap t = c + a; with "
        "overlap t = c + max(a_last, a − f × c), since DDP reduces buckets "
        "while backward (a share f of the step) runs and only "
        "the last bucket waits for backward to end. Epoch = ⌈images ÷ (N × "
        "batch)⌉ × t. Error = (model − measured) ÷ measured.",
        "",
    ]
    d1 = [(run, b) for run, b in found(runs, groups.D1) if not oom(b)]
    if not d1:
        return lines + not_run(
            groups.D1, runs, "The model starts from D1's measured step time (or use `resnet-lab scaling --step-s`)."
        )
    lines += sources_line(run for g in (groups.D1, groups.D2, groups.D3, groups.D4) for run, _ in found(runs, g))
    pairs = dict.fromkeys((device_of(b), batch_of(b)) for _, b in d1 if batch_of(b))
    for device, batch in pairs:
        sizes = sorted(
            set(MODEL_WORLD_SIZES)
            | {ranks_of(b) for g in (groups.D2, groups.D3) for _, b in found(runs, g) if device_of(b) == device}
        )
        lines += scaling_lines(runs, device, batch, sizes)  # type: ignore[arg-type]  # the world sizes of found runs are ints
    return lines
