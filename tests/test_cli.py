"""`resnet-lab train` end to end: what a run prints and writes, help, and every usage error as one line, exit 2.

Real processes (`python -m resnet_lab`, the `resnet-lab` script) for the run, help and a sample of
errors; the rest of the errors in-process through `resnet_lab.cli.main`, which is what both call.
"""

from __future__ import annotations

import errno
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from clihelpers import in_process

from resnet_lab import fileio

EPOCH_KEYS = {
    "epoch",
    "batches",
    "images",
    "startup_s",
    "load_s",
    "copy_s",
    "train_s",
    "metrics_s",
    "shutdown_s",
    "epoch_s",
    "images_per_s",
    "loss",
    "top1",
    "per_class_top1",
    "warmup",
    "phases_synced",
}
SUMMARY_KEYS = {
    "startup_s",
    "load_s",
    "copy_s",
    "train_s",
    "metrics_s",
    "shutdown_s",
    "epoch_s",
    "steady_epoch_s",
    "first_epoch_s",
    "images_per_s",
    "loss",
    "top1",
    "epochs",
}
TINY = ["--epochs", "1", "--max-batches", "1", "--batch-size", "4", "--eval-batches", "1", "--num-workers", "0"]
NUMBER = r"(-?\d+\.\d+)"


pytestmark = pytest.mark.usefixtures("private_cache")


