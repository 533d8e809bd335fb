"""The lab's short answers from one run, a line each: what the end of a benchmark session prints.

The figures come from the same readers as the answer sheet (`report/values.py`), so the terminal and
`answers.md` never disagree; a question the run did not cover says so. No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..spec import groups
from .report.format import fmt_s, percent
from .report.values import epoch_time, last_value, phase_mean
from .runs import Bench, Run, as_number


def _device(bench: Bench) -> str:
    return str(bench.param("device", "cpu"))


def _by_device(benches: Sequence[Bench]) -> dict[str, list[Bench]]:
    out: dict[str, list[Bench]] = {}
    for bench in benches:
        out.setdefault(_device(bench), []).append(bench)
    return out


def _top1(bench: Bench) -> str:
    value = percent(last_value(bench, "top1"))
    return "top-1 not recorded" if value is None else f"top-1 {value:.1f}%"


def _served(bench: Bench) -> str:
    by = bench.extra("served_by")
    return f" (trained once by {by})" if by else ""


def c32_line(run: Run) -> str:
    answer = run.lab.get("c3_2")
    if not isinstance(answer, dict) or answer.get("workers") is None:
        return "C3.2: not determined in this run (no C3-C7 benchmark needed it)"
    return f"C3.2: {answer['workers']} workers ({answer.get('rule', 'rule not recorded')})"


def c5_line(run: Run) -> str:
    by_type: dict[str, float] = {}
    for bench in run.group(groups.C5):
        seconds = epoch_time(bench)
        if seconds is not None:
            by_type.setdefault(_device(bench).split(":")[0], seconds)
    if "cpu" in by_type and "cuda" in by_type:
        return (
            f"C5: the GPU is {by_type['cpu'] / by_type['cuda']:.1f}x the CPU per "
            f"epoch (cpu {fmt_s(by_type['cpu'])} s, cuda {fmt_s(by_type['cuda'])} s)"
        )
    ran = ", ".join(sorted(by_type)) or "no device"
    return f"C5: CPU vs GPU needs both; this run has {ran} (pass a CPU run and a GPU run to resnet-lab report)"


def c6_lines(run: Run) -> list[str]:
    lines = []
    for device, benches in _by_device(run.group(groups.C6)).items():
        ranked = [b for b in benches if percent(last_value(b, "top1")) is not None]
        timed = [b for b in benches if phase_mean(b, "train_s") is not None]
        if not ranked:
            continue
        best = max(ranked, key=lambda b: (percent(last_value(b, "top1")), -(last_value(b, "loss") or 0.0)))
        line = f"C6 ({device}): highest final training {_top1(best)}: {best.param('optimizer')}{_served(best)}"
        if timed:
            fastest = min(timed, key=lambda b: phase_mean(b, "train_s") or 0.0)
            line += (
                f"; fastest: {fastest.param('optimizer')} ({fmt_s(phase_mean(fastest, 'train_s'))} s/epoch training)"
            )
        lines.append(line)
    return lines or ["C6: not run"]


def c7_lines(run: Run) -> list[str]:
    lines = []
    for device, benches in _by_device(run.group(groups.C7)).items():
        parts = []
        for bench in sorted(benches, key=lambda b: str(b.param("batch_norm")) != "True"):
            on = str(bench.param("batch_norm")) == "True"
            parts.append(
                f"BN {'on' if on else 'off'}: {_top1(bench)}, loss {fmt_s(last_value(bench, 'loss'))}, "
                f"{fmt_s(epoch_time(bench))} s/epoch{_served(bench)}"
            )
        lines.append(f"C7 ({device}): " + "; ".join(parts))
    return lines or ["C7: not run"]


def c8_lines(run: Run) -> list[str]:
    lines = []
    for device, benches in _by_device(run.group(groups.C8)).items():
        variants = {str(b.param("variant")): b for b in benches}
        eager, best = variants.get("eager"), variants.get("best")
        eager_s = as_number(eager.extra("train_step_s")) if eager else None
        best_s = as_number(best.extra("train_step_s")) if best else None
        if eager_s and best_s:
            lines.append(
                f"C8 ({device}): best is {eager_s / best_s:.2f}x eager per training "
                f"step ({fmt_s(best_s)} s vs {fmt_s(eager_s)} s)"
            )
        else:
            lines.append(
                f"C8 ({device}): best vs eager needs both variants; this run has {', '.join(variants) or 'neither'}"
            )
    return lines or ["C8: not run"]


def short_answers(run: Run) -> list[str]:
    return [c32_line(run), c5_line(run), *c6_lines(run), *c7_lines(run), *c8_lines(run)]
