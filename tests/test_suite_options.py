"""The suite's options: presets, overrides, usage errors (through pytester), C3's worker rule."""

import pytest

from resnet_lab.errors import LabError
from resnet_lab.spec import presets as suite
from resnet_lab.spec.presets import PRESETS, c32_answer, extension_counts, still_improving
from resnet_lab.suite.options import LabOptions, build_options

pytest_plugins = ["pytester"]


def options(**overrides):
    kwargs = dict(
        preset="smoke", data="synthetic", devices="cpu,cuda", epochs=None, batches=None, workers=None, out_dir="o"
    )
    kwargs.update(overrides)
    return build_options(**kwargs)


def test_smoke_preset_is_two_epochs_of_two_batches():
    """README: smoke = 2 epochs x 2 batches, 2 test batches, 3 profiled steps; C8 2 epochs."""
    o = options()
    assert (o.epochs, o.max_batches, o.eval_batches, o.profile_steps, o.c8_epochs) == (2, 2, 2, 3, 2)
    assert o.devices == ("cpu", "cuda") and o.preset == "smoke"


def test_full_preset_is_the_lab_as_written():
    """LAB_SPEC: 5 epochs over every batch, the whole test set; C8 10 epochs; 5 profiled steps."""
    o = options(preset="full")
    assert (o.epochs, o.max_batches, o.eval_batches, o.profile_steps, o.c8_epochs) == (5, None, None, 5, 10)


def test_presets_are_smoke_and_full():
    assert sorted(PRESETS) == ["full", "smoke"]
    assert all(name == preset.name for name, preset in PRESETS.items())


def test_lab_options_defaults_are_the_smoke_preset():
    o, smoke = LabOptions(), options(out_dir="lab-output")
    assert o == smoke


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


@pytest.mark.parametrize(
    ("cpus", "extension"),
    [(1, ()), (4, ()), (5, (20,)), (8, (20, 24, 28, 32)), (9, (20, 24, 28, 32, 36))],
)
def test_sweep_goes_on_by_four_up_to_four_workers_per_cpu(monkeypatch, cpus, extension):
    """LAB_SPEC: 0, 4, 8, 12, 16, then +4; the suite stops at 4 workers per CPU."""
    monkeypatch.setattr(suite, "cpu_count", lambda: cpus)
    assert extension_counts() == extension
    assert options().c3_workers() == (0, 4, 8, 12, 16, *extension)


def test_only_counts_past_the_default_list_are_extensions():
    o = options()
    assert [w for w in (0, 12, 16, 17, 20) if o.is_extension(w)] == [17, 20]
    assert not options(workers=(0, 20)).is_extension(20)  # an explicit list always runs whole


def test_c32_answer_by_hand():
    answer = c32_answer({8: 3.0, 0: 10.0, 4: 3.25, 12: 3.2}, tolerance=0.10, source="C3-loader")
    # best 3.0 s at 8 workers; within 10% means <= 3.3 s: 4, 8 and 12 qualify, 4 is the smallest
    assert answer == {
        "workers": 4,
        "load_s": 3.25,
        "best_workers": 8,
        "best_load_s": 3.0,
        "tolerance": 0.10,
        "source": "C3-loader",
        "rule": "smallest num_workers whose load_s is within 10% of the best (3.000 s at 8 workers), from C3-loader",
        "measured": {"0": 10.0, "4": 3.25, "8": 3.0, "12": 3.2},
    }
    assert list(answer["measured"]) == ["0", "4", "8", "12"]
    assert c32_answer({0: 10.0, 4: 5.0, 8: 3.0}, tolerance=0.10)["workers"] == 8


def test_c32_tolerance_bound_is_inclusive_and_ties_go_to_fewer_workers():
    # binary-exact: the bound is 4.0 x 1.25 = 5.0
    assert c32_answer({0: 5.0, 4: 4.0}, tolerance=0.25)["workers"] == 0
    assert c32_answer({0: 5.0625, 4: 4.0}, tolerance=0.25)["workers"] == 4
    tie = c32_answer({8: 2.0, 4: 2.0, 12: 2.5})
    assert (tie["best_workers"], tie["workers"]) == (4, 4)


def test_c32_default_tolerance_is_ten_percent():
    # best 1.0 s at 8 workers: 1.09 s is within 10%, 1.11 s is not
    assert c32_answer({0: 10.0, 4: 1.09, 8: 1.0})["workers"] == 4
    assert c32_answer({0: 10.0, 4: 1.11, 8: 1.0})["workers"] == 8
    assert "within 10% of the best" in c32_answer({0: 1.0})["rule"]


def test_c32_needs_a_measurement():
    with pytest.raises(LabError) as err:
        c32_answer({})
    assert str(err.value) == "C3.2 needs loading times for at least one worker count"


def test_c32_source_defaults_to_c3():
    answer = c32_answer({0: 2.0, 4: 1.0})
    assert answer["source"] == "C3" and answer["rule"].endswith(", from C3")


def test_still_improving():
    assert still_improving({})
    assert still_improving({0: 10.0})
    assert still_improving({0: 10.0, 4: 5.0})
    assert not still_improving({0: 10.0, 4: 9.5})
    assert not still_improving({0: 10.0, 4: 5.0, 8: 4.9})
    assert not still_improving({0: 10.0, 4: 5.0, 8: 6.0})
    assert still_improving({8: 1.0, 0: 10.0})  # the largest count is the last one, whatever the order


def test_still_improving_needs_a_gain_beyond_the_tolerance():
    # binary-exact: 4.0 x (1 - 0.25) = 3.0, and the gain must be strictly beyond it
    assert not still_improving({0: 8.0, 4: 4.0, 8: 3.0}, tolerance=0.25)
    assert still_improving({0: 8.0, 4: 4.0, 8: 2.9375}, tolerance=0.25)


def test_still_improving_default_tolerance_is_ten_percent():
    assert still_improving({0: 10.0, 4: 8.95})  # 10.5% faster
    assert not still_improving({0: 10.0, 4: 9.05})  # 9.5% faster


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
    for option in (
        "--lab-preset=NAME",
        "--lab-data=SRC",
        "--lab-device=LIST",
        "--lab-epochs=N",
        "--lab-batches=N",
        "--lab-workers=LIST",
    ):
        assert option in out
    assert out.count("Default:") >= 7
