"""C8: torch.compile and the other variants against eager: first epoch, steady state, FLOP/s, MFU."""

from __future__ import annotations

from collections.abc import Sequence

from ...suite import groups
from .. import plots
from ..runs import Bench, Run
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
        rows, labels, first, steady = [], [], [], []
        # Ratios against the eager baseline of the same run and device, computed here so older JSON gets them too.
        eager_step = {str(b.param("device", "")): b.number("train_step_s")
                      for b in benches if b.param("variant") == "eager"}
        for b in benches:
            variant = str(b.param("variant", NR))
            device = str(b.param("device", ""))
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
