"""The D sections' figures: speedup against world size, and computation vs communication per epoch.

Same conventions as `plots.py` (object API, Agg canvas, atomic PNG); numbers in, one PNG out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .plots import _legend, _new_figure, _save

SeriesByLabel = Mapping[str, tuple[Sequence[int], Sequence[float]]]
COMM_COLORS = ("#55a868", "#c44e52", "#8172b3", "#937860")


def speedup_vs_world_size(path: str | Path, measured: SeriesByLabel, predicted: SeriesByLabel, title: str) -> Path:
    """Speedup (images/s against one rank) per world size: measured lines with markers, model dashed, ideal dotted."""
    fig, (ax,) = _new_figure()
    sizes = sorted({n for series in (measured, predicted) for xs, _ in series.values() for n in xs} | {1})
    ax.plot(sizes, sizes, linestyle=":", color="#555555", label="ideal (speedup = ranks)")
    for label, (xs, ys) in measured.items():
        ax.plot(list(xs), list(ys), marker="o", label=f"measured, {label}")
    for label, (xs, ys) in predicted.items():
        ax.plot(list(xs), list(ys), linestyle="--", marker="x", label=f"model, {label}")
    ax.set_xticks(sizes)
    ax.set_xlabel("ranks (world size)")
    ax.set_ylabel("speedup in images/s vs one rank (weak scaling)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    _legend(ax)
    return _save(fig, path)


def stacked_bars(
    path: str | Path, labels: Sequence[str], parts: Mapping[str, Sequence[float]], title: str, ylabel: str
) -> Path:
    """One stacked bar per label, one segment per named part (negative parts are drawn as zero)."""
    fig, (ax,) = _new_figure(width=max(8.0, 1.3 * len(labels) + 4.5))
    bottom = [0.0] * len(labels)
    for (name, values), color in zip(parts.items(), COMM_COLORS, strict=False):
        heights = [max(0.0, v) for v in values]
        ax.bar(range(len(labels)), heights, bottom=bottom, label=name, color=color)
        bottom = [b + h for b, h in zip(bottom, heights, strict=False)]
    ax.set_xticks(
        range(len(labels)), labels, rotation=15 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center"
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend(ax)
    return _save(fig, path)
