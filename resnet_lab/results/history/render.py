"""The history's three outputs from the judged series: a terminal table, a Markdown summary (a CI job summary
or a PR comment) and one self-contained HTML page (inline SVG plots drawn by matplotlib's Agg canvas: no
network, no JavaScript)."""

from __future__ import annotations

import html
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ..compare import format_table
from .detect import IMPROVEMENT, INSUFFICIENT, NO_CHANGE, REGRESSION, SUSPICIOUS, Change
from .series import FIGURE_TITLES, Judged, Point, fmt_value, short

LABEL_ORDER = {REGRESSION: 0, SUSPICIOUS: 1, IMPROVEMENT: 2, NO_CHANGE: 3, INSUFFICIENT: 4}
LABEL_COLORS = {
    REGRESSION: "#c0392b",
    SUSPICIOUS: "#d68910",
    IMPROVEMENT: "#1e8449",
    NO_CHANGE: "#5d6d7e",
    INSUFFICIENT: "#95a5a6",
}
LABEL_ICONS = {REGRESSION: "🔴", SUSPICIOUS: "🟠", IMPROVEMENT: "🟢", NO_CHANGE: "⚪", INSUFFICIENT: "⚫"}


@dataclass(frozen=True)
class Context:
    """What the outputs say about the history as a whole."""

    status: int  # the exit status: 0, 1 or 2
    alpha: float
    runs: int
    commits: int
    skipped: Sequence[str] = ()
    since: str | None = None

    @property
    def headline(self) -> str:
        return {0: "ok", 1: "FAIL", 2: "cannot judge"}[self.status]


def ordered(judged: Sequence[Judged]) -> list[Judged]:
    return sorted(judged, key=lambda j: (LABEL_ORDER[j.label], j.series.machine, j.series.benchmark, j.series.figure))


DIRTY_MARK = "*"  # after a commit's name: the run measured that commit with uncommitted changes


def commit_text(point: Point) -> str:
    """A run's commit as every output names it: its first 8 hex digits, marked when the tree was dirty."""
    return short(point.commit) + (DIRTY_MARK if point.dirty else "")


def change_text(j: Judged, change: Change) -> str:
    s = j.series
    rule_change = change.rule.change(change.before, change.after)
    size = f"{change.ratio:.3f}x" if change.rule.log_scale else f"{rule_change:+.2f} pt"
    return f"{commit_text(s.points[change.index])} {size} (p={change.p_value:.3g})"


def newest_text(j: Judged) -> str:
    if not j.series.points:
        return "-"
    p = j.series.points[-1]
    return f"{fmt_value(j.series.metric, p.value)} @ {commit_text(p)}"


def counts(judged: Sequence[Judged]) -> str:
    found = {label: sum(j.label == label for j in judged) for label in LABEL_ORDER}
    return ", ".join(f"{n} {label}" for label, n in found.items() if n)


def footnotes(ctx: Context, judged: Sequence[Judged]) -> list[str]:
    notes = [
        f"{ctx.runs} runs of {ctx.commits} commits"
        + (f" since {ctx.since}" if ctx.since else "")
        + f"; false-alarm rate {ctx.alpha:g} over all {len(judged)} series (each "
        "tested at "
        f"{ctx.alpha / max(1, sum(j.label != INSUFFICIENT for j in judged)):.3g})"
    ]
    if any(p.dirty for j in judged for p in j.series.points):
        notes.append(f"{DIRTY_MARK} a run of a commit with uncommitted changes (dirty)")
    notes += [f"skipped {s}" for s in ctx.skipped]
    return notes


# ---------------------------------------------------------------------------
# terminal and Markdown
# ---------------------------------------------------------------------------


def terminal(ctx: Context, judged: Sequence[Judged]) -> str:
    out = []
    for machine in dict.fromkeys(j.series.machine for j in ordered(judged)):
        rows = [
            [
                j.label,
                j.series.benchmark,
                j.series.figure,
                str(len(j.series.points)),
                newest_text(j),
                "; ".join(change_text(j, c) for c in j.verdict.changes) or "-",
                j.verdict.why,
            ]
            for j in ordered(judged)
            if j.series.machine == machine
        ]
        out += [
            f"machine: {machine}",
            format_table(
                ["status", "benchmark", "figure", "runs", "newest", "changes (first commit, size, p)", "why"], rows
            ),
            "",
        ]
    out += footnotes(ctx, judged)
    out.append(f"\nresult: {ctx.headline} ({counts(judged)})")
    return "\n".join(out)


