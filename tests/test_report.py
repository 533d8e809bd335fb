"""`resnet-lab report`: the answer sheet, its figures, missing data, and exit-2 failures."""

from __future__ import annotations

import json
import re
import statistics

import pytest
from fixtures.druns import d_benchmarks
from fixtures.labruns import ALL_GROUPS, make_run, without_keys, write_run
from matplotlib.image import imread

from resnet_lab import cli
from resnet_lab.results.report.c2 import phase_series
from resnet_lab.results.report.format import fmt_s
from resnet_lab.spec.groups import D_GROUPS, GROUPS

SECTIONS = (
    "## Inputs",
    "## C1/C2",
    "## C3",
    "## C4",
    "## C5",
    "## C6",
    "## C7",
    "## Q1–Q4",
    "## Q3b",
    "## C8",
    "## Loader pipelines",
    "## D1",
    "## D2",
    "## D3",
    "## D4",
    "## D5",
    "## Scaling model",
)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["report", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def sections(text: str) -> dict[str, str]:
    """answers.md split at its '## ' headings: heading line -> body."""
    parts = re.split(r"^(## .*)$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def section(text: str, prefix: str) -> str:
    return next(body for head, body in sections(text).items() if head.startswith(prefix))


@pytest.fixture
def cpu_run(tmp_path):
    data = make_run(seed=0)
    data["benchmarks"] += d_benchmarks()  # every question answered, D1-D5 included
    return write_run(tmp_path / "cpu.json", data)


@pytest.fixture
def gpu_run(tmp_path):
    return write_run(
        tmp_path / "gpu.json",
        make_run(seed=1, devices=("cuda",), gpu="NVIDIA H100 80GB HBM3", cpu_count=16, cpu="Intel Xeon"),
    )


def test_every_section_and_figures_that_render(capsys, tmp_path, cpu_run):
    out = tmp_path / "report"
    rc, stdout, err = run_cli(capsys, str(cpu_run), "--out", str(out))
    assert rc == 0, err
    text = (out / "answers.md").read_text()
    for heading in SECTIONS:
        assert heading in text
    assert "Not run" not in text
    links = re.findall(r"!\[[^]]+\]\(([^)]+\.png)\)", text)
    assert len(links) >= 4
    pngs = sorted(out.glob("*.png"))
    assert sorted(p.name for p in pngs) == sorted(links)
    for png in pngs:
        image = imread(png)
        assert image.shape[0] > 200 and image.shape[1] > 300
        assert image[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    assert f"{len(pngs)} figures" in stdout
    assert not list(out.glob(".*.tmp"))  # no temporary left behind


def test_each_section_names_its_run_machine_and_preset(capsys, tmp_path, cpu_run):
    out = tmp_path / "report"
    run_cli(capsys, str(cpu_run), "--out", str(out))
    text = (out / "answers.md").read_text()
    for heading, body in sections(text).items():
        if heading == "## Inputs":
            continue
        assert "_From `cpu.json` (AMD EPYC x2, no GPU" in body, heading
        assert "preset smoke, synthetic data, 2 epochs x 2 batches" in body, heading


def test_c2_table_means_are_the_per_epoch_means(capsys, tmp_path):
    data = make_run(seed=4, epochs=3, groups=("C2",))
    path = write_run(tmp_path / "c2.json", data)
    run_cli(capsys, str(path), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## C1/C2")
    records = data["benchmarks"][0]["extra_info"]["epochs"]
    mean_row = next(line for line in body.splitlines() if line.startswith("| **mean over 3 epochs**"))
    for key in ("load_s", "copy_s", "train_s", "metrics_s", "epoch_s"):
        assert f"| {fmt_s(statistics.fmean(r[key] for r in records))} " in mean_row, key
    steady_row = next(line for line in body.splitlines() if line.startswith("| **mean without warm-up**"))
    assert f"| {fmt_s(statistics.fmean(r['train_s'] for r in records[1:]))} " in steady_row
    assert f"{100 * records[-1]['top1']:.2f} % (last)" in mean_row
    assert body.count("\n| 1 | 2 | 256 |") == 1  # one row per epoch


def test_c3_answer_recorded_by_the_suite(capsys, tmp_path, cpu_run):
    run_cli(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## C3")
    # loader-only times 0: 16.0, 4: 7.9, 8: 7.5, 12: 7.4, 16: 7.6 -> best 7.4 at 12; 7.9 <= 7.4 x 1.1 -> 4 workers
    assert "**C3.2: 4 workers**" in body
    assert "best 7.400 s at 12 workers" in body
    assert "recorded by the suite" in body
    assert "smallest num_workers whose load_s is within 10% of the best" in body


def test_c3_answer_computed_with_the_suites_rule_when_not_recorded(capsys, tmp_path):
    path = write_run(tmp_path / "old.json", make_run(seed=0, record_c32=False))
    run_cli(capsys, str(path), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## C3")
    assert "**C3.2: 4 workers**" in body
    assert "computed by the report" in body


def test_c5_speedup_from_a_cpu_run_and_a_gpu_run(capsys, tmp_path, cpu_run, gpu_run):
    out = tmp_path / "r"
    rc, _, _ = run_cli(capsys, str(cpu_run), str(gpu_run), "--out", str(out))
    assert rc == 0
    body = section((out / "answers.md").read_text(), "## C5")

    def mean_epoch(path):
        import json

        bench = next(b for b in json.loads(path.read_text())["benchmarks"] if b["group"] == "C5")
        return statistics.fmean(r["epoch_s"] for r in bench["extra_info"]["epochs"])

    assert f"**GPU speedup: {mean_epoch(cpu_run) / mean_epoch(gpu_run):.1f}×**" in body
    assert "NVIDIA H100 80GB HBM3" in body and "AMD EPYC" in body
    assert (out / "c5-devices.png").exists()


def test_c5_without_a_gpu_says_not_measured(capsys, tmp_path, cpu_run):
    run_cli(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## C5")
    assert "Speedup: not measured" in body and "no GPU (cuda) C5 benchmark" in body


def test_c6_and_c7_tables(capsys, tmp_path, cpu_run):
    run_cli(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    text = (tmp_path / "r" / "answers.md").read_text()
    c6 = section(text, "## C6")
    for optimizer in ("sgd", "sgd-nesterov", "adagrad", "adadelta", "adam"):
        assert f"\n| {optimizer} |" in c6
    assert "| sgd | " in c6 and "45.00 %" in c6 and "40.00 %" in c6  # final train top-1, test top-1
    c7 = section(text, "## C7")
    assert "| BN on |" in c7 and "| BN off |" in c7 and "25.00 %" in c7


def test_q_facts_against_the_lab(capsys, tmp_path, cpu_run):
    run_cli(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## Q1–Q4")
    assert "| Q1 | Conv2d on the main path (stem + 16 in blocks) | 17 | 17 | yes |" in body
    assert "| Q3 | parameters without BatchNorm | 11,164,362 | 11,164,362 | yes |" in body
    assert "| Q4 | Adam state elements | 22,347,924 | 22,347,924 | yes |" in body
    assert "**NO**" not in body
    assert "Convention:" in body


def test_q3b_and_c8(capsys, tmp_path, cpu_run):
    run_cli(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    text = (tmp_path / "r" / "answers.md").read_text()
    q3b = section(text, "## Q3b")
    assert "| backward | 8.000 |" in q3b and "lab-output/q3b/q3b_trace_cpu.json" in q3b
    # share of CPU time: 8.0 of (0.03 + 0.002 + 4 + 8 + 0.6 + 0.01) = 63.3%
    assert f"{8.0 / 12.642:.1%}" in q3b
    c8 = section(text, "## C8")
    assert (
        "| compile-default | cpu | 60.000 | 3.900 | 1.950 | 1.28× |" in c8
    )  # train step 3.9 / 2 against eager's 5.0 / 2
    assert "| eager | cpu | 5.200 | 5.000 | 2.500 | 1.00× |" in c8
    assert "first epoch is a cold build" in c8


def test_c8_says_when_a_compile_may_have_loaded_an_earlier_build(capsys, tmp_path):
    run = make_run(groups=("C8",))
    for b in run["benchmarks"]:
        b["extra_info"].pop("compile_caches", None)  # JSON from before the caches were turned off
    rc, _, err = run_cli(capsys, str(write_run(tmp_path / "old.json", run)), "--out", str(tmp_path / "r"))
    assert rc == 0, err
    c8 = section((tmp_path / "r" / "answers.md").read_text(), "## C8")
    assert "may have loaded an earlier build" in c8 and "is a cold build" not in c8


def test_absent_questions_are_not_run(capsys, tmp_path):
    path = write_run(tmp_path / "only-c2.json", make_run(groups=("C2",)))
    rc, _, err = run_cli(capsys, str(path), "--out", str(tmp_path / "r"))
    assert rc == 0, err
    text = (tmp_path / "r" / "answers.md").read_text()
    for heading in SECTIONS:
        assert heading in text
    for prefix, group in (
        ("## C3", "C3"),
        ("## C4", "C4"),
        ("## C5", "C5"),
        ("## C6", "C6"),
        ("## C7", "C7"),
        ("## Q1–Q4", "Q1-Q4"),
        ("## Q3b", "Q3b"),
        ("## C8", "C8"),
        ("## Loader", "loader"),
    ):
        assert f"**Not run**: no `{group}` benchmark in `only-c2.json`" in section(text, prefix), prefix


def test_a_run_with_no_benchmarks_is_all_not_run(capsys, tmp_path):
    data = make_run()
    data["benchmarks"] = []
    del data["lab"]
    path = write_run(tmp_path / "empty.json", data)
    rc, _, _ = run_cli(capsys, str(path), "--out", str(tmp_path / "r"))
    assert rc == 0
    text = (tmp_path / "r" / "answers.md").read_text()
    assert text.count("**Not run**") == len(SECTIONS) - 1
    assert "preset not recorded" in text


@pytest.mark.parametrize(
    "keys",
    [
        ("epochs",),
        ("load_s", "copy_s", "train_s", "metrics_s", "loss", "top1", "warmup", "epoch"),
        (
            "epochs",
            "load_s",
            "train_s",
            "epoch_s",
            "loss",
            "top1",
            "workers",
            "phases",
            "sgd",
            "adam",
            "variant",
            "images_per_s",
        ),
    ],
    ids=["no-epoch-records", "records-without-phases", "almost-nothing"],
)
def test_missing_keys_degrade_to_not_recorded(capsys, tmp_path, keys):
    path = write_run(tmp_path / "older.json", without_keys(make_run(), keys))
    rc, _, err = run_cli(capsys, str(path), "--out", str(tmp_path / "r"))
    assert rc == 0, err
    text = (tmp_path / "r" / "answers.md").read_text()
    assert "not recorded" in text
    for heading in SECTIONS:
        assert heading in text


def test_odd_values_do_not_crash(capsys, tmp_path):
    data = make_run()
    for b in data["benchmarks"]:
        b["extra_info"]["epochs"] = [{"epoch": "one", "load_s": "slow", "epoch_s": None}, 7, {"loss": float("nan")}]
        b["extra_info"]["top1"] = True
        b["extra_info"]["phases"] = ["not", "a", "dict"]
        b["params"] = None
        b["stats"] = {"median": "n/a"}
    data["lab"] = {"c3_2": "4 workers"}
    data["commit_info"] = None
    path = write_run(tmp_path / "odd.json", data)
    rc, _, err = run_cli(capsys, str(path), "--out", str(tmp_path / "r"))
    assert rc == 0, err


def test_storage_id_input(capsys, tmp_path, monkeypatch):
    from resnet_lab.results.runs import machine_id

    write_run(tmp_path / ".benchmarks" / machine_id() / "0001_abc_20261127.json", make_run(groups=("C2",)))
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(capsys, "0001", "--out", "r")
    assert rc == 0, err
    assert "0001_abc_20261127.json" in (tmp_path / "r" / "answers.md").read_text()


def test_same_file_twice_gets_distinct_labels(capsys, tmp_path, cpu_run):
    run_cli(capsys, str(cpu_run), str(cpu_run), "--out", str(tmp_path / "r"))
    text = (tmp_path / "r" / "answers.md").read_text()
    assert "`cpu.json`" in text and "`cpu.json#2`" in text


# ---------------------------------------------------------------------------
# failures: one line, exit 2, nothing written
# ---------------------------------------------------------------------------


def assert_one_line_error(rc: int, out: str, err: str, message: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resnet-lab: error:") and message in lines[0], err
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ('{"machine_info": {}, "benchm', "is not valid JSON"),
        ("", "is not valid JSON"),
        ('"just a string"', "the top level is a JSON str"),
        ('{"hello": "world"}', "no 'benchmarks' list"),
        ('{"config": {}, "summary": {}, "epochs": [], "machine": {}}', "resnet-lab train --json"),
    ],
)
def test_bad_inputs_exit_2(capsys, tmp_path, cpu_run, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "r"
    rc, stdout, err = run_cli(capsys, str(cpu_run), str(path), "--out", str(out))
    assert_one_line_error(rc, stdout, err, message)
    assert not (out / "answers.md").exists()


def test_unwritable_out_exits_2(capsys, tmp_path, cpu_run):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rc, out, err = run_cli(capsys, str(cpu_run), "--out", str(blocker / "report"))
    assert_one_line_error(rc, out, err, "is not a writable folder")
    rc, out, err = run_cli(capsys, str(cpu_run), "--out", str(blocker))
    assert_one_line_error(rc, out, err, "exists and is not a folder")


def test_out_is_required(capsys, cpu_run):
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(cpu_run)])
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_every_group_of_the_builder_is_reported(capsys, tmp_path, cpu_run):
    """Guards the fixture: the report knows every group the suite writes (no 'Other benchmarks' section)."""
    run_cli(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    text = (tmp_path / "r" / "answers.md").read_text()
    assert "## Other benchmarks" not in text
    # The run holds a benchmark of every group the suite writes: the check above covers them all.
    assert {b["group"] for b in json.loads(cpu_run.read_text())["benchmarks"]} == set(GROUPS)
    assert set(ALL_GROUPS) | set(D_GROUPS) == set(GROUPS)


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
    run_cli(capsys, str(path), "--out", str(tmp_path / "r"))
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
    run_cli(capsys, str(base), str(waits), "--out", str(tmp_path / "r"))
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
    run_cli(capsys, str(path), "--out", str(tmp_path / "r"))
    assert "CPU time beside wall time" not in section((tmp_path / "r" / "answers.md").read_text(), "## C1/C2")


def test_c8_sets_each_speedup_beside_its_equivalence_verdict(capsys, tmp_path):
    run = make_run(groups=("C8",))
    by_variant = {b["params"]["variant"]: b for b in run["benchmarks"]}
    worst = {"tensor": "grad/bn1.weight", "ratio": 0.21}
    by_variant["eager"]["extra_info"]["equivalence"] = {"verdict": "pass", "worst": worst}
    by_variant["compile-default"]["extra_info"]["equivalence"] = {
        "verdict": "fail",
        "worst": {"tensor": "loss/epoch", "ratio": 500.0},
    }
    run["lab"]["equivalence_failures"] = {
        "test_c8_variant[variant=bf16-device=cpu]": {
            "variant": "bf16",
            "verdict": "fail",
            "worst": {"tensor": "param/fc.weight", "ratio": 3.0},
        }
    }
    rc, _, err = run_cli(capsys, str(write_run(tmp_path / "checked.json", run)), "--out", str(tmp_path / "r"))
    assert rc == 0, err
    c8 = section((tmp_path / "r" / "answers.md").read_text(), "## C8")
    assert (
        "| eager | cpu | 5.200 | 5.000 | 2.500 | 1.00× |" in c8
        and "| pass (worst grad/bn1.weight at 0.21× its bound) |" in c8
    )
    assert (
        "| compile-default | cpu | 60.000 | 3.900 | 1.950 | not counted |" in c8
    )  # a failed variant's speed is no speedup
    assert (
        "| bf16 | not timed |" in c8
        and "fail (worst param/fc.weight at 3× its bound)" in c8
        and "Failed, so not timed: bf16." in c8
    )
    assert (tmp_path / "r" / "c8-variants-1.png").stat().st_size > 0


def test_c8_of_a_run_older_than_the_check_says_not_checked(capsys, tmp_path):
    rc, _, err = run_cli(
        capsys, str(write_run(tmp_path / "old.json", make_run(groups=("C8",)))), "--out", str(tmp_path / "r")
    )
    assert rc == 0, err
    c8 = section((tmp_path / "r" / "answers.md").read_text(), "## C8")
    assert "| 1.00× |" in c8 and "| not checked |" in c8 and "predates the equivalence check" in c8
