"""Whether a slowdown computes more or waits more: CPU time read beside wall time (no torch).

CPU runs record this process's CPU seconds beside each wall-time figure (`train_s` and
`train_cpu_s`, the loader's `round_s` and `round_cpu_s`; keys in engine/phases.py). A change that
computes more raises both by about the same factor (with several threads CPU seconds exceed wall
seconds, but a ratio is a ratio); one that waits (a sleep, a lock, a blocking copy, slower I/O)
raises the wall time alone. Runs saved before these keys existed have no CPU figure: the kind is
then not stated, never guessed.
"""

from __future__ import annotations

from ..engine.phases import cpu_key

__all__ = ["BOTH", "COMPUTES", "WAITS", "change_kind", "cpu_key", "kind_note"]

COMPUTES, WAITS, BOTH = "computes more", "waits more", "computes and waits more"
# Below this relative change of wall time there is no slowdown to attribute.
MIN_CHANGE = 0.02
# The share of the wall-time change that CPU time explains: at least COMPUTE_SHARE, compute; at most WAIT_SHARE,
# waiting.
COMPUTE_SHARE, WAIT_SHARE = 0.75, 0.25


def change_kind(wall_ratio: float, cpu_ratio: float | None) -> str:
    """'computes more', 'waits more', 'computes and waits more' for a slowdown new/base = wall_ratio
    whose CPU time changed by cpu_ratio; '' when there is no slowdown or no CPU figure."""
    if cpu_ratio is None or not wall_ratio > 1 + MIN_CHANGE:
        return ""
    share = (cpu_ratio - 1) / (wall_ratio - 1)
    if share >= COMPUTE_SHARE:
        return COMPUTES
    if share <= WAIT_SHARE:
        return WAITS
    return BOTH


def kind_note(wall_ratio: float, cpu_ratio: float | None) -> str:
    """' (waits more: CPU 1.00x)' or '' — appended to a slowdown's line."""
    kind = change_kind(wall_ratio, cpu_ratio)
    return f" ({kind}: CPU {cpu_ratio:.3f}x)" if kind else ""
