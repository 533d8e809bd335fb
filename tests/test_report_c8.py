"""The report's C8 section (results/report/c8.py): each speedup beside its equivalence verdict, and what it
says of compile caches and of runs older than the check.
"""

from __future__ import annotations

from fixtures.labruns import make_run, write_run
from reporthelpers import run_report, section


def test_c8_says_when_a_compile_may_have_loaded_an_earlier_build(capsys, tmp_path):
    run = make_run(groups=("C8",))
    for b in run["benchmarks"]:
        b["extra_info"].pop("compile_caches", None)  # JSON from before the caches were turned off
    rc, _, err = run_report(capsys, str(write_run(tmp_path / "old.json", run)), "--out", str(tmp_path / "r"))
    assert rc == 0, err
    c8 = section((tmp_path / "r" / "answers.md").read_text(), "## C8")
    assert "may have loaded an earlier build" in c8 and "is a cold build" not in c8


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
    rc, _, err = run_report(capsys, str(write_run(tmp_path / "checked.json", run)), "--out", str(tmp_path / "r"))
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
    rc, _, err = run_report(
        capsys, str(write_run(tmp_path / "old.json", make_run(groups=("C8",)))), "--out", str(tmp_path / "r")
    )
    assert rc == 0, err
    c8 = section((tmp_path / "r" / "answers.md").read_text(), "## C8")
    assert "| 1.00× |" in c8 and "| not checked |" in c8 and "predates the equivalence check" in c8
