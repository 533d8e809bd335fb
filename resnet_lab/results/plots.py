"""The answer sheet's figures: one function per plot, plain numbers in, one PNG out.

matplotlib's object API with the Agg canvas (no pyplot, no global backend, no
display needed); every PNG is written atomically, so a figure on disk is
always complete. Functions take lists and dicts, not runs, so the report
decides what to draw and these only draw it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.phases import PHASE_LIST
from ..fileio import atomic_open

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# The epoch's phases (engine/phases.py), then what the epoch spent outside them.
PHASE_COLORS = {**{phase.key: phase.color for phase in PHASE_LIST}, "other_s": "#8c8c8c"}
PHASE_NAMES = {**{phase.key: phase.title for phase in PHASE_LIST}, "other_s": "other (epoch − phases)"}
DPI = 110


def _new_figure(width: float = 8.0, height: float = 4.0, ncols: int = 1) -> tuple[Figure, list]:
    # imported here: `resnet-lab --help` and `compare` never pay for matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _legend(ax: Axes) -> None:
    """Legend outside the axes, on the right, so it never hides a bar or a line."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0.0)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=DPI)
    return path


def phase_breakdown(path: str | Path, epochs: Sequence[int], phases: Mapping[str, Sequence[float]], title: str) -> Path:
    """Stacked bars: seconds per phase in each epoch (keys of PHASE_NAMES; missing phases are left out)."""
    fig, (ax,) = _new_figure()
    labels = [str(e) for e in epochs]
    bottom = [0.0] * len(epochs)
    for key, name in PHASE_NAMES.items():
        values = phases.get(key)
        if not values:
            continue
        ax.bar(labels, values, bottom=bottom, label=name, color=PHASE_COLORS[key])
        bottom = [b + v for b, v in zip(bottom, values, strict=False)]
    ax.set_xlabel("epoch")
    ax.set_ylabel("time per epoch (s)")
    ax.set_title(title)
    _legend(ax)
    return _save(fig, path)


