"""The report as a user sees it: headless Chromium loads report.html, shows the funnel, logs no console error.

Needs Debian's ``chromium`` package (CI: ``apt-get install -y chromium``); skipped with a message otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
# slow: trains, starts processes or a browser; `pytest -m "not slow"` is the fast tier (README, Development)
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"), pytest.mark.slow]


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0", "--window-size=1100,2400"]
    return subprocess.run([str(CHROMIUM), *flags, *args, page.resolve().as_uri()], capture_output=True, text=True,
                          timeout=180, check=False)


def console_messages(stderr: str) -> list[str]:
    # Chromium logs every page console message (script errors, CSP violations) as "...:CONSOLE(n)] ...".
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_report_renders_with_funnel_and_no_console_errors(small_run: Path, tmp_path: Path) -> None:
    page = small_run / "report.html"
    dom = chromium(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<section id="funnel">' in dom.stdout and "documents left after each step" in dom.stdout
    # The hostile documents are text in the rendered page, not elements.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom.stdout and "<script" not in dom.stdout.lower()
    assert "<img" not in dom.stdout.lower()
    assert console_messages(dom.stderr) == []

    shot = tmp_path / "report.png"
    result = chromium(page, tmp_path, f"--screenshot={shot}")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[1] == 1100
    # Not a blank page: the funnel's bars and text put dark pixels on the white background.
    assert (pixels[..., :3].mean(axis=-1) < 0.5).mean() > 0.005
