"""One end-to-end case per class of misuse (docs/failure-modes.md): one line, the documented exit status,
nothing the user had lost, nothing half-written left. Each case failed on the code before issue 20."""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import in_process
from datafixtures import write_image_folder, write_tar
from fixtures.labruns import make_run, write_run
from test_outputs import run as run_suite
from test_outputs import suite  # noqa: F401 - the fixture: a copy of the suite's conftest files

from resnet_lab.data import DataConfig
from resnet_lab.data.sources import load_splits
from resnet_lab.distributed.launch import launcher_ranks
from resnet_lab.errors import LabError
from resnet_lab.fileio import atomic_open, staged_folder, write_json
from resnet_lab.suite import ab_runs

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]


def one_error_line(rc: int, err: str, message: str, status: int = 2) -> None:
    assert rc == status, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err


# ----------------------------------------------------------------------------- outputs never harm inputs


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(capsys, tmp_path, private_cache):
    data = tmp_path / "X.tar.gz"
    data.write_bytes(b"not really an archive, but the user's file")
    rc, _, err = in_process(capsys, "train", "--data", str(data), "--json", str(data))
    one_error_line(rc, err, f"--json {data} is --data {data}")
    assert data.read_bytes() == b"not really an archive, but the user's file"
    folder = tmp_path / "images"
    folder.mkdir()
    rc, _, err = in_process(capsys, "train", "--data", str(folder), "--json", str(folder / "out" / "run.json"))
    one_error_line(rc, err, "lies inside --data")
    link = tmp_path / "link.tar.gz"
    link.symlink_to(data)
    rc, _, err = in_process(capsys, "train", "--data", str(link), "--json", str(data))  # the same file by another name
    one_error_line(rc, err, "is --data")


def test_report_out_inside_the_storage_it_reads_is_refused(capsys, tmp_path):
    storage = tmp_path / "storage"
    (storage / "Linux").mkdir(parents=True)
    write_run(storage / "Linux" / "0001_x.json", make_run())
    rc, _, err = in_process(capsys, "report", "0001", "--storage", str(storage), "--out", str(storage / "sheet"))
    one_error_line(rc, err, "lies inside --storage")
    assert not (storage / "sheet").exists()


def test_a_symlink_is_written_through_and_modes_follow_the_umask(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("{}")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json(link, {"a": 1})
    assert link.is_symlink() and json.loads(target.read_text()) == {"a": 1}
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its mode
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "new.json", {})
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644  # what open() would give, not 0600
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "new.json", "real.json"]


def test_a_fifo_is_written_in_place_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(
        [sys.executable, "-c", f"print(open({str(fifo)!r}).read(), end='')"], stdout=subprocess.PIPE, text=True
    )
    with atomic_open(fifo) as handle:
        handle.write("through the pipe")
    assert reader.communicate(timeout=60)[0] == "through the pipe"
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_folder_of_outputs_appears_complete_or_not_at_all(tmp_path):
    out = tmp_path / "sheet"
    with pytest.raises(RuntimeError), staged_folder(out) as stage:
        (stage / "c2.png").write_bytes(b"png")
        raise RuntimeError("the sheet failed halfway")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    with staged_folder(out) as stage:
        (stage / "answers.md").write_text("# sheet")
    assert sorted(p.name for p in out.iterdir()) == ["answers.md", "mine.txt"] and len(list(tmp_path.iterdir())) == 1


