"""Where a benchmark session writes: folders made up front, unwritable places refused before any
benchmark runs (exit 4), a per-benchmark run log that survives a failed save, the closing summary."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from resnet_lab.errors import LabError
from resnet_lab.results.loading import load_run
from resnet_lab.spec.outputs import RunLog, ensure_writable_dir, ensure_writable_file, log_path_for, option_path

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]

# A benchmark of the suite's shape that costs milliseconds: it leaves a marker, so a test can tell whether it ran.
TINY = textwrap.dedent(
    """
    from pathlib import Path


    def test_tiny(benchmark):
        Path("ran.marker").write_text("yes")
        benchmark.group = "C2"
        benchmark.pedantic(sum, args=(range(1000),), rounds=2, iterations=1)
        benchmark.extra_info.update(
            epochs=[{"epoch": 1, "epoch_s": 0.01, "loss": 2.0, "top1": 0.1}], loss=2.0, top1=0.1
        )
    """
)

ENOSPC = textwrap.dedent(
    """
    import errno

    from pytest_benchmark.session import BenchmarkSession


    def save_json(self, output_json):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.json))


    BenchmarkSession.save_json = save_json
    """
)

STORAGE_ENOSPC = textwrap.dedent(
    """
    import errno

    from pytest_benchmark.storage.file import FileStorage


    def save(self, output_json, save):
        raise OSError(errno.ENOSPC, "No space left on device")


    FileStorage.save = save
    """
)


@pytest.fixture()
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A copy of the suite's two conftest files around one tiny benchmark."""
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    (pytester.path / "benchmarks").mkdir()
    (pytester.path / "benchmarks" / "conftest.py").write_text((ROOT / "benchmarks" / "conftest.py").read_text())
    (pytester.path / "benchmarks" / "test_tiny.py").write_text(TINY)
    return pytester


def run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "benchmarks", *args)


def test_missing_folders_are_created_and_the_json_written(suite):
    result = run(suite, "--benchmark-json", "out/deep/smoke.json", "--lab-out", "traces/q3b")
    assert result.ret == 0, result.stdout.str()
    data = json.loads((suite.path / "out" / "deep" / "smoke.json").read_text())
    assert [b["name"] for b in data["benchmarks"]] == ["test_tiny"]
    assert (suite.path / "traces" / "q3b").is_dir()
    assert not (suite.path / "out" / "deep" / "smoke.jsonl").exists()  # the JSON holds everything: the log is gone
    out = result.stdout.str()
    assert "the lab's short answers" in out
    assert "resnet-lab report out/deep/smoke.json --out out/deep/report" in out


@pytest.mark.parametrize("option", ["--benchmark-json", "--lab-out"])
def test_unwritable_destination_fails_at_start_up(suite, option):
    (suite.path / "blocker").write_text("a regular file where a folder should be")
    target = "blocker/sub/smoke.json" if option == "--benchmark-json" else "blocker/traces"
    result = run(suite, option, target)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"{option}: cannot create folder" in err and "a file is in the way" in err, err
    assert "Traceback" not in err + result.stdout.str()
    assert not (suite.path / "ran.marker").exists()  # refused before any benchmark ran