def workers_curve(
    path: str | Path,
    series: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    title: str,
    chosen: int | None = None,
) -> Path:
    """Lines of seconds against num_workers, one per series; the C3.2 choice marked."""
    fig, (ax,) = _new_figure()
    for label, (workers, seconds) in series.items():
        ax.plot(list(workers), list(seconds), marker="o", label=label)
    if chosen is not None:
        ax.axvline(chosen, color="#555555", linestyle="--", linewidth=1, label=f"C3.2 choice: {chosen} workers")
    ax.set_xlabel("DataLoader num_workers")
    ax.set_ylabel("time per epoch (s)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    _legend(ax)
    return _save(fig, path)


def device_bars(
    path: str | Path, labels: Sequence[str], epoch_s: Sequence[float], images_per_s: Sequence[float | None], title: str
) -> Path:
    """Two panels: mean epoch time and throughput per device."""
    fig, (left, right) = _new_figure(width=8.0, ncols=2)
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    left.bar(labels, epoch_s, color=colors[: len(labels)])
    left.set_ylabel("mean epoch time (s)")
    left.set_xlabel("device")
    rates = [r if r is not None else 0.0 for r in images_per_s]
    right.bar(labels, rates, color=colors[: len(labels)])
    right.set_ylabel("training throughput (images/s)")
    right.set_xlabel("device")
    fig.suptitle(title)
    return _save(fig, path)


def grouped_bars(
    path: str | Path,
    labels: Sequence[str],
    parts: Mapping[str, Sequence[float]],
    title: str,
    ylabel: str = "mean time per epoch (s)",
) -> Path:
    """Per configuration (x), one bar per named part (legend); phase names get the phase colours."""
    fig, (ax,) = _new_figure(width=max(8.0, 1.2 * len(labels) + 4.5))
    width = 0.8 / max(1, len(parts))
    colors = {PHASE_NAMES[k]: c for k, c in PHASE_COLORS.items()}
    for i, (name, values) in enumerate(parts.items()):
        xs = [x + (i - (len(parts) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, values, width=width, label=name, color=colors.get(name))
    ax.set_xticks(
        range(len(labels)), labels, rotation=15 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center"
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend(ax)
    return _save(fig, path)


def epoch_curves(
    path: str | Path, curves: Mapping[str, tuple[Sequence[int], Sequence[float], Sequence[float]]], title: str
) -> Path:
    """Two panels per label: training loss and top-1 training accuracy (%) against epoch."""
    fig, (loss_ax, top1_ax) = _new_figure(width=11.0, ncols=2)
    for label, (epochs, loss, top1) in curves.items():
        if loss:
            loss_ax.plot(list(epochs)[: len(loss)], list(loss), marker="o", label=label)
        if top1:
            top1_ax.plot(list(epochs)[: len(top1)], list(top1), marker="o", label=label)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss (cross-entropy)")
    top1_ax.set_xlabel("epoch")
    top1_ax.set_ylabel("top-1 training accuracy (%)")
    for ax in (loss_ax, top1_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
    _legend(top1_ax)  # one legend serves both panels
    fig.suptitle(title)
    return _save(fig, path)


VERDICT_COLORS = {"pass": "#55a868", "fail": "#c44e52", "not checked": "#8c8c8c"}


def speed_beside_training(
    path: str | Path,
    labels: Sequence[str],
    first: Sequence[float | None],
    steady: Sequence[float | None],
    loss: Sequence[float | None],
    verdicts: Sequence[str],
    title: str,
    baseline_loss: float | None = None,
) -> Path:
    """C8: per variant (one row each, so long names never overlap), the first and steady epoch times
    beside the last epoch's training loss, coloured by the equivalence verdict; eager's loss as a line."""
    fig, (speed_ax, loss_ax) = _new_figure(width=11.0, height=max(3.0, 0.45 * len(labels) + 1.5), ncols=2)
    rows = list(range(len(labels)))
    height = 0.38
    speed_ax.barh(
        [r - height / 2 for r in rows],
        [v or 0.0 for v in first],
        height=height,
        label="first epoch (build included)",
        color="#dd8452",
    )
    speed_ax.barh(
        [r + height / 2 for r in rows],
        [v or 0.0 for v in steady],
        height=height,
        label="steady-state epoch",
        color="#4c72b0",
    )
    speed_ax.set_yticks(rows, labels)
    speed_ax.invert_yaxis()
    speed_ax.set_xlabel("time per epoch (s)")
    speed_ax.legend(
        loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, fontsize="small", frameon=False
    )  # above: never on a bar
    colors = [VERDICT_COLORS.get(v, VERDICT_COLORS["not checked"]) for v in verdicts]
    loss_ax.barh(rows, [v or 0.0 for v in loss], color=colors)
    for row, (value, verdict) in enumerate(zip(loss, verdicts, strict=False)):
        loss_ax.annotate(
            verdict if value is not None else f"{verdict}, no loss",
            (value or 0.0, row),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize="small",
        )
    if baseline_loss is not None:
        loss_ax.axvline(baseline_loss, color="#333333", linestyle="--", linewidth=1, label="eager")
        loss_ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize="small", frameon=False)
    loss_ax.set_yticks(rows, [""] * len(rows))
    loss_ax.invert_yaxis()
    loss_ax.set_xlabel("last epoch's training loss (equivalence check: colour)")
    fig.suptitle(title)
    return _save(fig, path)


def seed_bands(
    path: str | Path,
    bands: Mapping[str, tuple[Sequence[int], Sequence[float], Sequence[float], Sequence[float], Sequence[float]]],
    title: str,
) -> Path:
    """Two panels per label: mean training loss and top-1 (%) over seeds against epoch, each with a ±1 sd band.

    `bands[label]` = (epochs, loss mean, loss sd, top-1 mean, top-1 sd), one value per epoch.
    """
    fig, (loss_ax, top1_ax) = _new_figure(width=11.0, ncols=2)
    for label, (epochs, loss, loss_sd, top1, top1_sd) in bands.items():
        for ax, mean, sd in ((loss_ax, loss, loss_sd), (top1_ax, top1, top1_sd)):
            line = ax.plot(list(epochs), list(mean), marker="o", label=label)[0]
            ax.fill_between(
                list(epochs),
                [m - s for m, s in zip(mean, sd, strict=True)],
                [m + s for m, s in zip(mean, sd, strict=True)],
                color=line.get_color(),
                alpha=0.2,
            )
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss (mean ± sd over seeds)")
    top1_ax.set_xlabel("epoch")
    top1_ax.set_ylabel("top-1 training accuracy, % (mean ± sd over seeds)")
    for ax in (loss_ax, top1_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
    _legend(top1_ax)
    fig.suptitle(title)
    return _save(fig, path)
