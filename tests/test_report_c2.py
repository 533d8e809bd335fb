"""The report's C1/C2 section (results/report/c2.py): per-epoch means, start-up, and CPU time beside wall time."""

from __future__ import annotations

import statistics

from fixtures.labruns import make_run, write_run
from reporthelpers import run_report, section

from resnet_lab.results.report.c2 import phase_series
from resnet_lab.results.report.format import fmt_s


def test_c2_table_means_are_the_per_epoch_means(capsys, tmp_path):
    data = make_run(seed=4, epochs=3, groups=("C2",))
    path = write_run(tmp_path / "c2.json", data)
    run_report(capsys, str(path), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## C1/C2")
    records = data["benchmarks"][0]["extra_info"]["epochs"]
    mean_row = next(line for line in body.splitlines() if line.startswith("| **mean over 3 epochs**"))
    for key in ("load_s", "copy_s", "train_s", "metrics_s", "epoch_s"):
        assert f"| {fmt_s(statistics.fmean(r[key] for r in records))} " in mean_row, key
    steady_row = next(line for line in body.splitlines() if line.startswith("| **mean without warm-up**"))
    assert f"| {fmt_s(statistics.fmean(r['train_s'] for r in records[1:]))} " in steady_row
    assert f"{100 * records[-1]['top1']:.2f} % (last)" in mean_row
    assert body.count("\n| 1 | 2 | 256 |") == 1  # one row per epoch


def test_phase_series_takes_startup_out_of_the_remainder():
    new = [
        {"epoch": 1, "startup_s": 0.5, "load_s": 1.0, "copy_s": 0.25, "train_s": 4.0, "metrics_s": 0.25, "epoch_s": 6.5}
    ]
    epochs, phases = phase_series(new)
    assert epochs == [1]
    assert phases == {
        "startup_s": [0.5],
        "load_s": [1.0],
        "copy_s": [0.25],
        "train_s": [4.0],
        "metrics_s": [0.25],
        "other_s": [0.5],
    }
    old = [{key: value for key, value in new[0].items() if key != "startup_s"}]  # a run saved before startup_s
    assert phase_series(old)[1] == {
        "load_s": [1.0],
        "copy_s": [0.25],
        "train_s": [4.0],
        "metrics_s": [0.25],
        "other_s": [1.0],
    }


def test_c2_table_shows_startup_or_not_recorded(capsys, tmp_path):
    data = make_run(seed=4, epochs=2, groups=("C2",))
    records = data["benchmarks"][0]["extra_info"]["epochs"]
    records[0]["startup_s"] = 0.375
    path = write_run(tmp_path / "c2.json", data)
    run_report(capsys, str(path), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## C1/C2")
    assert "| start-up (s) | load (s) |" in body
    rows = [line for line in body.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert rows[0].startswith("| 1 | 2 | 256 | 0.375 | ") and rows[1].startswith("| 2 | 2 | 256 | not recorded | ")


def c2_with_cpu(seed: int, train_cpu_s: float, slow: float = 1.0) -> dict:
    """A C2 run whose epoch records carry CPU time per phase, as CPU runs record it since issue 23."""
    data = make_run(seed=seed, epochs=3, groups=("C2",), slow={"train_s": slow})
    for record in data["benchmarks"][0]["extra_info"]["epochs"]:
        record.update(
            startup_cpu_s=0.0,
            load_cpu_s=record["load_s"] / 2,
            copy_cpu_s=record["copy_s"],
            train_cpu_s=train_cpu_s,
            metrics_cpu_s=record["metrics_s"],
            shutdown_cpu_s=0.0,
            epoch_cpu_s=train_cpu_s + record["load_s"],
        )
    return data


def test_c2_shows_cpu_time_beside_wall_time_and_whether_a_slower_phase_waits(capsys, tmp_path):
    base = write_run(tmp_path / "base.json", c2_with_cpu(4, train_cpu_s=8.0))
    waits = write_run(tmp_path / "waits.json", c2_with_cpu(4, train_cpu_s=8.0, slow=1.25))
    run_report(capsys, str(base), str(waits), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## C1/C2")
    records = c2_with_cpu(4, 8.0)["benchmarks"][0]["extra_info"]["epochs"][1:]
    train_row = next(line for line in body.splitlines() if line.startswith("| train |"))
    assert (
        train_row == f"| train | {fmt_s(statistics.fmean(r['train_s'] for r in records))} | {fmt_s(8.0)} | "
        f"{8.0 / statistics.fmean(r['train_s'] for r in records):.2f} |"
    )
    assert "train 1.250x wall, 1.000x CPU: waits more" in body


def test_c2_of_a_run_without_cpu_time_has_no_cpu_table(capsys, tmp_path):
    path = write_run(tmp_path / "c2.json", make_run(seed=4, epochs=3, groups=("C2",)))
    run_report(capsys, str(path), "--out", str(tmp_path / "r"))
    assert "CPU time beside wall time" not in section((tmp_path / "r" / "answers.md").read_text(), "## C1/C2")