def test_json_path_that_is_a_folder_fails_at_start_up(suite):
    (suite.path / "out.json").mkdir()
    result = run(suite, "--benchmark-json", "out.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "'out.json' is a folder" in result.stderr.str()
    assert not (suite.path / "ran.marker").exists()


def test_unwritable_storage_fails_at_start_up(suite):
    (suite.path / "blocker").write_text("x")
    result = run(suite, "--benchmark-autosave", "--benchmark-storage", "file://./blocker/store")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--benchmark-storage: cannot create folder" in result.stderr.str()


def test_a_failed_save_keeps_the_finished_benchmarks_in_the_run_log(suite):
    suite.makepyfile(enospc_plugin=ENOSPC)
    result = run(suite, "-p", "enospc_plugin", "--benchmark-json", "out/smoke.json")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    line = [text for text in out.splitlines() if text.startswith("resnet-lab: error:")]
    assert len(line) == 1 and "No space left on device" in line[0] and "out/smoke.jsonl" in line[0], out
    assert "Traceback" not in out + result.stderr.str()
    run_log = load_run(suite.path / "out" / "smoke.jsonl")  # report and compare read it like the JSON
    assert [b.name for b in run_log.benchmarks] == ["test_tiny"]
    assert run_log.benchmarks[0].round_times() and run_log.lab["preset"] == "smoke"


def test_a_run_saved_only_to_storage_names_its_file_and_keeps_no_log(suite):
    result = run(suite, "--benchmark-autosave", "--benchmark-storage", "file://./store", "--lab-out", "lab")
    out = result.stdout.str()
    assert result.ret == 0, out
    [saved] = (suite.path / "store").glob("*/0001_*.json")
    saved = saved.relative_to(suite.path)
    assert f"JSON: {saved}; the answer sheet: resnet-lab report {saved} --out {saved.parent / 'report'}" in out
    assert "No JSON was saved" not in out
    assert not (suite.path / "lab" / "run.jsonl").exists()  # the saved file holds everything


def test_a_failed_storage_save_keeps_the_finished_benchmarks_in_the_run_log(suite):
    suite.makepyfile(enospc_plugin=STORAGE_ENOSPC)
    result = run(
        suite,
        "-p",
        "enospc_plugin",
        "--benchmark-autosave",
        "--benchmark-storage",
        "file://./store",
        "--lab-out",
        "lab",
    )
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    line = [text for text in out.splitlines() if text.startswith("resnet-lab: error:")]
    assert len(line) == 1 and "No space left on device" in line[0] and "lab/run.jsonl" in line[0], out
    assert [b.name for b in load_run(suite.path / "lab" / "run.jsonl").benchmarks] == ["test_tiny"]


def test_without_json_or_storage_the_summary_says_how_to_keep_the_run(suite):
    result = run(suite)
    out = result.stdout.str()
    assert result.ret == 0, out
    assert "No JSON was saved: add --benchmark-json PATH" in out
    assert not (suite.path / "lab-output" / "run.jsonl").exists()


def test_run_log_round_trip_and_a_torn_last_line(tmp_path):
    log = RunLog(tmp_path / "run.jsonl")
    log.start({"machine_info": {"cpu_count": 2}, "commit_info": {"id": "abc"}, "datetime": "now", "version": "5"})
    bench = {
        "group": "C2",
        "name": "test_a",
        "fullname": "b/test_a",
        "params": None,
        "stats": {"data": [1.0, 2.0], "median": 1.5},
        "extra_info": {"loss": float("nan")},
    }
    log.benchmark(bench)
    log.lab({"preset": "full"})
    log.benchmark({**bench, "name": "test_b"})
    with open(log.path, "a", encoding="utf-8") as handle:
        handle.write('{"kind": "benchmark", "bench')  # killed mid-write
    run = load_run(log.path)
    assert [b.name for b in run.benchmarks] == ["test_a", "test_b"]
    assert run.lab == {"preset": "full"} and run.machine_info == {"cpu_count": 2}
    assert run.benchmarks[0].extra_info["loss"] is None  # NaN is stored as null: every line is strict JSON
    log.start({"machine_info": {}})  # a new session starts a fresh log
    assert len(log.path.read_text().splitlines()) == 1


def test_damaged_run_log_line_is_an_error(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text('{"kind": "header", "machine_info": {}}\nnot json\n{"kind": "lab", "lab": {}}\n')
    with pytest.raises(LabError, match="line 2 is not valid JSON"):
        load_run(path)


def test_log_path_sits_beside_the_json():
    assert log_path_for("out/smoke.json") == Path("out/smoke.jsonl")
    assert log_path_for("out/results") == Path("out/results.jsonl")


def test_writable_checks(tmp_path):
    assert ensure_writable_dir(tmp_path / "a" / "b", "--x").is_dir()
    existing = tmp_path / "old.json"
    existing.write_text("keep")
    ensure_writable_file(existing, "--x")
    assert existing.read_text() == "keep"  # proving write access changes nothing
    (tmp_path / "file").write_text("")
    with pytest.raises(LabError, match=r"--x: cannot create folder .* a file is in the way"):
        ensure_writable_file(tmp_path / "file" / "run.json", "--x")


def test_benchmark_json_option_from_either_pytest_benchmark(tmp_path):
    target = tmp_path / "out" / "run.json"
    assert option_path(target) == target  # pytest-benchmark 5.3: a Path
    target.parent.mkdir()
    with open(target, "wb") as opened:  # 5.2: argparse.FileType has already opened it
        assert option_path(opened) == target
    assert option_path(None) is None
