"""Every run committed under results/ stays readable by `report` and `compare`, whatever schema it was saved with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnet_lab.errors import LabError
from resnet_lab.results.ab import decide_runs, gated_benchmarks, paired_runs
from resnet_lab.results.compare import CI_THRESHOLDS, compare_runs, parse_threshold
from resnet_lab.results.loading import SCHEMA_VERSION, load_run, parse_run
from resnet_lab.results.paired import GateRule
from resnet_lab.results.report.sheet import answer_sheet

RESULTS = Path(__file__).resolve().parents[1] / "results"
# The A/B trials' runs (results/ab-gate/*/storage) are 16 small runs of the same two benchmarks per trial:
# the first of each stands for the rest, which `resnet-lab ab --from` reads in tests/test_ab.py's way.
ALL_JSON = sorted(p for p in RESULTS.glob("**/*.json") if "storage" not in p.parts or p.name.startswith("0001_"))
COMMITTED = [p for p in ALL_JSON if "benchmarks" in json.loads(p.read_text())]  # suite runs
AB_SUMMARIES = [p for p in ALL_JSON if p.name == "ab.json"]  # `resnet-lab ab` jobs
# A study's own output (the A/B pairing designs, the equivalence margins): the README of its folder or of the
# folder above names the script in scripts/ that writes it. The rest are `train --json` outputs.
STUDY_SCRIPT = {"designs-1.json": "scripts/pairing_designs.py", "summary.json": "scripts/equivalence_margins.py"}
STUDIES = [p for p in ALL_JSON if p.name in STUDY_SCRIPT and p not in COMMITTED + AB_SUMMARIES]


def test_there_are_committed_runs():
    assert len(COMMITTED) >= 5


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: str(p.relative_to(RESULTS)))
def test_a_study_output_names_the_script_that_writes_it(path):
    script = STUDY_SCRIPT[path.name]
    readmes = [folder / "README.md" for folder in (path.parent, path.parent.parent) if (folder / "README.md").exists()]
    assert (RESULTS.parent / script).is_file() and any(script in r.read_text() for r in readmes), (
        f"{path}: no README names {script}"
    )
    assert isinstance(json.loads(path.read_text()), dict)


@pytest.mark.parametrize(
    "path",
    [p for p in ALL_JSON if p not in COMMITTED + AB_SUMMARIES + STUDIES],
    ids=lambda p: str(p.relative_to(RESULTS)),
)
def test_every_other_committed_json_is_a_train_output(path):
    data = json.loads(path.read_text())
    assert {"config", "summary", "epochs"} <= set(data), (
        f"{path} is neither a suite run nor `resnet-lab train --json` output"
    )


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_run_renders_and_self_compares(path, tmp_path):
    run = load_run(path)
    assert 1 <= run.schema_version <= SCHEMA_VERSION
    text, _ = answer_sheet([run], tmp_path)
    assert text.startswith("# ResNet-18 on CIFAR-10")
    outcome = compare_runs(run, load_run(path), [parse_threshold(t) for t in CI_THRESHOLDS])
    assert not outcome.failed  # a run against itself is never a regression


@pytest.mark.parametrize("path", AB_SUMMARIES, ids=lambda p: str(p.parent.relative_to(RESULTS)))
def test_committed_ab_trial_decides_again_as_recorded(path):
    """`resnet-lab ab --from` on a committed trial reaches the verdicts its job recorded."""
    summary = json.loads(path.read_text())
    config = summary["config"]
    rule = GateRule(tolerance=config["tolerance"], confidence=config["confidence"])
    outcome = decide_runs(paired_runs(path.parent), gated_benchmarks(config["device"]), rule)
    assert [r.estimate.verdict for r in outcome.rows] == [r["estimate"]["verdict"] for r in summary["rows"]]


def test_schema_version_newer_than_this_reader_is_refused(tmp_path):
    with pytest.raises(LabError, match="newer resnet-lab"):
        parse_run(tmp_path / "x.json", {"machine_info": {}, "benchmarks": [], "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(LabError, match="invalid schema_version"):
        parse_run(tmp_path / "x.json", {"machine_info": {}, "benchmarks": [], "schema_version": "2"})
