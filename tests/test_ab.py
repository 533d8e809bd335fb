"""`resnet-lab ab`: reading paired runs, the decision on synthetic ones, the CLI's error paths in tiny git repos,
and one end-to-end gate over a fake suite (no torch in the child processes, so it takes seconds)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import textwrap
from pathlib import Path

from fixtures.labruns import bench, machine_info, training_bench

from resnet_lab import cli
from resnet_lab.results.ab import BASE, NEW, NO_GATED, figure, gated_benchmarks
from resnet_lab.results.loading import machine_id
from resnet_lab.results.runs import Bench
from resnet_lab.suite.ab_runs import AbConfig, next_pair_fits, run_order

C2_NAME = "test_c2_phases[device=cpu]"
LOADER_NAME = "test_loader_throughput[pipeline=dataloader-workers=0-device=cpu]"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = cli.main(["ab", *argv])
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_one_line_error(rc: int, out: str, err: str, message: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resnet-lab: error:") and message in lines[0], err


# ---------------------------------------------------------------------------
# synthetic paired runs in a pytest-benchmark storage, as `ab` saves them
# ---------------------------------------------------------------------------


def suite_run(
    train_s: float,
    loader_s: float,
    *,
    epochs: int = 3,
    torch_version: str = "2.14.1",
    nan_epoch: int | None = None,
    cpu: tuple[float, float] | None = None,
) -> dict:
    """`cpu`: (train_cpu_s, round_cpu_s) recorded beside the wall times, as CPU runs do since issue 23; None: an older
    run."""
    rng = random.Random(0)
    c2 = training_bench(
        rng,
        "C2",
        "test_c2_phases",
        {"device": "cpu"},
        epochs=epochs,
        jitter=0.0,
        phases={"load_s": 0.2, "copy_s": 0.001, "train_s": train_s, "metrics_s": 0.001},
    )
    if nan_epoch is not None:
        c2["extra_info"]["epochs"][nan_epoch]["train_s"] = float("nan")
    loader = bench(
        "loader",
        "test_loader_throughput",
        {"pipeline": "dataloader", "workers": 0, "device": "cpu"},
        [loader_s],
        {"images": 50000},
    )
    if cpu is not None:
        for record in c2["extra_info"]["epochs"]:
            record["train_cpu_s"] = cpu[0]
        loader["extra_info"]["round_cpu_s"] = cpu[1]
    return {
        "machine_info": {**machine_info(), "torch": torch_version},
        "commit_info": {},
        "benchmarks": [c2, loader],
        "datetime": "2026-11-28T00:00:00+00:00",
        "version": "5.3.1",
    }


def write_pairs(out: Path, base: list[dict], new: list[dict]) -> Path:
    storage = out / "storage" / machine_id()
    storage.mkdir(parents=True)
    number = 1
    for pair, (b, n) in enumerate(zip(base, new, strict=True)):
        for side, data in ((BASE, b), (NEW, n)):
            (storage / f"{number:04d}_ab-{side}-{pair:02d}.json").write_text(json.dumps(data))
            number += 1
    return out


def loads(pairs: int = 6, seed: int = 1) -> list[float]:
    """Load factors that differ 2x between pairs, shared by both runs of a pair."""
    rng = random.Random(seed)
    return [rng.uniform(1.0, 2.0) for _ in range(pairs)]


def scenario(tmp_path: Path, train_effect: float = 1.0, loader_effect: float = 1.0, **new_kwargs) -> Path:
    rng = random.Random(2)
    base, new = [], []
    for load in loads():
        base.append(suite_run(4.0 * load * rng.uniform(0.99, 1.01), 9.0 * load * rng.uniform(0.99, 1.01)))
        new.append(
            suite_run(
                4.0 * load * train_effect * rng.uniform(0.99, 1.01),
                9.0 * load * loader_effect * rng.uniform(0.99, 1.01),
                **new_kwargs,
            )
        )
    return write_pairs(tmp_path / "ab", base, new)


def test_the_gated_figures_name_both_sides_benchmarks():
    assert [(g.name, g.figure) for g in gated_benchmarks("cpu")] == [(C2_NAME, "train_s"), (LOADER_NAME, "round_s")]


def test_order_is_abba():
    assert run_order(3) == [(0, BASE), (0, NEW), (1, NEW), (1, BASE), (2, BASE), (2, NEW)]


def test_time_box_lets_a_pair_start_only_if_the_longest_pair_so_far_would_end_inside_it():
    config = AbConfig(time_box_s=600.0, boxed_pairs=6)
    assert next_pair_fits(config, done=5, elapsed_s=590.0, longest_pair_s=100.0)  # the box leaves at least 6 pairs
    assert next_pair_fits(config, done=6, elapsed_s=500.0, longest_pair_s=100.0)
    assert not next_pair_fits(config, done=6, elapsed_s=500.5, longest_pair_s=100.0)
    assert next_pair_fits(
        AbConfig(time_box_s=600.0, boxed_pairs=2), done=4, elapsed_s=590.0, longest_pair_s=100.0
    )  # the interval's 5
    assert next_pair_fits(AbConfig(time_box_s=None), done=50, elapsed_s=1e6, longest_pair_s=1e3)


def as_bench(record: dict) -> Bench:
    return Bench(
        record["group"],
        record["name"],
        record["fullname"],
        record["params"] or {},
        record["stats"],
        record["extra_info"],
    )


def test_figure_is_the_median_of_the_steady_epochs():
    c2 = as_bench(suite_run(4.0, 9.0, epochs=4)["benchmarks"][0])
    c2.extra_info["epochs"][0]["train_s"] = 100.0  # warm-up: not read
    for r, value in zip(c2.extra_info["epochs"][1:], (3.0, 5.0, 4.5), strict=True):
        r["train_s"] = value
    assert figure(c2, "train_s") == 4.5
    for r in c2.extra_info["epochs"]:
        del r["warmup"]  # an older run: the first epoch is still dropped
    assert figure(c2, "train_s") == 4.5
    loader = as_bench(suite_run(4.0, 9.0)["benchmarks"][1])
    assert figure(loader, "round_s") == 9.0


def test_figure_problems_are_named():
    c2 = as_bench(suite_run(4.0, 9.0, nan_epoch=2)["benchmarks"][0])
    assert figure(c2, "train_s") == "non-finite (nan)"
    assert figure(c2, "not_a_figure") == "not recorded"
    c2.extra_info["epochs"][2]["train_s"] = 0.0
    assert figure(c2, "train_s") == "not a positive number (0.0)"


def test_a_a_passes(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "--from", str(scenario(tmp_path)))
    assert rc == 0, out
    assert out.count("same (within noise or tolerance)") == 2
    assert "result: ok (2 figures gated)" in out and err == ""


def test_a_slower_training_step_fails_and_names_the_figure(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, "--from", str(scenario(tmp_path, train_effect=1.10)))
    assert rc == 1
    row = next(line for line in out.splitlines() if line.startswith("C2 "))
    assert "FAIL: slower by more than 5%" in row and "1.10" in row
    assert "result: FAIL (C2 test_c2_phases[device=cpu] train_s)" in out


def cpu_scenario(tmp_path: Path, train: tuple[float, float], loader: tuple[float, float]) -> Path:
    """Pairs whose new runs change the wall time and the CPU time beside it by the factors (wall, cpu) given per
    figure."""
    rng = random.Random(2)
    base, new = [], []
    for load in loads():
        noise = [rng.uniform(0.99, 1.01) for _ in range(2)]
        base.append(suite_run(4.0 * load * noise[0], 9.0 * load * noise[1], cpu=(7.5 * noise[0], 8.0 * noise[1])))
        new.append(
            suite_run(
                4.0 * load * noise[0] * train[0],
                9.0 * load * noise[1] * loader[0],
                cpu=(7.5 * noise[0] * train[1], 8.0 * noise[1] * loader[1]),
            )
        )
    return write_pairs(tmp_path / "ab", base, new)


def test_a_slowdown_that_waits_is_told_from_one_that_computes(capsys, tmp_path):
    """The training step computes 10% more (CPU time too), the loader waits 10% longer (CPU time unchanged)."""
    rc, out, _ = run_cli(capsys, "--from", str(cpu_scenario(tmp_path, train=(1.10, 1.10), loader=(1.10, 1.0))))
    assert rc == 1
    c2 = next(line for line in out.splitlines() if line.startswith("C2 "))
    loader = next(line for line in out.splitlines() if line.startswith("loader "))
    assert "1.100x" in c2 and "FAIL: slower by more than 5%, computes more" in c2
    assert "1.000x" in loader and "FAIL: slower by more than 5%, waits more" in loader


def test_the_cpu_time_ratio_is_recorded_and_old_runs_without_it_still_decide(capsys, tmp_path):
    out_dir = cpu_scenario(tmp_path, train=(1.0, 1.0), loader=(1.0, 1.0))
    assert run_cli(capsys, "--from", str(out_dir))[0] == 0
    old = scenario(tmp_path / "old", train_effect=1.10)  # saved before CPU time was recorded
    rc, out, _ = run_cli(capsys, "--from", str(old))
    c2 = next(line for line in out.splitlines() if line.startswith("C2 "))
    assert rc == 1 and "not recorded" in c2 and c2.endswith("FAIL: slower by more than 5%")  # no kind guessed


def test_figure_reads_the_cpu_time_beside_each_gated_figure():
    c2, loader = (as_bench(b) for b in suite_run(4.0, 9.0, cpu=(7.0, 8.5))["benchmarks"])
    assert [g.cpu_figure for g in gated_benchmarks("cpu")] == ["train_cpu_s", "round_cpu_s"]
    assert figure(c2, "train_cpu_s") == 7.0 and figure(loader, "round_cpu_s") == 8.5
    old_c2, old_loader = (as_bench(b) for b in suite_run(4.0, 9.0)["benchmarks"])
    assert figure(old_c2, "train_cpu_s") == figure(old_loader, "round_cpu_s") == "not recorded"


def test_an_interval_too_wide_to_see_twice_the_tolerance_says_so(capsys, tmp_path):
    rng = random.Random(3)
    base = [suite_run(4.0, 9.0) for _ in range(6)]
    new = [suite_run(4.0 * rng.choice((0.8, 1.25)), 9.0) for _ in range(6)]  # +-25% per pair: no direction
    rc, out, _ = run_cli(capsys, "--from", str(write_pairs(tmp_path / "ab", base, new)))
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith("C2 "))
    assert "same, but noisy: a 10% slowdown could have passed unseen" in row


def test_a_speed_up_is_reported_and_passes(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, "--from", str(scenario(tmp_path, loader_effect=1 / 1.10)))
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith("loader "))
    assert "faster (passes)" in row and "0.90" in row


def test_a_non_finite_figure_in_the_new_run_fails_with_its_name(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, "--from", str(scenario(tmp_path, nan_epoch=1)))
    assert rc == 1
    assert "FAIL: train_s non-finite (nan) in the new run of pair 0" in out


def test_a_figure_the_new_run_lacks_fails_and_a_one_sided_benchmark_is_listed(capsys, tmp_path):
    out_dir = scenario(tmp_path)
    path = sorted(out_dir.glob("storage/*/*_ab-new-03.json"))[0]
    data = json.loads(path.read_text())
    for r in data["benchmarks"][0]["extra_info"]["epochs"]:
        del r["train_s"]
    data["benchmarks"].append(bench("Q1-Q4", "test_q1_q4_record", None, [0.4], {}))
    path.write_text(json.dumps(data))
    rc, out, _ = run_cli(capsys, "--from", str(out_dir))
    assert rc == 1
    assert "FAIL: train_s not recorded in the new run of pair 3" in out
    assert "only in the new runs (1): test_q1_q4_record" in out


def test_different_torch_versions_are_warned(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "--from", str(scenario(tmp_path, torch_version="2.15.0")))
    assert rc == 0
    assert "warning: the sides ran different library versions (torch 2.14.1 vs 2.15.0)" in err


def test_missing_runs_exit_2(capsys, tmp_path):
    out_dir = scenario(tmp_path)
    sorted(out_dir.glob("storage/*/*_ab-base-02.json"))[0].unlink()
    assert_one_line_error(*run_cli(capsys, "--from", str(out_dir)), "missing the runs ab-base-02")
    assert_one_line_error(*run_cli(capsys, "--from", str(tmp_path / "nothing")), "no paired runs in")


def test_fewer_pairs_than_the_interval_needs_exit_2(capsys, tmp_path):
    rng = random.Random(0)
    runs = [suite_run(4.0 * rng.uniform(0.9, 1.1), 9.0) for _ in range(4)]
    out_dir = write_pairs(tmp_path / "ab", runs, runs)
    assert_one_line_error(*run_cli(capsys, "--from", str(out_dir)), "4 pairs cannot give a 90% interval")
    assert_one_line_error(*run_cli(capsys, "--pairs", "4"), "--pairs 4 cannot give a 90% interval; pass at least 5")


# ---------------------------------------------------------------------------
# tiny git repositories
# ---------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(textwrap.dedent(text))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    return path


def test_not_a_git_repository_exits_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert_one_line_error(*run_cli(capsys, "--out", str(tmp_path / "ab")), "is not inside a git repository")


def test_a_base_that_is_not_a_commit_exits_2(capsys, tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    tree = commit(repo, {"README.md": "one\n"}, "first")
    monkeypatch.chdir(repo)
    assert_one_line_error(
        *run_cli(capsys, "--out", str(tmp_path / "ab")), "--base 'HEAD~1' is not a commit"
    )  # one commit: no HEAD~1
    assert_one_line_error(
        *run_cli(capsys, "--base", "no-such-branch", "--out", str(tmp_path / "ab")),
        "--base 'no-such-branch' is not a commit",
    )
    blob = git(repo, "rev-parse", "HEAD:README.md")
    assert_one_line_error(*run_cli(capsys, "--base", blob, "--out", str(tmp_path / "ab")), "is not a commit")
    assert tree


def test_a_base_without_the_benchmarks_exits_2(capsys, tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    commit(repo, {"README.md": "no suite yet\n"}, "first")
    commit(repo, {"benchmarks/test_other.py": "def test_other():\n    pass\n"}, "second")
    commit(repo, {"README.md": "three\n"}, "third")
    monkeypatch.chdir(repo)
    assert_one_line_error(*run_cli(capsys, "--base", "HEAD~2", "--out", str(tmp_path / "ab1")), f"{NO_GATED} (")
    # a suite without the gated tests (nor the --lab-* options): pytest's own complaint is named
    rc, out, err = run_cli(capsys, "--out", str(tmp_path / "ab2"))
    assert_one_line_error(rc, out, err, NO_GATED)
    assert "pytest --collect-only exited 4" in err


def test_an_out_folder_with_earlier_runs_exits_2(capsys, tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    commit(repo, {"README.md": "one\n"}, "first")
    commit(repo, {"README.md": "two\n"}, "second")
    (tmp_path / "ab" / "storage").mkdir(parents=True)
    monkeypatch.chdir(repo)
    assert_one_line_error(*run_cli(capsys, "--out", str(tmp_path / "ab")), "already holds paired runs")


# ---------------------------------------------------------------------------
# end to end over a fake suite: each side's own code, ABBA, storage, the verdict
# ---------------------------------------------------------------------------

FAKE_CONFTEST = """
    def pytest_addoption(parser):
        for name in ("--lab-device", "--lab-epochs", "--lab-batches", "--lab-out"):
            parser.addoption(name)