def test_a_stale_staging_folder_of_a_killed_run_is_removed_by_the_next(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f".sheet.{dead}.abc.tmp"
    stale.mkdir()
    with staged_folder(tmp_path / "sheet") as stage:
        (stage / "answers.md").write_text("x")
    assert not stale.exists() and (tmp_path / "sheet" / "answers.md").exists()
    stale_write = tmp_path / f".run.json.{dead}.xyz.tmp"  # atomic_open's temporary, SIGKILLed mid-write
    stale_write.write_text("half")
    mine = tmp_path / f".run.json.{dead}.bak"  # the user's: not a temporary's name, never removed
    mine.write_text("keep")
    write_json(tmp_path / "run.json", {})
    assert not stale_write.exists() and mine.read_text() == "keep"


# ----------------------------------------------------------------------------- loops in the file system


def test_symlink_loops_in_an_image_folder_are_walked_once(tmp_path, private_cache):
    write_image_folder(tmp_path / "tiny", train_per_class=2, test_per_class=1)
    (tmp_path / "tiny" / "train" / "airplane" / "again").symlink_to(".")
    (tmp_path / "tiny" / "train" / "airplane" / "up").symlink_to("..")  # two loops: os.walk alone never ends
    splits = load_splits(DataConfig(source=str(tmp_path / "tiny")))
    assert len(splits.train_labels) == 20 and len(splits.test_labels) == 10


# ----------------------------------------------------------------------------- numbers out of range


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["estimate", "run.json", "--epochs", "-3"], "argument --epochs: must be a positive integer"),
        (["estimate", "run.json", "--epochs", "0"], "argument --epochs: must be a positive integer"),
        (["scaling", "--step-s", "inf"], "argument --step-s: must be a finite number"),
        (["scaling", "--batch-per-rank", "9" * 400], "argument --batch-per-rank"),
        (["train", "--seed", "99999999999999999999"], "argument --seed: must be a seed from 0 to 4294967295"),
        (["train", "--json", ""], "argument --json: a path must not be empty"),
        (["ab", "--device", "bogus"], "argument --device: unknown device 'bogus': use 'cpu' or 'cuda'"),
    ],
)
def test_values_out_of_range_are_one_usage_error(capsys, argv, message):
    rc, out, err = in_process(capsys, *argv)
    one_error_line(rc, err, message)
    assert out == ""


# ----------------------------------------------------------------------------- malformed saved runs


def test_a_run_with_list_params_is_one_line_naming_the_field_and_report_writes_nothing(capsys, tmp_path):
    data = make_run()
    data["benchmarks"][0]["params"] = {"device": ["cpu", "cuda"]}
    path = write_run(tmp_path / "odd.json", data)
    rc, _, err = in_process(capsys, "report", str(path), "--out", str(tmp_path / "sheet"))
    one_error_line(rc, err, "benchmarks[0].params.device is a JSON list")
    assert str(path) in err and not (tmp_path / "sheet").exists()


