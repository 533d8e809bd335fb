"""The benchmark groups, named once, and the lab questions that read them (no torch here).

Each benchmark module marks itself with its group (`pytest.mark.benchmark(group=groups.C2)`);
the answer sheet, the short answers, the derived figures, `estimate`, CI's comparison
(.ci/compare) and the tests read the names from here.

A new lab question with a report section is: its group constant and `Question` below, a
benchmark module in benchmarks/ that marks itself with the constant, and a report module
`resnet_lab/results/report/<section>.py` with `section(runs, figures) -> list[str]`.
"""

from __future__ import annotations

from dataclasses import dataclass

C2 = "C2"
C3 = "C3"
C3_LOADER = "C3-loader"
C4 = "C4"
C5 = "C5"
C6 = "C6"
C7 = "C7"
C8 = "C8"
Q1_Q4 = "Q1-Q4"
Q3B = "Q3b"
LOADER = "loader"
D1, D2, D3, D4, D5 = "D1", "D2", "D3", "D4", "D5"
D_GROUPS = (D1, D2, D3, D4, D5)


@dataclass(frozen=True)
class Question:
    """One section of the answer sheet and the groups it reads."""

    section: str  # the module in resnet_lab.results.report that writes it
    groups: tuple[str, ...]  # the benchmark groups whose benchmarks it answers


# The answer sheet's sections, in this order.
QUESTIONS = (
    Question("c2", (C2,)),
    Question("c3", (C3, C3_LOADER)),
    Question("c4", (C4,)),
    Question("c5", (C5,)),
    Question("c6", (C6,)),
    Question("c7", (C7,)),
    Question("q", (Q1_Q4,)),
    Question("q3b", (Q3B,)),
    Question("c8", (C8,)),
    Question("seeds", ()),  # the spread over --lab-seeds of every group above; absent without seeds
    Question("loader", (LOADER,)),
    Question("distributed", D_GROUPS),
    Question("scaling", ()),  # the data-parallel scaling model, from D1-D4's figures
)
GROUPS = tuple(group for question in QUESTIONS for group in question.groups)  # every group the suite writes

# Trained once per seed under --lab-seeds (a `seed` param): the questions that train and read loss and
# top-1. The loader, structure, profile and data-parallel benchmarks run once, at the first seed.
SEEDED = (C2, C3, C4, C5, C6, C7, C8)

# Compared by CI with the reference run on quality (.ci/compare): the training groups whose last
# epoch's loss and top-1 mean something. Timing is gated by the paired A/B run (.ci/ab), not here.
QUALITY_GATED = (C2, C6, C7, C8)