def lab(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "resnet_lab", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not finish in {timeout}s:\n{out}\n{err}")
    return proc.returncode, out, err


def assert_usage_error(rc: int, out: str, err: str, message: str) -> None:
    """Exit 2, nothing on stdout, exactly one error line on stderr (argparse adds its usage lines), no traceback."""
    assert rc == 2, err
    assert "Traceback" not in err
    assert out == ""
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
    if errors[0].startswith("resnet-lab: error:"):  # our own errors: that one line is all there is
        assert err.strip() == errors[0], err


# ----------------------------------------------------------------------------- a real run


def test_tiny_synthetic_run_prints_epochs_and_averages_and_writes_json(tmp_path: Path) -> None:
    out_json = tmp_path / "results" / "run.json"  # a missing folder is created
    rc, out, err = finish(
        lab(
            "train",
            "--epochs",
            "2",
            "--max-batches",
            "1",
            "--batch-size",
            "8",
            "--eval-batches",
            "1",
            "--num-workers",
            "2",
            "--json",
            str(out_json),
            cwd=tmp_path,
        )
    )
    assert rc == 0, err
    assert "Traceback" not in err
    lines = out.splitlines()
    assert lines[0].startswith(
        "resnet-lab train: synthetic data (50000 train / 10000 test), device cpu, optimizer sgd, workers 2"
    )
    epoch_re = re.compile(
        rf"epoch (\d)/2  startup {NUMBER}s  load {NUMBER}s  copy {NUMBER}s  "
        rf"train {NUMBER}s  metrics {NUMBER}s  shutdown {NUMBER}s  epoch "
        rf"{NUMBER}s  "
        rf"loss {NUMBER}  top1 {NUMBER}%  \((\d+) img/s\)"
    )
    epoch_lines = [m for m in map(epoch_re.fullmatch, lines) if m]
    assert [m.group(1) for m in epoch_lines] == ["1", "2"], out
    mean_line = next(line for line in lines if line.startswith("mean over 2 epochs:"))
    assert re.fullmatch(
        rf"mean over 2 epochs: startup {NUMBER}s  load {NUMBER}s  copy {NUMBER}s "
        rf" train {NUMBER}s  metrics {NUMBER}s  shutdown {NUMBER}s  epoch "
        rf"{NUMBER}s  "
        rf"\| last epoch loss {NUMBER}  top1 {NUMBER}%",
        mean_line,
    ), mean_line
    assert re.fullmatch(rf"test: loss {NUMBER}  top1 {NUMBER}% on 100 images", lines[-2]), out
    assert lines[-1] == f"wrote {out_json}"

    record = json.loads(out_json.read_text())
    assert set(record) == {"config", "data", "machine", "epochs", "summary", "test"}
    config = record["config"]
    assert (
        config["epochs"] == 2
        and config["max_batches"] == 1
        and config["optimizer"] == "sgd"
        and config["device"] == "cpu"
    )
    assert config["loader"]["batch_size"] == 8 and config["loader"]["num_workers"] == 2
    assert record["data"] == {"source": "synthetic", "kind": "synthetic", "train_images": 50000, "test_images": 10000}
    epochs = record["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for e, match in zip(epochs, epoch_lines, strict=True):
        assert set(e) >= EPOCH_KEYS
        assert e["batches"] == 1 and e["images"] == 8 and e["phases_synced"] is True
        for key in (
            "startup_s",
            "load_s",
            "copy_s",
            "train_s",
            "metrics_s",
            "shutdown_s",
            "epoch_s",
            "images_per_s",
            "loss",
        ):
            assert isinstance(e[key], float) and math.isfinite(e[key]) and e[key] >= 0, key
        assert (
            0
            < e["startup_s"] + e["load_s"] + e["copy_s"] + e["train_s"] + e["metrics_s"] + e["shutdown_s"]
            <= e["epoch_s"]
        )
        assert e["images_per_s"] == pytest.approx(8 / e["epoch_s"])
        assert 0 <= e["top1"] <= 1 and len(e["per_class_top1"]) == 10
        # What was printed is what was saved.
        printed = dict(
            zip(
                ("startup_s", "load_s", "copy_s", "train_s", "metrics_s", "shutdown_s", "epoch_s"),
                map(float, match.groups()[1:8]),
                strict=True,
            )
        )
        for key, value in printed.items():
            assert value == pytest.approx(e[key], abs=5e-4), key
        assert float(match.group(9)) == pytest.approx(e["loss"], abs=5e-5)
        assert float(match.group(10)) == pytest.approx(100 * e["top1"], abs=5e-3)
    assert [e["warmup"] for e in epochs] == [True, False]
    summary = record["summary"]
    assert set(summary) >= SUMMARY_KEYS and summary["epochs"] == 2
    for key in ("startup_s", "load_s", "copy_s", "train_s", "metrics_s", "shutdown_s", "epoch_s"):
        assert summary[key] == pytest.approx((epochs[0][key] + epochs[1][key]) / 2)
    assert summary["loss"] == epochs[1]["loss"] and summary["top1"] == epochs[1]["top1"]
    test = record["test"]
    assert test["test_images"] == 100 and math.isfinite(test["test_loss"]) and 0 <= test["test_top1"] <= 1
    assert [p.name for p in out_json.parent.iterdir()] == ["run.json"], "no temporary file is left behind"


def test_quiet_run_on_a_tiny_image_folder(
    capsys: pytest.CaptureFixture[str], tiny_folder: Path, tmp_path: Path
) -> None:
    """--quiet prints only the averages; a test split smaller than the test batch (100) is evaluated whole."""
    out_json = tmp_path / "run.json"
    rc, out, err = in_process(
        capsys, "train", "--data", str(tiny_folder), *TINY, "--eval-batches", "5", "--quiet", "--json", str(out_json)
    )
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("mean over 1 epochs:") and lines[1].endswith("on 10 images"), out
    record = json.loads(out_json.read_text())
    assert record["data"]["kind"] == "imagefolder" and record["data"]["train_images"] == 20
    assert record["test"]["test_images"] == 10 and record["config"]["loader"]["test_batch_size"] == 10


def test_help(tmp_path: Path) -> None:
    script = shutil.which("resnet-lab", path=str(Path(sys.executable).parent)) or shutil.which("resnet-lab")
    top = lab("--help", cwd=tmp_path)
    train = (
        subprocess.Popen([script, "train", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if script
        else None
    )
    rc, out, err = finish(top)
    assert rc == 0 and err == ""
    assert "usage: resnet-lab" in out and "train" in out and "where does training time go" in out
    if train is None:
        pytest.skip("the resnet-lab console script is not installed")
    rc, out, err = finish(train)
    assert rc == 0 and err == ""
    for option in (
        "--device",
        "--num-workers",
        "--epochs",
        "--optimizer",
        "--batch-size",
        "--data",
        "--no-batch-norm",
        "--max-batches",
        "--eval-batches",
        "--seed",
        "--download",
        "--json",
        "--quiet",
    ):
        assert option in out
    assert "adadelta" in out and "atomically" in out


# ----------------------------------------------------------------------------- usage errors: exit 2, one line


def cuda_absent() -> bool:
    return not torch.cuda.is_available()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--optimizer", "adadelat"],
            "unknown optimizer 'adadelat': choose one of sgd, sgd-nesterov, "
            "adagrad, adadelta, adam; did you mean 'adadelta'?",
        ),
        (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
        (["--device", "tpu"], "argument --device: unknown device 'tpu': use 'cpu' or 'cuda'"),
        (["--device", "meta"], "argument --device: unknown device 'meta'"),
        pytest.param(
            ["--device", "cuda"],
            "device 'cuda' requested but CUDA is not available on this machine; use --device cpu",
            marks=pytest.mark.skipif(not cuda_absent(), reason="this machine has CUDA"),
        ),
        (["--num-workers", "-1"], "argument --num-workers: must be a worker count from 0 to 1024, got -1"),
        (["--batch-size", "0"], "argument --batch-size: must be a positive integer (>= 1), got 0"),
        (["--batch-size", "-8"], "argument --batch-size: must be a positive integer (>= 1), got -8"),
        (["--batch-size", "lots"], "argument --batch-size: 'lots' is not an integer"),
        (["--epochs", "0"], "argument --epochs: must be a positive integer (>= 1), got 0"),
        (["--max-batches", "0"], "argument --max-batches: must be a positive integer (>= 1), got 0"),
        (["--eval-batches", "-1"], "argument --eval-batches: must be an integer >= 0, got -1"),
        (["--download"], "download applies only to a torchvision CIFAR-10 root"),
    ],
)
def test_bad_setting(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert_usage_error(*in_process(capsys, "train", *argv), message)


def test_bad_data_paths(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert_usage_error(*in_process(capsys, "train", "--data", str(missing)), f"data path {missing} does not exist")
    (tmp_path / "empty").mkdir()
    assert_usage_error(*in_process(capsys, "train", "--data", str(tmp_path / "empty")), "empty")
    (tmp_path / "odd" / "pictures").mkdir(parents=True)
    (tmp_path / "odd" / "labels.csv").write_text("file,label\n")
    assert_usage_error(*in_process(capsys, "train", "--data", str(tmp_path / "odd")), "unrecognized layout")


def test_batch_larger_than_the_dataset(capsys: pytest.CaptureFixture[str], tiny_folder: Path) -> None:
    rc, out, err = in_process(capsys, "train", "--data", str(tiny_folder), "--batch-size", "64", "--num-workers", "0")
    assert_usage_error(rc, out, err, "--batch-size 64 is larger than the training set (20 images)")


def test_unwritable_json_fails_before_training(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("data was loaded before --json was checked")

    monkeypatch.setattr("resnet_lab.cli.train.load_datasets", no_data)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rc, out, err = in_process(capsys, "train", "--json", str(blocker / "out.json"))
    assert_usage_error(rc, out, err, f"cannot write --json {blocker / 'out.json'}: {blocker} is not a folder")
    rc, out, err = in_process(capsys, "train", "--json", str(blocker / "deeper" / "out.json"))
    assert_usage_error(rc, out, err, f"{blocker} is not a folder")
    rc, out, err = in_process(capsys, "train", "--json", str(tmp_path))
    assert_usage_error(rc, out, err, f"--json {tmp_path} is a folder")
    assert blocker.read_text() == "not a folder"


def test_json_write_failure_keeps_the_existing_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up half-way through writing the results: exit 2, and the earlier out.json is untouched."""
    out_json = tmp_path / "out.json"
    old = '{"earlier": "results"}\n'
    out_json.write_text(old)

    def half_then_full(data: object, handle, **kwargs: object) -> None:
        text = json.dumps(data, **kwargs)
        handle.write(text[: len(text) // 2])
        handle.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "json", SimpleNamespace(dump=half_then_full))  # fileio's own name only
    rc, out, err = in_process(capsys, "train", "--data", str(tiny_folder), *TINY, "--json", str(out_json))
    assert rc == 2 and "Traceback" not in err
    assert (
        err.strip() == f"resnet-lab: error: cannot write --json {out_json}: No space left on "
        "device; an existing file there was left unchanged"
    )
    assert "mean over 1 epochs" in out, "the results were still printed"
    assert out_json.read_text() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out.json", "tiny"], (
        "no temporary file is left behind"
    )


def test_errors_from_real_processes(tmp_path: Path) -> None:
    """A sample (argparse, data, --json) as a user sees them: exit 2, one line, no traceback; in-process tests cover the
    rest."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("x")
    cases = [
        (["--epochs", "0"], "argument --epochs: must be a positive integer (>= 1), got 0"),
        (["--optimizer", "adadelat", "--data", str(tmp_path / "empty")], "did you mean 'adadelta'?"),  # settings first
        (["--json", str(tmp_path / "a-file" / "out.json")], "is not a folder"),
    ]
    procs = [(lab("train", *argv, cwd=tmp_path), message) for argv, message in cases]
    for proc, message in procs:
        assert_usage_error(*finish(proc), message)
