"""`resnet-lab history --html` in a real browser: headless Chromium (Debian's `chromium`, installed by .ci/run)
opens the page from file:// with no network, takes a screenshot that must not be blank, and dumps the DOM
after load, which must hold one plot per series of every gated figure and a mark for every change point."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from historyruns import write_history
from PIL import Image

from resnet_lab.results.history.series import FIGURES, build_series, judge_all
from resnet_lab.results.history.sources import load_sources

pytestmark = pytest.mark.slow
STEP = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.3, 1.31, 1.29, 1.3, 1.32, 1.28]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no chromium here: `apt-get install -y chromium` (.ci/run installs it)")
    return found


def browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    return subprocess.run([chromium(), *flags, *args], check=False, capture_output=True, text=True, timeout=120)


def test_the_page_renders_in_headless_chromium(tmp_path):
    write_history(tmp_path / "store", STEP, runs_per_commit=2)
    page = tmp_path / "history.html"
    # In a process of its own: in the slow step this test follows tests that use pytester, whose teardown drops
    # the modules imported during a test, so an in-process run could meet two copies of matplotlib's Axes.
    command = ["history", str(tmp_path / "store"), "--html", str(page), "--markdown", str(tmp_path / "summary.md")]
    history = subprocess.run(
        [sys.executable, "-m", "resnet_lab", *command], capture_output=True, text=True, timeout=300, check=False
    )
    assert history.returncode == 1, history.stderr[-2000:]
    terminal = history.stdout
    url = page.resolve().as_uri()

    shot = tmp_path / "shot.png"
    result = browser(tmp_path, f"--screenshot={shot}", "--window-size=1100,1800", "--hide-scrollbars", url)
    assert shot.exists(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # a blank or single-colour page has a handful
    assert max(count for count, _ in colors) < 0.95 * image.width * image.height

    dom = browser(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    plots = re.findall(r'<figure class="plot" data-figure="([^"]+)"[^>]*data-changes="(\d+)"', html)
    judged = judge_all(build_series(load_sources([str(tmp_path / "store")]).runs))
    assert {figure for figure, _ in plots} == set(FIGURES)  # every gated figure has its plots ...
    assert len(plots) == len(judged) == html.count("<svg")  # ... one per series, each an inline SVG
    marks = len(re.findall(r'<g id="changepoint-\d+-\d+"', html))
    reported = sum(len(j.verdict.changes) for j in judged)
    assert marks == reported == sum(int(n) for _, n in plots) == len(re.findall(r"\d\.\d{3}x \(p=", terminal)) > 0
    if os.environ.get(
        "HISTORY_SCREENSHOT"
    ):  # to look at it: HISTORY_SCREENSHOT=shot.png pytest -m slow tests/test_history_browser.py
        shutil.copy(shot, os.environ["HISTORY_SCREENSHOT"])
