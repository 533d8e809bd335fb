"""The spread over seeds: per configuration and epoch, the mean and standard deviation of loss and top-1.

Only runs made with --lab-seeds have it (their training benchmarks carry a `seed` param); for
every other run the section is left out, so their answer sheets read as they always did.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from ...spec.groups import GROUPS
from .. import plots
from ..runs import SEED_PARAM, Bench, Run
from .format import Figures, from_line, md_table
from .values import curves_of


def seeded_configurations(run: Run) -> dict[tuple[str, str], list[Bench]]:
    """(group, configuration) -> its benchmarks, one per seed, for the configurations trained at several seeds."""
    found: dict[tuple[str, str], list[Bench]] = {}
    for group in GROUPS:
        for bench in run.group(group):
            if SEED_PARAM in bench.params:
                found.setdefault((group, bench.configuration), []).append(bench)
    return {
        key: sorted(benches, key=lambda b: b.seed)
        for key, benches in found.items()
        if len({b.seed for b in benches}) > 1
    }


def mean_sd(values: Sequence[float], scale: float = 1.0, digits: int = 4) -> str:
    if not values:
        return "not recorded"
    mean = statistics.fmean(values) * scale
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def per_epoch(benches: Sequence[Bench]) -> list[tuple[int, list[float], list[float]]]:
    """(epoch, the seeds' losses, the seeds' top-1 in percent) for each epoch any seed recorded."""
    per_seed = [curves_of(b) for b in benches]
    epochs = sorted({e for epochs, _, _ in per_seed for e in epochs})
    out = []
    for epoch in epochs:
        loss = [c[1][c[0].index(epoch)] for c in per_seed if epoch in c[0] and len(c[1]) == len(c[0])]
        top1 = [c[2][c[0].index(epoch)] for c in per_seed if epoch in c[0] and len(c[2]) == len(c[0])]
        out.append((epoch, loss, top1))
    return out


def epoch_rows(benches: Sequence[Bench]) -> list[list[str]]:
    """Per epoch: seeds that recorded it, loss mean ± sd, train top-1 mean ± sd (in percent)."""
    return [
        [str(epoch), str(max(len(loss), len(top1))), mean_sd(loss), mean_sd(top1, digits=2)]
        for epoch, loss, top1 in per_epoch(benches)
    ]


def band(benches: Sequence[Bench]) -> tuple[list[int], list[float], list[float], list[float], list[float]] | None:
    """(epochs, loss mean, loss sd, top-1 mean, top-1 sd) over the epochs every seed recorded both figures of; None if
    none."""
    rows = [(e, loss, top1) for e, loss, top1 in per_epoch(benches) if len(loss) == len(top1) == len(benches)]
    if not rows:
        return None
    return (
        [e for e, _, _ in rows],
        [statistics.fmean(r[1]) for r in rows],
        [statistics.stdev(r[1]) for r in rows],
        [statistics.fmean(r[2]) for r in rows],
        [statistics.stdev(r[2]) for r in rows],
    )


def section(runs: Sequence[Run], figures: Figures) -> list[str]:
    blocks = [(run, seeded_configurations(run)) for run in runs]
    blocks = [(run, configurations) for run, configurations in blocks if configurations]
    if not blocks:
        return []
    lines = [
        "## Seeds: the spread of loss and top-1",
        "",
        "Configurations trained at several seeds (`--lab-seeds`): per epoch, "
        "the mean ± standard deviation over the seeds "
        "of the training loss and of the train top-1 (percent, over all "
        "samples of the epoch). A variant whose curve sits "
        "several standard deviations from eager's trains differently.",
        "",
    ]
    for index, (run, configurations) in enumerate(blocks, 1):
        lines += [from_line(run), ""]
        bands: dict[str, dict[str, tuple]] = {}
        for (group, configuration), benches in configurations.items():
            seeds = ",".join(str(b.seed) for b in benches)
            lines += [f"**{group}** `{configuration}`, seeds {seeds}", ""]
            lines += md_table(["epoch", "seeds", "loss (mean ± sd)", "top-1 % (mean ± sd)"], epoch_rows(benches))
            curve = band(benches)
            if curve is not None:
                bands.setdefault(group, {})[configuration.partition("[")[2].rstrip("]") or configuration] = curve
        for group, curves in bands.items():  # one figure per group: its configurations side by side
            title = f"{group}: loss and top-1 over seeds ({run.label})"
            lines += figures.add(
                f"seeds_{group}_{index}",
                title,
                plots.seed_bands,
                curves,
                title,
            )
    return lines
