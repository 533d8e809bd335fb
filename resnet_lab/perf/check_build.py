"""The equivalence check's compile, kept apart from the timed run's (perf/equivalence.py runs the check in it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..engine.run import RunConfig, compiler_caches


@contextlib.contextmanager
def separate_build(config: RunConfig) -> Iterator[None]:
    """The check's compile in a cache of its own, dropped after: the timed run's first epoch still
    pays a cold build (its batch shape differs from the check's anyway, and compiles are static)."""
    if not config.compile_mode:
        yield
        return
    from torch._inductor.utils import (  # no public API drops Inductor's in-memory caches
        clear_caches,
        fresh_cache,
    )

    try:
        with fresh_cache(), compiler_caches(not config.cold_compile):
            yield
    finally:
        clear_caches()
        torch.compiler.reset()
