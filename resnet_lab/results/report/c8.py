"""C8: torch.compile and the other variants against eager: first epoch, steady state, FLOP/s, MFU."""

from __future__ import annotations

from collections.abc import Sequence

from ...spec import groups
from .. import plots
from ..derived import equivalence_verdict
from ..runs import Bench, Run, object_at
from .format import NR, Figures, fmt_loss, fmt_s, from_line, md_table, not_run
from .values import last_value


def section(runs: Sequence[Run], figures: Figures) -> list[str]:
    lines = ["## C8: torch.compile and other variants vs eager", ""]
    found = [(run, b) for run in runs for b in run.group(groups.C8)]
    if not found:
        return lines + not_run(groups.C8, runs, "C8 is optional (newer editions of the lab).")
    for index, run in enumerate(dict.fromkeys(r for r, _ in found), 1):
        benches = [b for r, b in found if r is run]
        lines += [f"### {run.label}", "", from_line(run), ""]
        rows, labels, first, steady, losses, verdicts = [], [], [], [], [], []
        # Ratios against the eager baseline of the same run and device, computed here so older JSON gets them too.
        eager_step = {
            str(b.param("device", "")): b.number("train_step_s") for b in benches if b.param("variant") == "eager"
        }
        for b in benches:
            variant = str(b.param("variant", NR))
            device = str(b.param("device", ""))
            achieved, peak, mfu = b.number("achieved_flops_per_s"), b.number("peak_flops_per_s"), b.number("mfu")
            step_s, base_s = b.number("train_step_s"), eager_step.get(device)
            verdict = equivalence_verdict(b.extra_info)
            # A failed variant's speed is no speedup: it trains something else.
            ratio = "not counted" if verdict == "fail" else NR if not (step_s and base_s) else f"{base_s / step_s:.2f}×"
            rows.append(
                [
                    variant,
                    device,
                    fmt_s(b.number("first_epoch_s")),
                    fmt_s(b.number("steady_epoch_s")),
                    fmt_s(step_s),
                    ratio,
                    NR if achieved is None else f"{achieved / 1e12:.3g}",
                    NR if peak is None else f"{peak / 1e12:.3g}",
                    NR if mfu is None else f"{mfu:.1%}",
                    fmt_loss(last_value(b, "loss")),
                    check_cell(b),
                ]
            )
            if b.number("first_epoch_s") is not None and b.number("steady_epoch_s") is not None:
                labels.append(f"{variant} ({device})" if device else variant)
                first.append(b.number("first_epoch_s"))
                steady.append(b.number("steady_epoch_s"))
                losses.append(last_value(b, "loss"))
                verdicts.append(verdict)
        failed = failed_checks(run)
        rows += [[str(f.get("variant", name)), *["not timed"] * 9, check_cell_of(f)] for name, f in failed.items()]
        lines += md_table(
            [
                "variant",
                "device",
                "first epoch (s)",
                "steady epoch (s)",
                "train step (s)",
                "vs eager",
                "achieved TFLOP/s",
                "peak TFLOP/s",
                "MFU",
                "loss",
                "same training as eager?",
            ],
            rows,
        )
        lines += equivalence_note(benches, failed)
        lines += compile_cache_note(benches)
        if labels:
            title = f"C8: speed beside training ({run.label})"
            eager_loss = next((last_value(b, "loss") for b in benches if b.param("variant") == "eager"), None)
            lines += figures.add(
                f"c8-variants-{index}",
                title,
                plots.speed_beside_training,
                labels,
                first,
                steady,
                losses,
                verdicts,
                title,
                eager_loss,
            )
    return lines


def failed_checks(run: Run) -> dict[str, dict]:
    """Variants whose equivalence check failed: they ran no epoch, so only the run's `lab` keeps them."""
    failed = run.lab.get("equivalence_failures")
    return {str(k): v for k, v in failed.items() if isinstance(v, dict)} if isinstance(failed, dict) else {}


def check_cell_of(record: dict | None) -> str:
    if not isinstance(record, dict):
        return "not checked"
    verdict = str(record.get("verdict", "not checked"))
    worst = object_at(record, "worst")
    ratio = worst.get("ratio")
    if not isinstance(ratio, (int, float)):
        return verdict
    return f"{verdict} (worst {worst.get('tensor', '?')} at {ratio:.2g}× its bound)"


def check_cell(bench: Bench) -> str:
    return check_cell_of(bench.extra("equivalence"))


def equivalence_note(benches: Sequence[Bench], failed: dict[str, dict]) -> list[str]:
    checked = [b for b in benches if isinstance(b.extra("equivalence"), dict)]
    if not checked and not failed:
        return [
            "No variant of this run was checked against eager and fp64 (it predates the equivalence check): "
            "its speedups are not shown to train the same model.",
            "",
        ]
    note = [
        "Each variant trained a few batches from eager's initial weights along its own path, compared tensor by tensor "
        "(loss, gradients, parameters, momentum buffers, BatchNorm statistics) "
        "with an fp64 reference, within a multiple "
        "of eager fp32's own error plus a per-dtype tolerance; a speedup counts only where it passed."
    ]
    if failed:
        note.append(f"Failed, so not timed: {', '.join(str(f.get('variant', n)) for n, f in failed.items())}.")
    return [" ".join(note), ""]


def compile_cache_note(benches: Sequence[Bench]) -> list[str]:
    """Whether a compiled variant's first epoch is a cold build or may have loaded an earlier one."""
    compiled = [b for b in benches if b.extra("compile_mode")]
    if not compiled:
        return []
    if all(b.extra("compile_caches") == "off" for b in compiled):
        return ["Compiled variants' first epoch is a cold build: torch.compiler's caches were off.", ""]
    return [
        "Compiled variants' first epoch: compiler caches were not turned off in every run, so a first epoch "
        "may have loaded an earlier build and understate the compile cost.",
        "",
    ]
