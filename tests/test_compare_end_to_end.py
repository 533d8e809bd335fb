"""`resnet-lab compare` end to end: a real tiny benchmark, run twice with pytest-benchmark, then compared."""

from __future__ import annotations

import textwrap

from resnet_lab import cli

pytest_plugins = ["pytester"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["compare", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# ---------------------------------------------------------------------------
# end to end: a real tiny benchmark, run twice with pytest-benchmark
# ---------------------------------------------------------------------------

TINY_BENCHMARK = textwrap.dedent(
    '''
    """A tiny real training loop recording the suite's per-epoch phases (load, train, metrics).

    Each load pass and each step also waits a fixed few milliseconds: that wait, not the tiny
    compute, sets the phases' cost, so the gap between two configurations is the same on an idle
    machine and on one busy with the rest of the test suite.
    """
    import os
    import time

    import torch

    BATCHES = int(os.environ["TINY_BATCHES"])  # more batches per epoch = genuinely more work
    AUGMENT_PASSES = int(os.environ["TINY_AUGMENT_PASSES"])  # a slower loading configuration
    BATCH = 32
    PASS_S = STEP_S = 0.01
    torch.set_num_threads(1)  # one core each, so a busy second core does not halve a run at random


    def make_state():
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (1024,), generator=g)
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(3072, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
        )
        return images, labels, model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), g


    def load_batch(images, labels, g):
        """Gather, crop, flip, normalize; AUGMENT_PASSES times over (the cost scales with it, like a slower decoder)."""
        for _ in range(AUGMENT_PASSES):
            idx = torch.randint(0, images.shape[0], (BATCH,), generator=g)
            padded = torch.nn.functional.pad(images[idx].float(), (4, 4, 4, 4))
            i, j = torch.randint(0, 9, (2,), generator=g).tolist()
            x = padded[:, :, i : i + 32, j : j + 32]
            x = torch.where(torch.rand(BATCH, 1, 1, 1, generator=g) < 0.5, x.flip(3), x)
            x = ((x / 255.0 - 0.48) / 0.2).contiguous()
            time.sleep(PASS_S)
        return x, labels[idx]


    def run_epoch(state, records):
        images, labels, model, opt, g = state
        load_s = train_s = metrics_s = loss_sum = 0.0
        correct = seen = 0
        start = time.perf_counter()
        for _ in range(BATCHES):
            t0 = time.perf_counter()
            x, y = load_batch(images, labels, g)
            t1 = time.perf_counter()
            out = model(x)
            loss = torch.nn.functional.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            time.sleep(STEP_S)
            t2 = time.perf_counter()
            loss_sum += loss.item() * y.shape[0]
            correct += int((out.argmax(1) == y).sum())
            seen += y.shape[0]
            t3 = time.perf_counter()
            load_s, train_s, metrics_s = load_s + t1 - t0, train_s + t2 - t1, metrics_s + t3 - t2
        epoch_s = time.perf_counter() - start
        records.append({"epoch": len(records) + 1, "batches": BATCHES, "images": seen, "load_s": load_s, "copy_s": 0.0,
                        "train_s": train_s, "metrics_s": metrics_s, "epoch_s": epoch_s, "images_per_s": seen / epoch_s,
                        "loss": loss_sum / seen, "top1": correct / seen, "warmup": not records})


    def test_tiny_training(benchmark):
        state = make_state()
        run_epoch(state, [])  # warm-up, outside the clock
        records = []
        benchmark.group = "C2"
        benchmark.pedantic(run_epoch, args=(state, records), rounds=5, iterations=1)
        benchmark.extra_info.update(epochs=records, loss=records[-1]["loss"], top1=records[-1]["top1"], device="cpu")
    '''
)


def run_tiny(pytester, monkeypatch, name: str, batches: int, augment_passes: int):
    # Under `pytest -n`, the inner run would inherit PYTEST_XDIST_WORKER and pytest-benchmark would disable itself.
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TINY_BATCHES", str(batches))
    monkeypatch.setenv("TINY_AUGMENT_PASSES", str(augment_passes))
    out = pytester.path / f"{name}.json"
    storage = f"file://{pytester.path / 'storage'}"  # also saved the --benchmark-autosave way, read back by storage id
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "--benchmark-json",
        str(out),
        "--benchmark-autosave",
        "--benchmark-storage",
        storage,
        "test_tiny.py",
    )
    result.assert_outcomes(passed=1)
    return out


def failing_lines(out: str) -> str:
    return "\n".join(line for line in out.splitlines() if line.strip().startswith("FAIL"))


def test_end_to_end_slower_runs_are_flagged_and_self_compare_passes(pytester, monkeypatch, capsys):
    """Twice the batches per epoch, then each batch loaded three times over, each against one base run."""
    pytester.makepyfile(test_tiny=TINY_BENCHMARK)
    base = run_tiny(pytester, monkeypatch, "base", 20, 1)
    more_batches = run_tiny(pytester, monkeypatch, "more-batches", 40, 1)
    slower_loading = run_tiny(pytester, monkeypatch, "slower-loading", 20, 3)
    rc, out, _ = run_cli(capsys, str(base), str(more_batches))
    assert rc == 1 and "epoch_s" in failing_lines(out) and "train_s" in failing_lines(out), out
    rc, out, _ = run_cli(capsys, str(base), str(slower_loading))
    assert rc == 1 and " load_s " in failing_lines(out), out
    rc, out, _ = run_cli(
        capsys, "0001", str(base), "--storage", str(pytester.path / "storage")
    )  # autosaved vs --benchmark-json
    assert rc == 0 and "result: ok" in out
    assert "1.00x" in out
