"""What produced a run: the one helper every run folder's JSON uses to record it.

``provenance()`` returns the gristmill version, the git commit of the source tree when there is one,
the torch and transformers versions (read from package metadata, so a data run never imports torch),
the device, the thread count and the full command line. It imports nothing from gristmill, so every
layer (data, train, serve) may call it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout gristmill is imported from (with ``+dirty`` for local changes), else None."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def _threads() -> int:
    torch = sys.modules.get("torch")
    if torch is not None:
        # Only when the caller already imported torch: its intra-op pool is what a training run used.
        return int(torch.get_num_threads())
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def provenance(device: str = "cpu", threads: int | None = None, workers: int | None = None) -> dict[str, Any]:
    """A JSON-ready record of the software, machine and command that produced a run."""
    record: dict[str, Any] = {
        "gristmill": _version("gristmill") or "unknown",
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "device": device,
        "threads": threads if threads is not None else _threads(),
        # orig_argv holds the interpreter and its flags too (``python -m gristmill run ...``).
        "command": list(getattr(sys, "orig_argv", sys.argv)),
    }
    if workers is not None:
        record["workers"] = workers
    return record