def test_json_nested_100000_deep_is_one_line(capsys, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    rc, _, err = in_process(capsys, "compare", str(path), str(path))
    one_error_line(rc, err, "nested deeper than")
    deep = make_run()
    deep["benchmarks"][0]["extra_info"]["x"] = json.loads("[" * 200 + "]" * 200)
    path = write_run(tmp_path / "deep2.json", deep)
    rc, _, err = in_process(capsys, "report", str(path), "--out", str(tmp_path / "sheet"))
    one_error_line(rc, err, "benchmarks[0].extra_info.x")
    assert not (tmp_path / "sheet").exists()


def test_report_failing_halfway_leaves_no_partial_out(capsys, tmp_path, monkeypatch):
    from resnet_lab.cli import report

    def half(runs, out):
        (out / "c2.png").write_bytes(b"png")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "answer_sheet", half)
    path = write_run(tmp_path / "run.json", make_run())
    rc, _, err = in_process(capsys, "report", str(path), "--out", str(tmp_path / "sheet"))
    one_error_line(rc, err, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


# ----------------------------------------------------------------------------- nothing to check is a usage error


def test_compare_with_every_figure_nan_exits_2(capsys, tmp_path):
    data = make_run()
    for bench in data["benchmarks"]:
        bench["stats"] = {k: float("nan") if isinstance(v, (int, float)) else v for k, v in bench["stats"].items()}
        bench["stats"]["data"] = [float("nan")] * len(bench["stats"].get("data") or [1])
        bench["extra_info"] = {}
    path = write_run(tmp_path / "nan.json", data)
    rc, out, err = in_process(capsys, "compare", str(path), str(path))
    one_error_line(rc, err, "nothing to compare")
    assert "result: ok" not in out


def test_ab_skips_only_for_a_base_whose_collected_ids_lack_the_gated_ones(monkeypatch, tmp_path):
    config = ab_runs.AbConfig(out=tmp_path / "ab")
    text = "pytest --collect-only exited 4: the base has none of the gated benchmarks"  # the old text check's bait
    monkeypatch.setattr(ab_runs, "collected_ids", lambda config, root, out: (set(), text))
    with pytest.raises(LabError) as failed:
        ab_runs.sides_ids(config, tmp_path, tmp_path, "HEAD~1")
    assert not isinstance(failed.value, ab_runs.BaseLacksGated)
    monkeypatch.setattr(ab_runs, "collected_ids", lambda config, root, out: ({"benchmarks/test_other.py::t"}, ""))
    with pytest.raises(ab_runs.BaseLacksGated):
        ab_runs.sides_ids(config, tmp_path, tmp_path, "HEAD~1")


def test_ab_out_onto_a_file_is_one_line_and_leaves_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    blocker = tmp_path / "file"
    blocker.write_text("the user's")
    rc, _, err = in_process(capsys, "ab", "--base", "HEAD", "--out", str(blocker))
    one_error_line(rc, err, "exists and is not a folder")
    assert blocker.read_text() == "the user's"


# ----------------------------------------------------------------------------- stray launcher environment


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "MASTER_ADDR and MASTER_PORT not set"),
        ({"RANK": "0", "WORLD_SIZE": "two", "LOCAL_RANK": "0"}, "WORLD_SIZE='two' is not"),
        ({"RANK": "1"}, "partial launcher environment"),
    ],
)
def test_stray_launcher_variables_are_one_line(capsys, monkeypatch, env, message):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rc, _, err = in_process(capsys, "train", "--epochs", "1", "--max-batches", "1")
    one_error_line(rc, err, message)


