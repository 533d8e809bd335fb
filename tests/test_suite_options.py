"""The suite's options: presets, overrides, usage errors (through pytester), C3's worker rule."""

import pytest

from resnet_lab.errors import LabError
from resnet_lab.suite import C3_DEFAULT_WORKERS, PRESETS, build_options, c32_answer, extension_counts, still_improving

pytest_plugins = ["pytester"]


def options(**overrides):
    kwargs = dict(preset="smoke", data="synthetic", devices="cpu,cuda", epochs=None, batches=None, workers=None, out_dir="o")
    kwargs.update(overrides)
    return build_options(**kwargs)


def test_smoke_preset_defaults():
    o = options()
    assert (o.epochs, o.max_batches, o.devices) == (PRESETS["smoke"].epochs, PRESETS["smoke"].max_batches, ("cpu", "cuda"))
    assert o.c3_workers()[:5] == C3_DEFAULT_WORKERS


def test_full_preset_is_the_lab_as_written():
    o = options(preset="full")
    assert o.epochs == 5 and o.max_batches is None and o.eval_batches is None


def test_explicit_options_override_the_preset():
    o = options(preset="full", epochs=2, batches=7, workers=(0, 2))
    assert (o.epochs, o.max_batches, o.c3_workers()) == (2, 7, (0, 2))
    assert options(batches=0).max_batches is None  # 0 = no cap


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"preset": "huge"}, "unknown preset"),
        ({"devices": "tpu"}, "unknown device 'tpu'"),
        ({"devices": " , "}, "at least one device"),
        ({"data": "/nonexistent/cifar"}, "does not exist"),
    ],
)
def test_bad_values_are_lab_errors(kwargs, message):
    with pytest.raises(LabError, match=message):
        options(**kwargs)


def test_extension_counts_continue_by_four():
    counts = extension_counts()
    assert all(b - a == 4 for a, b in zip((16,) + counts, counts))


def test_c32_picks_smallest_count_within_tolerance():
    answer = c32_answer({0: 10.0, 4: 3.05, 8: 3.0, 12: 3.2}, tolerance=0.10)
    assert answer["workers"] == 4 and answer["best_workers"] == 8
    assert "within 10%" in answer["rule"]
    assert c32_answer({0: 10.0, 4: 5.0, 8: 3.0}, tolerance=0.10)["workers"] == 8


def test_still_improving():
    assert still_improving({0: 10.0})
    assert still_improving({0: 10.0, 4: 5.0})
    assert not still_improving({0: 10.0, 4: 5.0, 8: 4.9})
    assert not still_improving({0: 10.0, 4: 5.0, 8: 6.0})


def test_usage_error_through_pytest(pytester):
    pytester.makeconftest((pytest.importorskip("pathlib").Path(__file__).parents[1] / "conftest.py").read_text())
    pytester.makepyfile("def test_x():\n    pass\n")
    for args, text in [
        (["--lab-preset", "nope"], "unknown preset 'nope'"),
        (["--lab-epochs", "0"], "must be a positive integer"),
        (["--lab-batches", "-1"], "must be an integer >= 0"),
        (["--lab-workers", "0,x"], "'x' is not an integer"),
        (["--lab-device", "gpu"], "unknown device 'gpu'"),
    ]:
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        assert text in result.stderr.str(), result.stderr.str()


def test_help_shows_group_and_defaults(pytester):
    pytester.makeconftest((pytest.importorskip("pathlib").Path(__file__).parents[1] / "conftest.py").read_text())
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    assert "resnet_lab benchmark suite" in out
    for option in ("--lab-preset=NAME", "--lab-data=SRC", "--lab-device=LIST", "--lab-epochs=N", "--lab-batches=N", "--lab-workers=LIST"):
        assert option in out
    assert out.count("Default:") >= 7