"""
# Records its checkout's FACTOR as the training time of each epoch: the verdict shows whose code ran.
FAKE_C2 = """
    import pytest
    from resnet_lab import FACTOR

    @pytest.mark.parametrize("device", ["cpu"], ids=lambda d: f"device={d}")
    def test_c2_phases(benchmark, device, pytestconfig):
        epochs = int(pytestconfig.getoption("lab_epochs"))
        benchmark.group = "C2"
        benchmark.extra_info["epochs"] = [{"epoch": e, "train_s": FACTOR * (3.0 if e == 1 else 1.0), "warmup": e == 1}
                                          for e in range(1, epochs + 1)]
        benchmark.pedantic(lambda: None, rounds=epochs, iterations=1)
"""


def test_end_to_end_each_side_runs_its_own_code(capsys, tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    files = {
        "resnet_lab/__init__.py": "FACTOR = 1.0\n",
        "conftest.py": FAKE_CONFTEST,
        "benchmarks/test_c2_phases.py": FAKE_C2,
        ".gitignore": "__pycache__/\n",
    }
    base = commit(repo, files, "base")
    (repo / "resnet_lab" / "__init__.py").write_text("FACTOR = 1.25\n")  # the working tree, uncommitted
    monkeypatch.chdir(repo)
    out_dir = tmp_path / "ab"
    # --pairs 7 under a time box that every pair overruns: the gate stops at the 6 pairs the box leaves
    rc, out, err = run_cli(
        capsys, "--base", "HEAD", "--pairs", "7", "--epochs", "2", "--time-box", "0.001", "--out", str(out_dir)
    )
    assert rc == 1, out + err
    assert (
        f"base {base[:12]} (HEAD) vs new working tree of {base[:7]} + uncommitted changes, 6 of 7 pairs (12 runs)"
        in out
    )
    assert "time box: 6 pairs done in" in out
    row = next(line for line in out.splitlines() if line.startswith("C2 "))
    assert "1.250x" in row and "[1.250, 1.250]" in row and "FAIL" in row
    progress = [line.split("pair ", 1)[1].split()[1] for line in out.splitlines() if line.startswith("[")]
    assert progress == ["base", "new", "new", "base"] * 3
    saved = sorted(p.name.split("_", 1)[1] for p in out_dir.glob("storage/*/*.json"))
    assert saved == sorted(f"ab-{side}-{pair:02d}.json" for pair in range(6) for side in (BASE, NEW))
    summary = json.loads((out_dir / "ab.json").read_text())
    assert summary["rows"][0]["base"] == [1.0] * 6 and summary["rows"][0]["new"] == [1.25] * 6
    assert all(r["returncode"] == 0 and 0 < r["wall_s"] <= summary["elapsed_s"] for r in summary["runs"])
    base_run = json.loads(next(out_dir.glob("storage/*/*_ab-base-00.json")).read_text())
    assert base_run["commit_info"]["id"] == base  # the base ran in a checkout of its commit
    written = [
        line.strip() for line in git(repo, "status", "--porcelain").splitlines() if ".coverage" not in line
    ]  # CI's coverage data
    assert written == ["M resnet_lab/__init__.py"]  # nothing else written into the repository
    # the same runs decide the same way again, without running anything
    rc_again, out_again, _ = run_cli(capsys, "--from", str(out_dir))
    assert rc_again == 1 and row in out_again
