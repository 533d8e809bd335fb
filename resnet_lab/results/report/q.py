"""Q1-Q4: the model's structure and the optimizer state, against the lab's answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...spec import groups
from ..runs import Run
from .format import Figures, fmt_int, from_line, md_table, not_run

# LAB_SPEC's answers to Q1-Q4, shown beside the measured figures.
LAB_ANSWERS = {
    ("sgd", "conv_main_path"): 17,
    ("sgd", "conv_shortcut"): 3,
    ("sgd", "conv_all_conv2d"): 20,
    ("sgd", "linear_in_features"): 512,
    ("sgd", "parameters"): 11_173_962,
    ("sgd", "gradient_elements"): 11_173_962,
    ("sgd", "gradient_tensors"): 62,
    ("no_bn", "parameters"): 11_164_362,
    ("adam", "gradient_elements"): 11_173_962,
    ("adam", "gradient_tensors"): 62,
    ("sgd", "state_tensors"): 62,
    ("adam", "state_tensors"): 2 * 62,
    ("adam", "state_elements"): 2 * 11_173_962,
    ("adam", "state_bytes"): 2 * 11_173_962 * 4,  # float32
}


def section(runs: Sequence[Run], figures: Figures | None = None) -> list[str]:
    lines = ["## Q1–Q4: structure of the model and the optimizer state", ""]
    found = [(run, b) for run in runs for b in run.group(groups.Q1_Q4)]
    if not found:
        return lines + not_run(groups.Q1_Q4, runs)
    run, bench = found[0]
    lines += [from_line(run, bench), ""]
    convention = bench.extra("convention")
    if convention:
        lines += [f"Convention: {convention}.", ""]

    def fact(model: str, key: str) -> Any:
        record = bench.extra(model)
        return record.get(key) if isinstance(record, dict) else None

    facts = [
        ("Q1", "Conv2d on the main path (stem + 16 in blocks)", "sgd", "conv_main_path"),
        ("Q1", "1×1 projection shortcuts", "sgd", "conv_shortcut"),
        ("Q1", "all Conv2d modules", "sgd", "conv_all_conv2d"),
        ("Q2", "input features of the final Linear", "sgd", "linear_in_features"),
        ("Q3", "trainable parameters (SGD model)", "sgd", "parameters"),
        ("Q3", "gradient elements after one backward", "sgd", "gradient_elements"),
        ("Q3", "gradient tensors", "sgd", "gradient_tensors"),
        ("Q3", "SGD state tensors (momentum buffers)", "sgd", "state_tensors"),
        ("Q3", "parameters without BatchNorm", "no_bn", "parameters"),
        ("Q4", "gradient elements with Adam", "adam", "gradient_elements"),
        ("Q4", "gradient tensors with Adam", "adam", "gradient_tensors"),
        ("Q4", "Adam state tensors", "adam", "state_tensors"),
        ("Q4", "Adam state elements", "adam", "state_elements"),
        ("Q4", "Adam state size (bytes)", "adam", "state_bytes"),
    ]
    rows = []
    for question, what, model, key in facts:
        measured = fact(model, key)
        expected = LAB_ANSWERS.get((model, key))
        check = "" if expected is None or measured is None else ("yes" if measured == expected else "**NO**")
        rows.append([question, what, fmt_int(measured), fmt_int(expected) if expected is not None else "", check])
    lines += md_table(["question", "fact", "measured", "lab's answer", "agrees"], rows)
    by_key = fact("adam", "state_by_key")
    if isinstance(by_key, dict) and by_key:
        parts = [
            f"`{k}`: {fmt_int(v.get('tensors'))} tensors, {fmt_int(v.get('elements'))} elements"
            for k, v in by_key.items()
            if isinstance(v, dict)
        ]
        lines += ["Adam state by key: " + "; ".join(parts) + ".", ""]
    if len(found) > 1:
        same = all(b.extra_info.get("sgd") == bench.extra_info.get("sgd") for _, b in found[1:])
        lines += [f"The other {len(found) - 1} input(s) with Q1-Q4 {'agree' if same else 'DIFFER'}.", ""]
    return lines