def test_a_single_rank_launcher_environment_is_a_plain_run():
    assert launcher_ranks({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) == (0, 1, 0)
    assert launcher_ranks({}) is None


# ----------------------------------------------------------------------------- pytest options


def pytest_in(
    cwd: Path, *args: str, env: dict[str, str] | None = None, collect: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ROOT / "pytest.ini"),
            "--rootdir",
            str(ROOT),
            str(ROOT / "benchmarks"),
            *(["--collect-only"] if collect else []),
            "-q",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow  # a pytest session in a child: about 10-40 s each on 2 cores
def test_lab_option_usage_errors_exit_4_before_creating_anything(tmp_path):
    write_image_folder(tmp_path / "tiny", train_per_class=2, test_per_class=1)
    archive = write_tar(tmp_path / "tiny", tmp_path / "tiny.tar.gz")
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    work = tmp_path / "work"
    work.mkdir()
    for args, message in (
        (["--lab-data=/dev/null"], "neither a folder nor"),
        ([f"--lab-data={truncated}"], "truncated or corrupted"),
        (["--lab-device", "cpu,cuda:x"], "unknown device 'cuda:x'"),
        ([f"--lab-data={tmp_path / 'tiny'}", f"--lab-out={tmp_path / 'tiny' / 'out'}"], "lies inside --lab-data"),
    ):
        result = pytest_in(work, *args)
        assert result.returncode == 4, (args, result.stdout, result.stderr)
        assert message in result.stderr and "INTERNALERROR" not in result.stderr + result.stdout, (args, result.stderr)
        assert list(work.iterdir()) == [], args  # no ./lab-output/
    assert not (tmp_path / "tiny" / "out").exists()


@pytest.mark.slow  # a pytest session in a child: about 10-40 s each on 2 cores
def test_lab_data_expands_the_home_folder_like_train_data(tmp_path):
    write_image_folder(tmp_path / "home" / "cifar", train_per_class=2, test_per_class=1)
    result = pytest_in(
        tmp_path, "--lab-data=~/cifar", "--lab-device", "cpu", "-k", "c2", env={"HOME": str(tmp_path / "home")}
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------------------------- legal inputs stay legal


def test_a_run_log_holding_only_its_header_is_read(capsys, tmp_path):
    data = make_run()
    header = {"kind": "header", **{k: data[k] for k in ("machine_info", "commit_info", "datetime", "version")}}
    log = tmp_path / "run.jsonl"
    log.write_text(json.dumps(header) + "\n")
    rc, out, err = in_process(capsys, "estimate", str(log))
    assert rc == 0 and "Traceback" not in err, err
    assert "not informed by the inputs" in out and "predicted full preset: 0 s" in out, out
    rc, out, err = in_process(capsys, "report", str(log), "--out", str(tmp_path / "sheet"))
    assert rc == 0 and (tmp_path / "sheet" / "answers.md").exists(), err


@pytest.mark.slow  # a pytest session in a child: about 15 s on 2 cores
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_an_absent_lab_device_is_skipped_with_its_reason_and_exits_0(tmp_path):
    result = pytest_in(tmp_path, "--lab-device", "cuda", "-k", "c2_phases", "-rs", collect=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SKIPPED" in result.stdout and "CUDA is not available here" in result.stdout


def test_the_same_run_twice_compares_clean(capsys, tmp_path):
    path = write_run(tmp_path / "run.json", make_run())
    rc, out, _ = in_process(capsys, "compare", str(path), str(copy.copy(path)))
    assert rc == 0 and "result: ok" in out


# ----------------------------------------------------------------------------- a run cut short

CUT_SHORT = """
import os
import signal
import time


def test_tiny(benchmark):
    benchmark.group = "C2"
    records = []
    benchmark.extra_info["epochs"] = records  # as suite/benchmarking.py does: filled epoch by epoch

    def epoch():
        if len(records) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # a time box's `timeout`, a CI cancel, during the third epoch
            time.sleep(30)
        records.append({"epoch": len(records) + 1, "epoch_s": 0.01, "loss": 2.0, "top1": 0.1})

    benchmark.pedantic(epoch, rounds=5, iterations=1)
"""


@pytest.mark.slow  # a pytest session in a child: about 10-40 s each on 2 cores
def test_a_benchmark_cut_short_by_sigterm_keeps_its_finished_epochs(suite, tmp_path, capsys):  # noqa: F811 (the fixture, imported above)
    (suite.path / "benchmarks" / "test_tiny.py").write_text(CUT_SHORT)
    result = run_suite(suite, "--benchmark-json", "out.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str() + result.stderr.str()
    saved = json.loads((suite.path / "out.json").read_text())
    (bench,) = saved["benchmarks"]
    assert bench["stats"]["rounds"] == 2 and [e["epoch"] for e in bench["extra_info"]["epochs"]] == [1, 2]
    assert bench["extra_info"]["cut_short"] is True
    rc, _, err = in_process(capsys, "report", str(suite.path / "out.json"), "--out", str(tmp_path / "sheet"))
    assert rc == 0, err


def test_ab_from_the_default_out_folder_is_still_legal(capsys, tmp_path, monkeypatch):
    from test_ab import scenario

    scenario(tmp_path / "out")  # out/ab: where `ab` saves by default, and what --from then reads
    monkeypatch.chdir(tmp_path)
    rc, out, err = in_process(capsys, "ab", "--from", "out/ab")
    assert rc == 0 and "result: ok" in out, out + err
    rc, _, err = in_process(capsys, "ab", "--from", "out/ab", "--out", "out/ab/again")
    one_error_line(rc, err, "lies inside --from out/ab")
