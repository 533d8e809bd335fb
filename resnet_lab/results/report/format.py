"""How the answer sheet writes figures: number formats, markdown tables, source lines, figure links.

"not recorded" (`NR`) is what a figure a run did not save reads as, everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec

from ..runs import Bench, Run, as_number

NR = "not recorded"


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
    return [*lines, ""]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


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


P = ParamSpec("P")


@dataclass
class Figures:
    """Saves figures into the output folder and hands back the markdown that links them."""

    out: Path
    written: list[Path] = field(default_factory=list)

    def add(
        self, name: str, caption: str, draw: Callable[Concatenate[Path, P], Path], *args: P.args, **kwargs: P.kwargs
    ) -> list[str]:
        """Draw `draw(path, *args, **kwargs)` now; its inputs are passed, not closed over, so a figure drawn in a
        loop cannot pick up a later iteration's values."""
        path = draw(self.out / f"{slug(name)}.png", *args, **kwargs)
        self.written.append(path)
        return [f"![{caption}]({path.name})", ""]