def md_escape(text: str) -> str:
    """Plain text in a Markdown table cell or list item: `|` would end the cell, `*` and `_` (the dirty mark,
    names like load_s) could start emphasis, a leading `*` a nested list. Text inside backticks is literal."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside code spans only
        parts[i] = parts[i].replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_")
    return "`".join(parts).replace("|", "\\|")


def markdown(ctx: Context, judged: Sequence[Judged]) -> str:
    icon = {0: "✅", 1: "❌", 2: "⚠️"}[ctx.status]
    out = [f"## {icon} resnet-lab history: {ctx.headline}", "", counts(judged), ""]
    out += [
        "| status | benchmark | figure | machine | runs | newest | changes (first commit, size, p) | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for j in ordered(judged):
        cells = [
            f"{LABEL_ICONS[j.label]} {j.label}",
            f"`{j.series.benchmark}`",
            f"`{j.series.figure}`",
            j.series.machine,
            str(len(j.series.points)),
            newest_text(j),
            "<br>".join(change_text(j, c) for c in j.verdict.changes) or "-",
            j.verdict.why,
        ]
        out.append("| " + " | ".join(md_escape(c) for c in cells) + " |")
    out += [""] + [f"- {md_escape(n)}" for n in footnotes(ctx, judged)]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# the HTML page
# ---------------------------------------------------------------------------


def plot_svg(j: Judged, number: int = 0) -> str:
    """One series over its runs: the values, each run's noise band (value +- IQR/2), the segments' medians,
    a dashed line at each change point labelled with its commit (SVG group id `changepoint-NUMBER-K`)."""
    from matplotlib import rc_context

    # Stable element ids (the same history, the same page) and text kept as text (smaller, selectable).
    with rc_context({"svg.hashsalt": f"resnet-lab-history-{number}", "svg.fonttype": "none"}):
        return _draw(j, number)


def _draw(j: Judged, number: int) -> str:
    from matplotlib.figure import Figure

    s, v = j.series, j.verdict
    xs = list(range(1, len(s.points) + 1))
    ys = [p.value for p in s.points]
    color = LABEL_COLORS[j.label]
    fig = Figure(figsize=(9.0, 3.0), dpi=100)
    ax = fig.add_subplot()
    low = [p.value - (p.spread or 0) / 2 for p in s.points]
    high = [p.value + (p.spread or 0) / 2 for p in s.points]
    if any(p.spread for p in s.points):
        ax.fill_between(
            xs, low, high, color="#5d6d7e", alpha=0.18, linewidth=0, label="run's own noise (IQR over steady rounds)"
        )
    ax.plot(xs, ys, color="#34495e", linewidth=1, alpha=0.6, zorder=2)
    clean = [(x, y) for x, y, p in zip(xs, ys, s.points, strict=True) if not p.dirty]
    dirty = [(x, y) for x, y, p in zip(xs, ys, s.points, strict=True) if p.dirty]
    if clean:
        ax.plot(*zip(*clean, strict=True), "o", color="#34495e", markersize=4.5, zorder=3, label="run")
    if dirty:
        ax.plot(
            *zip(*dirty, strict=True),
            "o",
            markerfacecolor="white",
            markeredgecolor="#34495e",
            markersize=5,
            zorder=3,
            label="run of a dirty tree",
        )
    for k, (a, b) in enumerate(v.segments):
        if b > a:
            ax.hlines(
                statistics.median(ys[a:b]),
                a + 0.6,
                b + 0.4,
                color=color if k == len(v.segments) - 1 else "#7f8c8d",
                linewidth=2.2,
                zorder=4,
                label="segment median" if k == 0 else "_nolegend_",
            )
    for k, change in enumerate(v.changes):
        x = change.index + 0.5
        ax.axvline(
            x,
            color=LABEL_COLORS[
                REGRESSION if change.direction == 1 else IMPROVEMENT if change.direction == -1 else NO_CHANGE
            ],
            linestyle="--",
            linewidth=1.4,
            zorder=5,
            gid=f"changepoint-{number}-{k}",
        )
        ax.annotate(
            f"{commit_text(s.points[change.index])}  {change.ratio:.2f}x",
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color="#2c3e50",
        )
    if v.outlier and s.points:
        ax.plot(
            [xs[-1]],
            [ys[-1]],
            "o",
            markersize=11,
            markerfacecolor="none",
            markeredgecolor=LABEL_COLORS[SUSPICIOUS],
            zorder=6,
        )
    ticks = [x for x in xs if x == 1 or s.points[x - 1].block != s.points[x - 2].block]
    for x in ticks[1:]:  # where a commit's runs begin: the only places a change can start
        ax.axvline(x - 0.5, color="#d5dbdb", linewidth=0.8, zorder=1)
    ax.set_xticks(
        ticks, [commit_text(s.points[x - 1]) for x in ticks], rotation=35, ha="right", fontsize=7.5, family="monospace"
    )
    ax.set_xlim(0.5, len(xs) + 0.5)
    unit = {"s": "seconds", "%": "percent", "": ""}[s.metric.unit]
    ax.set_ylabel(f"{s.figure}" + (f" ({unit})" if unit else ""), fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", color="#ecf0f1")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=7, loc="upper left", frameon=False, ncols=4, bbox_to_anchor=(0, -0.32))
    fig.subplots_adjust(left=0.08, right=0.99, top=0.95, bottom=0.38)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight", pad_inches=0.05)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#2c3e50;margin:0;background:#f4f6f7}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d5dbdb;padding-bottom:4px}
.meta{color:#5d6d7e;font-size:13px}
.banner{border-radius:8px;padding:14px 18px;color:#fff;margin:16px 0;font-size:17px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{padding:6px 8px;border-bottom:1px solid #ecf0f1;text-align:left;vertical-align:top}
th{background:#eaeded}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;color:#fff;font-size:12px;white-space:nowrap}
figure.plot{background:#fff;border-radius:8px;margin:12px 0;padding:10px 12px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
figure.plot figcaption{font-size:14px;margin-bottom:4px}
figure.plot svg{width:100%;height:auto}
code{font-size:12px}
ul.notes{color:#5d6d7e;font-size:13px}
"""


