"""Q3b: the profiler's phase summary and where its trace and tables are."""

from __future__ import annotations

from collections.abc import Sequence

from ...spec import groups
from ..runs import Run, as_number
from .format import NR, Figures, fmt_int, fmt_s, from_line, md_table, not_run


def section(runs: Sequence[Run], figures: Figures | None = None) -> list[str]:
    lines = ["## Q3b: profiler summary", ""]
    found = [(run, b) for run in runs for b in run.group(groups.Q3B)]
    if not found:
        return lines + not_run(groups.Q3B, runs)
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
        lines += [
            f"Profiled steps: {fmt_int(bench.extra('steps'))}. Trace "
            f"(Chrome/Perfetto): `{bench.extra('trace_path') or NR}`. "
            f"Operator table: `{bench.extra('table_path') or NR}`.",
            "",
        ]
    return lines
