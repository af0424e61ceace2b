"""Running ``gristmill quickstart --fast`` in a subprocess, shared by the English and Chinese end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_fast_quickstart(out: Path, *args: str, timeout: int) -> tuple[str, dict[str, Any]]:
    """The printed output and ``summary.json`` of a fast quickstart into ``out``; fails the test if it fails.

    One thread: on a machine shared with other jobs, PyTorch's threads spin-waiting for each other's cores
    make tiny models many times slower. Own session, so a timeout can stop the whole tree. Wide columns, so
    that printed paths are not wrapped.
    """
    env = {**os.environ, "COLUMNS": "300"}
    proc = subprocess.Popen([sys.executable, "-m", "gristmill", "quickstart", *args, "--fast", "--threads", "1",
                             "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the fast quickstart {' '.join(args)} took more than {timeout}s:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]
    return output, json.loads((out / "summary.json").read_text())
