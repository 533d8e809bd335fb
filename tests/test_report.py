"""`resnet-lab report`: the answer sheet, its figures, missing data, and exit-2 failures (the C2 and C8
sections in detail: test_report_c2.py, test_report_c8.py).
"""

from __future__ import annotations

import json
import re
import statistics

import pytest
from fixtures.druns import d_benchmarks
from fixtures.labruns import ALL_GROUPS, make_run, without_keys, write_run
from matplotlib.image import imread
from reporthelpers import run_report, section, sections

from resnet_lab import cli
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
    rc, stdout, err = run_report(capsys, str(cpu_run), "--out", str(out))
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
    run_report(capsys, str(cpu_run), "--out", str(out))
    text = (out / "answers.md").read_text()
    for heading, body in sections(text).items():
        if heading == "## Inputs":
            continue
        assert "_From `cpu.json` (AMD EPYC x2, no GPU" in body, heading
        assert "preset smoke, synthetic data, 2 epochs x 2 batches" in body, heading


def test_c3_answer_recorded_by_the_suite(capsys, tmp_path, cpu_run):
    run_report(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## C3")
    # loader-only times 0: 16.0, 4: 7.9, 8: 7.5, 12: 7.4, 16: 7.6 -> best 7.4 at 12; 7.9 <= 7.4 x 1.1 -> 4 workers
    assert "**C3.2: 4 workers**" in body
    assert "best 7.400 s at 12 workers" in body
    assert "recorded by the suite" in body
    assert "smallest num_workers whose load_s is within 10% of the best" in body


def test_c3_answer_computed_with_the_suites_rule_when_not_recorded(capsys, tmp_path):
    path = write_run(tmp_path / "old.json", make_run(seed=0, record_c32=False))
    run_report(capsys, str(path), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## C3")
    assert "**C3.2: 4 workers**" in body
    assert "computed by the report" in body


def test_c5_speedup_from_a_cpu_run_and_a_gpu_run(capsys, tmp_path, cpu_run, gpu_run):
    out = tmp_path / "r"
    rc, _, _ = run_report(capsys, str(cpu_run), str(gpu_run), "--out", str(out))
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
    run_report(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## C5")
    assert "Speedup: not measured" in body and "no GPU (cuda) C5 benchmark" in body


def test_c6_and_c7_tables(capsys, tmp_path, cpu_run):
    run_report(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    text = (tmp_path / "r" / "answers.md").read_text()
    c6 = section(text, "## C6")
    for optimizer in ("sgd", "sgd-nesterov", "adagrad", "adadelta", "adam"):
        assert f"\n| {optimizer} |" in c6
    assert "| sgd | " in c6 and "45.00 %" in c6 and "40.00 %" in c6  # final train top-1, test top-1
    c7 = section(text, "## C7")
    assert "| BN on |" in c7 and "| BN off |" in c7 and "25.00 %" in c7


def test_q_facts_against_the_lab(capsys, tmp_path, cpu_run):
    run_report(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    body = section((tmp_path / "r" / "answers.md").read_text(), "## Q1–Q4")
    assert "| Q1 | Conv2d on the main path (stem + 16 in blocks) | 17 | 17 | yes |" in body
    assert "| Q3 | parameters without BatchNorm | 11,164,362 | 11,164,362 | yes |" in body
    assert "| Q4 | Adam state elements | 22,347,924 | 22,347,924 | yes |" in body
    assert "**NO**" not in body
    assert "Convention:" in body


def test_q3b_and_c8(capsys, tmp_path, cpu_run):
    run_report(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
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


def test_absent_questions_are_not_run(capsys, tmp_path):
    path = write_run(tmp_path / "only-c2.json", make_run(groups=("C2",)))
    rc, _, err = run_report(capsys, str(path), "--out", str(tmp_path / "r"))
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
    rc, _, _ = run_report(capsys, str(path), "--out", str(tmp_path / "r"))
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
    rc, _, err = run_report(capsys, str(path), "--out", str(tmp_path / "r"))
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
    rc, _, err = run_report(capsys, str(path), "--out", str(tmp_path / "r"))
    assert rc == 0, err


def test_storage_id_input(capsys, tmp_path, monkeypatch):
    from resnet_lab.results.loading import machine_id

    write_run(tmp_path / ".benchmarks" / machine_id() / "0001_abc_20261127.json", make_run(groups=("C2",)))
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_report(capsys, "0001", "--out", "r")
    assert rc == 0, err
    assert "0001_abc_20261127.json" in (tmp_path / "r" / "answers.md").read_text()


def test_same_file_twice_gets_distinct_labels(capsys, tmp_path, cpu_run):
    run_report(capsys, str(cpu_run), str(cpu_run), "--out", str(tmp_path / "r"))
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
    rc, stdout, err = run_report(capsys, str(cpu_run), str(path), "--out", str(out))
    assert_one_line_error(rc, stdout, err, message)
    assert not (out / "answers.md").exists()


def test_unwritable_out_exits_2(capsys, tmp_path, cpu_run):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rc, out, err = run_report(capsys, str(cpu_run), "--out", str(blocker / "report"))
    assert_one_line_error(rc, out, err, "is not a writable folder")
    rc, out, err = run_report(capsys, str(cpu_run), "--out", str(blocker))
    assert_one_line_error(rc, out, err, "exists and is not a folder")


def test_out_is_required(capsys, cpu_run):
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(cpu_run)])
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_every_group_of_the_builder_is_reported(capsys, tmp_path, cpu_run):
    """Guards the fixture: the report knows every group the suite writes (no 'Other benchmarks' section)."""
    run_report(capsys, str(cpu_run), "--out", str(tmp_path / "r"))
    text = (tmp_path / "r" / "answers.md").read_text()
    assert "## Other benchmarks" not in text
    # The run holds a benchmark of every group the suite writes: the check above covers them all.
    assert {b["group"] for b in json.loads(cpu_run.read_text())["benchmarks"]} == set(GROUPS)
    assert set(ALL_GROUPS) | set(D_GROUPS) == set(GROUPS)
