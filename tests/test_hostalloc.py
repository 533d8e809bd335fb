"""malloc tuning for CPU training: applied where glibc is, it stops the page faults it is for, and a run
that applies it in the suite (perf/isolated.py) leaves the process that started it untouched.

Each check runs in a fresh interpreter: the setting is process-wide and irreversible,
and would otherwise change every test after it.
"""

import subprocess
import sys

import pytest

FAULTS = """
import resource, torch, torch.nn.functional as F
from resnet_lab import resnet18
from resnet_lab.data import DataConfig, LoaderConfig
from resnet_lab.engine.hostalloc import retain_freed_memory
from resnet_lab.perf.isolated import IsolatedRun
from resnet_lab.engine.run import RunConfig

# A run that tunes malloc, trained in a process of its own first (perf/isolated.py).
config = RunConfig(
    epochs=1, max_batches=1, eval_batches=0, retain_heap=True, loader=LoaderConfig(batch_size=8, num_workers=0)
)
with IsolatedRun(config, DataConfig(train_size=64, test_size=16)) as run:
    run.run_epoch()
    applied_in_child = run.host_alloc["retain_heap"]
torch.manual_seed(0)
model = resnet18()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
def step():
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
def faults_per_step():
    for _ in range(3):  # first touches fault either way
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3
plain = faults_per_step()
applied = retain_freed_memory()["retain_heap"]  # irreversible: measured second
print(plain, faults_per_step(), applied_in_child, applied)
"""


def fault_counts() -> tuple[int, int, str, str]:
    """Page faults per ResNet-18 training step (batch 32) after warm-up, in a fresh interpreter: after an
    isolated run applied the setting in its child, then with the setting applied here."""
    out = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, timeout=300, check=True)
    plain, retained, applied_in_child, applied = out.stdout.split()
    return int(plain), int(retained), applied_in_child, applied


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's; this checks Linux page faults")
def test_retained_heap_stops_refaulting_activations_and_stays_in_its_own_process() -> None:
    plain, retained, applied_in_child, applied = fault_counts()
    if applied != "True":
        pytest.skip("this C library refused mallopt (not glibc)")
    assert applied_in_child == "True"
    # Had the isolated run's setting reached this process, its plain steps would not fault either.
    # Without the setting the count varies several-fold from run to run (glibc adapts its mmap threshold
    # as blocks are freed), so the check is a ratio; the floor only proves real refaulting was measured.
    assert plain > 1_000
    assert retained * 5 < plain


def test_reports_why_when_there_is_no_mallopt(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    from resnet_lab.engine import hostalloc

    def no_library(name):
        raise OSError("not found")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    record = hostalloc.retain_freed_memory()
    assert record["retain_heap"] is False and "no glibc mallopt" in record["why"]
