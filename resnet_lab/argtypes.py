"""Argument converters shared by the CLI and the pytest options: one clear message per bad value."""

from __future__ import annotations

import argparse


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None


def non_negative_float(text: str) -> float:
    value = _float(text)
    if not value >= 0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a tolerance, a confidence)."""
    value = _float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text}")
    return value


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (>= 1), got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def non_negative_int_list(text: str) -> tuple[int, ...]:
    """'0,4,8' -> (0, 4, 8): sorted, without duplicates."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a comma-separated list of integers >= 0, e.g. 0,4,8")
    return tuple(sorted({non_negative_int(p) for p in parts}))


MAX_SEED = 2**32 - 1  # numpy's legacy seeding (engine/step.set_seed) takes 0..2**32-1


def seed_list(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2): seeds in the order given; each 0..2**32-1, none repeated (a repeat would train the same run twice)."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of seeds, e.g. 0,1,2, got '{text}'")
    seeds = []
    for part in parts:
        value = _int(part)
        if not 0 <= value <= MAX_SEED:
            raise argparse.ArgumentTypeError(f"seed {value} is out of range: seeds are integers 0..{MAX_SEED}")
        if value in seeds:
            raise argparse.ArgumentTypeError(f"seed {value} is given twice: each seed trains one run, list it once")
        seeds.append(value)
    return tuple(seeds)