def badge(label: str) -> str:
    return f'<span class="badge" style="background:{LABEL_COLORS[label]}">{html.escape(label)}</span>'


def page(ctx: Context, judged: Sequence[Judged]) -> str:
    e = html.escape
    banner = {
        0: ("#1e8449", "No regression in the newest runs"),
        1: ("#c0392b", "Regression: the newest runs sit in a slower segment"),
        2: ("#7f8c8d", "Not enough runs to judge"),
    }[ctx.status]
    rows = "".join(
        f"<tr><td>{badge(j.label)}</td><td><code>{e(j.series.benchmark)}</code></td>"
        f"<td>{e(j.series.figure)}</td><td>{len(j.series.points)}</td>"
        f"<td>{e(newest_text(j))}</td>"
        f"<td>{'<br>'.join(e(change_text(j, c)) for c in j.verdict.changes) or '-'}</td>"
        f"<td>{e(j.verdict.why)}</td></tr>"
        for j in ordered(judged)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>resnet-lab history: {e(ctx.headline)}</title><style>{CSS}</style></head><body><main>",
        "<h1>resnet-lab history</h1>",
        f'<div class="meta">{e(footnotes(ctx, judged)[0])}</div>',
        f'<div class="banner" id="status" data-status="{ctx.status}" '
        f'style="background:{banner[0]}">{e(banner[1])} · '
        f"{e(counts(judged))}</div>",
        "<h2>Latest status</h2>",
        "<table><tr><th>status</th><th>benchmark</th><th>figure</th><th>runs</th><th>newest</th><th>changes "
        "(first commit, size, p)</th><th>why</th></tr>",
        rows,
        "</table>",
    ]
    number = 0
    for machine in dict.fromkeys(j.series.machine for j in judged):
        parts.append(f"<h2>Machine: {e(machine)}</h2>")
        for figure in dict.fromkeys(j.series.figure for j in judged if j.series.machine == machine):
            for j in (j for j in ordered(judged) if j.series.machine == machine and j.series.figure == figure):
                parts.append(
                    f'<figure class="plot" data-figure="{e(figure)}" '
                    f'data-benchmark="{e(j.series.benchmark)}" '
                    f'data-changes="{len(j.verdict.changes)}">'
                    f"<figcaption>{badge(j.label)} "
                    f"<strong>{e(FIGURE_TITLES.get(figure, figure))}</strong> · "
                    f"<code>{e(j.series.benchmark)}</code>"
                    f" · {e(j.series.workload)}</figcaption>{plot_svg(j, number)}</figure>"
                )
                number += 1
    parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in footnotes(ctx, judged)[1:]) + "</ul>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
