"""`resnet-lab history`: the detector's rates on synthetic histories (issue 22's targets), and the command on
storage folders, JSON files and run logs: labels, exit statuses, outputs, and outputs that never harm inputs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import ruptures
from historyruns import as_run_log, commit_sha, scaled_run, write_history

from resnet_lab.cli import main
from resnet_lab.results.history import detect, synthetic
from resnet_lab.results.history.detect import (
    IMPROVEMENT,
    INSUFFICIENT,
    NO_CHANGE,
    REGRESSION,
    SUSPICIOUS,
    Rule,
    judge,
)
from resnet_lab.results.history.sources import since

ROOT = Path(__file__).resolve().parents[1]
TIMING = synthetic.TIMING


# ---------------------------------------------------------------------------
# the detector alone: issue 22's rates (200 histories of 20 runs each)
# ---------------------------------------------------------------------------


def test_a_15_percent_step_at_run_11_is_located_within_one_run_in_95_percent_of_histories():
    r = synthetic.rates("step", 0.03, 200)
    assert r.located >= 0.95
    assert r.regression >= 0.95


@pytest.mark.parametrize("sigma", [0.03, "ab-gate"])
def test_noise_only_histories_raise_a_regression_in_at_most_5_percent(sigma):
    spreads = synthetic.ab_gate_spread(ROOT / "results" / "ab-gate")
    sigma = max(spreads.values()) if sigma == "ab-gate" else sigma
    assert sigma > 0.03 or sigma == 0.03
    assert synthetic.rates("noise", sigma, 200).regression <= 0.05


def test_a_drift_is_told_apart_from_a_step():
    r = synthetic.rates("drift", 0.03, 200)
    assert r.drift >= 0.80  # called a drift ...
    assert r.located <= 0.10  # ... and rarely a step at the middle run
    step = synthetic.rates("step", 0.03, 200)
    assert step.drift <= 0.05  # and a step is rarely called a drift


def test_a_single_outlier_run_is_not_a_step():
    r = synthetic.rates("outlier", 0.03, 200)
    assert r.regression <= 0.05 and r.located <= 0.05
    newest = synthetic.rates("newest outlier", 0.03, 200)
    assert newest.regression <= 0.05
    assert newest.suspicious >= 0.90  # the newest run far off its segment: flagged for a look, not failed


def test_the_split_tested_is_the_one_ruptures_finds():
    rng = np.random.default_rng(5)
    for _ in range(20):
        z = np.log(synthetic.history(rng, "step", 0.05))
        t = ruptures.Binseg(model="l2", min_size=detect.MIN_RUNS, jump=1).fit(z).predict(n_bkps=1)[0]
        gains = detect.split_gains(z[None, :])[0]
        assert t == int(np.argmax(gains)) + detect.MIN_RUNS
        cost = ruptures.costs.CostL2().fit(z)
        assert gains.max() == pytest.approx(cost.error(0, z.size) - cost.error(0, t) - cost.error(t, z.size))


def test_labels_on_plain_series():
    flat = [10.0, 10.1, 9.9, 10.0, 10.2, 9.8, 10.0, 10.1]
    assert judge(flat[:5], TIMING, 0.05).label == INSUFFICIENT
    assert judge(flat, TIMING, 0.05).label == NO_CHANGE
    assert judge([*flat, 13.0, 13.1, 12.9, 13.0], TIMING, 0.05).label == REGRESSION
    assert judge([*flat, 7.0, 7.1, 6.9, 7.0], TIMING, 0.05).label == IMPROVEMENT
    assert judge([*flat, 10.4, 10.5, 10.3, 10.4], TIMING, 0.05).label == NO_CHANGE  # +4 %: within the 5 % tolerance
    assert judge([*flat, 16.0], TIMING, 0.05).label == SUSPICIOUS
    top1 = Rule(worse=-1, log_scale=False, tolerance=5.0)
    assert judge([60.0] * 6 + [50.0] * 6, top1, 0.05).label == REGRESSION  # seeded: no noise at all
    assert judge([60.0] * 6 + [58.0] * 6, top1, 0.05).label == NO_CHANGE


def test_a_change_never_splits_the_runs_of_one_commit():
    # The committed real history's shape: 4 commits x 3 runs, the planted step at the third commit, and the last
    # run before it slow by chance. Run by run, the best split is one run early, inside the second commit.
    values = [1.0, 0.97, 1.03, 0.97, 1.0, 1.16, 1.26, 1.29, 1.26, 1.26, 1.31, 1.25]
    commits = [i // 3 for i in range(12)]
    assert [c.index for c in judge(values, TIMING, 0.01).changes] == [5]  # what a run-by-run search finds
    verdict = judge(values, TIMING, 0.01, blocks=commits)
    assert [c.index for c in verdict.changes] == [6] and verdict.label == REGRESSION
    rng = np.random.default_rng(3)
    for _ in range(60):  # any block structure: every change starts a commit
        sizes = rng.integers(1, 5, size=rng.integers(3, 9))
        keys = np.repeat(np.arange(sizes.size), sizes).tolist()
        level = np.where(np.arange(len(keys)) >= rng.integers(0, len(keys)), 1.3, 1.0)
        found = judge(
            level * np.exp(rng.normal(0, 0.03, len(keys))), TIMING, 0.05, blocks=keys, permutations=199
        ).changes
        assert all(keys[c.index] != keys[c.index - 1] for c in found), (keys, [c.index for c in found])


def test_the_permutation_test_holds_its_rate_when_commits_have_several_runs():
    # Noise only, 2-4 runs per commit: the test permutes runs and takes the best split over the same commit
    # boundaries as the search, so a false change stays within alpha (0.05; 200 histories: at most 8 %).
    rng = np.random.default_rng(11)
    false = 0
    for _ in range(200):
        keys = np.repeat(np.arange(rng.integers(4, 8)), rng.integers(2, 5)).tolist()
        false += bool(
            judge(np.exp(rng.normal(0, 0.03, len(keys))), TIMING, 0.05, blocks=keys, permutations=199).changes
        )
    assert false / 200 <= 0.08


def test_with_few_commits_a_step_is_not_called_a_drift():
    # 4 commits leave a line over commits and a step one degree of freedom apart: a significant change is the step.
    values = [1.0, 0.97, 1.03, 0.97, 1.0, 1.16, 1.26, 1.29, 1.26, 1.26, 1.31, 1.25]
    verdict = judge(values, TIMING, 0.05 / 6, blocks=[i // 3 for i in range(12)])
    assert verdict.drift is None and verdict.gate
    ramp = np.exp(np.linspace(0, np.log(1.3), 24))  # a ramp over 8 commits of 3 runs is still a drift
    assert judge(ramp, TIMING, 0.05, blocks=[i // 3 for i in range(24)]).drift is not None


def test_the_same_history_gives_the_same_p_values():
    values = list(synthetic.history(np.random.default_rng(1), "step", 0.05))
    assert judge(values, TIMING, 0.01) == judge(values, TIMING, 0.01)


# ---------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------

STEP = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.3, 1.31, 1.29, 1.3, 1.32, 1.28]
FLAT = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0]


def run_cli(capsys, *argv):
    code = main(["history", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_planted_step_fails_the_gate_and_names_the_commit(tmp_path, capsys):
    write_history(tmp_path / "store", STEP)
    code, out, err = run_cli(
        capsys, tmp_path / "store", "--markdown", tmp_path / "summary.md", "--html", tmp_path / "page.html"
    )
    assert code == 1, out + err
    assert "result: FAIL" in out
    assert commit_sha(6)[:8] in out  # the first slower run's commit
    summary = (tmp_path / "summary.md").read_text()
    assert "regression" in summary and commit_sha(6)[:8] in summary
    page = (tmp_path / "page.html").read_text()
    assert "<script" not in page and "http" not in page.split("<svg", 1)[0].replace("http-equiv", "")
    assert page.count('<figure class="plot"') == page.count("data-figure=")
    assert (
        page.count('id="changepoint-')
        == sum(int(n) for n in __import__("re").findall(r'data-changes="(\d+)"', page))
        > 0
    )


def test_the_change_is_named_by_the_commit_it_starts_at_with_several_runs_per_commit(tmp_path, capsys):
    write_history(
        tmp_path / "store", [1.0, 0.97, 1.03, 0.97, 1.0, 1.16, 1.26, 1.29, 1.26, 1.26, 1.31, 1.25], runs_per_commit=3
    )
    code, out, _ = run_cli(capsys, tmp_path / "store", "--figure", "train_s")
    assert code == 1, out
    assert f"{commit_sha(2)[:8]} 1.2" in out and commit_sha(1)[:8] not in out.split("changes", 1)[1]


def test_the_committed_real_history_names_the_planted_commit(capsys):
    real = ROOT / "results" / "history" / "real"
    planted = re.search(r"^\| ([0-9a-f]{8}) \| \*\*planted\*\*", (real / "README.md").read_text(), re.MULTILINE).group(
        1
    )
    code, out, _ = run_cli(capsys, real / "storage")
    train = next(line for line in out.splitlines() if " train_s " in line)
    assert code == 1 and train.startswith("regression") and f"{planted} 1.2" in train, out
    assert (real / "terminal.txt").read_text() == f"{out}exit status {code}\n"  # the committed output is today's
    assert f"{planted} 1.2" in (real / "summary.md").read_text()


def test_noise_only_passes_and_two_machines_are_two_series(tmp_path, capsys):
    write_history(tmp_path / "store", FLAT)
    write_history(tmp_path / "store", STEP, cpu="Other CPU")  # another machine: its own series
    code, out, _ = run_cli(capsys, tmp_path / "store", "--figure", "train_s")
    assert code == 1
    assert out.count("machine:") == 2
    flat = sorted((tmp_path / "store").glob("*/*.json"))[:12]  # the first machine's runs, as files
    code, out, _ = run_cli(capsys, *flat, "--figure", "train_s")
    assert code == 0, out


def test_json_files_run_logs_and_storage_ids_are_sources(tmp_path, capsys, monkeypatch):
    paths = write_history(tmp_path / "store", STEP)
    log = tmp_path / "run.jsonl"
    log.write_text(as_run_log(scaled_run(1.3, 12, 0)))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(
        capsys,
        *paths[:6],
        "0007",
        "0008",
        "0009",
        "0010",
        "0011",
        log,
        "--storage",
        tmp_path / "store",
        "--figure",
        "train_s",
    )
    assert code == 1, out
    assert "12 runs of 12 commits" in out


def test_too_few_runs_is_exit_2_with_one_line(tmp_path, capsys):
    write_history(tmp_path / "store", STEP[:5])
    code, out, err = run_cli(capsys, tmp_path / "store")
    assert code == 2 and "insufficient data" in out  # the table still shows what there is
    assert err.count("\n") == 1 and err.startswith("resnet-lab: error: no series has enough runs")


def test_many_runs_of_one_commit_are_insufficient_data(tmp_path, capsys):
    write_history(tmp_path / "store", STEP, runs_per_commit=12)  # a step inside one commit cannot be a change of code
    code, out, err = run_cli(capsys, tmp_path / "store", "--figure", "train_s")
    assert code == 2 and "insufficient data" in out and "12 runs of 1 commit;" in out
    assert err.count("\n") == 1 and "the longest series has 12 runs of 1 commit(s))" in err


def test_dirty_runs_are_marked(tmp_path, capsys):
    write_history(tmp_path / "store", FLAT, dirty=True)
    code, out, _ = run_cli(
        capsys,
        tmp_path / "store",
        "--figure",
        "train_s",
        "--markdown",
        tmp_path / "s.md",
        "--html",
        tmp_path / "p.html",
    )
    newest = commit_sha(len(FLAT) - 1)[:8]
    assert code == 0 and f"@ {newest}* " in out and "* a run of a commit with uncommitted changes (dirty)" in out
    summary = (tmp_path / "s.md").read_text()  # escaped: neither emphasis nor a nested list in a job summary
    assert f"@ {newest}\\* |" in summary and "- \\* a run of a commit with uncommitted changes" in summary
    assert f"{newest}*</text>" in (tmp_path / "p.html").read_text()  # the plot's commit ticks


def test_a_loss_jump_is_a_quality_regression(tmp_path, capsys):
    write_history(tmp_path / "store", FLAT[:6], loss=2.0)
    write_history(tmp_path / "store", FLAT[6:], loss=2.5)
    code, out, _ = run_cli(capsys, tmp_path / "store", "--figure", "loss,top1")
    assert code == 1 and "regression" in out and "loss" in out


def test_a_non_finite_newest_figure_fails(tmp_path, capsys):
    write_history(tmp_path / "store", FLAT[:11])
    write_history(tmp_path / "store", FLAT[11:], loss=float("nan"))
    code, out, _ = run_cli(capsys, tmp_path / "store", "--figure", "loss")
    assert code == 1 and "non-finite" in out


@pytest.mark.parametrize("bad", [["--since", "no-such-ref"]])
def test_bad_values_are_one_line_and_exit_2(tmp_path, capsys, bad, monkeypatch):
    write_history(tmp_path / "store", STEP)
    monkeypatch.chdir(tmp_path)  # not a git repository: --since cannot resolve anything
    code, out, err = run_cli(capsys, tmp_path / "store", *bad)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("resnet-lab: error:"), err


@pytest.mark.parametrize(
    "bad", [["--alpha", "1.5"], ["--alpha", "0"], ["--tolerance", "x"], ["--figure", "epoch"], ["--figure", ","]]
)
def test_bad_numbers_are_argparse_usage_errors(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["history", str(tmp_path), *bad])
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_outputs_never_harm_inputs(tmp_path, capsys):
    paths = write_history(tmp_path / "store", STEP)
    before = {p: p.read_bytes() for p in paths}
    for argv in (
        ["--html", paths[0]],
        ["--markdown", tmp_path / "store" / "summary.md"],
        ["--html", tmp_path / "store"],
        ["--html", tmp_path / "x.html", "--markdown", tmp_path / "x.html"],
    ):
        code, out, err = run_cli(capsys, tmp_path / "store", *argv)
        assert code == 2 and err.startswith("resnet-lab: error:") and out == "", argv
    assert {p: p.read_bytes() for p in paths} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    code, _, err = run_cli(capsys, *paths, "--markdown", paths[-1])
    assert code == 2 and "an input of this command" in err


def test_since_keeps_the_commit_and_what_follows(tmp_path):
    repo = tmp_path / "repo"

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True, text=True).stdout.strip()

    repo.mkdir()
    git("init", "-q")
    shas = []
    for i in range(3):
        (repo / "f").write_text(str(i))
        git("add", "f")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"c{i}")
        shas.append(git("rev-parse", "HEAD"))
    from resnet_lab.results.loading import parse_run

    runs = []
    for i, sha in enumerate(shas):
        data = scaled_run(1.0, i, 0)
        data["commit_info"]["id"] = sha
        runs.append(parse_run(tmp_path / f"{i}.json", data))
    assert [r.commit_info["id"] for r in since(runs, shas[1][:10], repo)] == shas[1:]
    assert since(runs, "HEAD", repo) == runs[2:]
