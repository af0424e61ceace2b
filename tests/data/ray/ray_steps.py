"""Test-only steps and task functions for the Ray executor tests.

They live in a module of their own (put on ``PYTHONPATH``) because Ray workers unpickle steps and
functions by importing their module; recipes name the steps as ``ray_steps:KillWorkerOnce``.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from gristmill.data.document import Document
from gristmill.data.pipeline import Step, StepStats


def _claim(path: str, text: str) -> bool:
    """Create ``path`` if it does not exist yet; True for exactly one caller, across processes."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True


@dataclass
class KillWorkerOnce(Step):
    """Keeps every document; SIGKILLs its own worker process on the second batch of ``shard``, once.

    ``marker`` is created before the kill (with the killed pid), so the retried task passes through.
    """

    shard: str = "part-00002"
    marker: str = ""
    _shard_name: str = field(default="", init=False, repr=False)
    _batches: int = field(default=0, init=False, repr=False)

    def setup(self, workdir: Path | None, shard_name: str) -> None:
        self._shard_name = shard_name
        self._batches = 0

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        self._batches += 1
        if self._shard_name == self.shard and self._batches == 2 and _claim(self.marker, str(os.getpid())):
            os.kill(os.getpid(), signal.SIGKILL)
        return docs

    def params(self) -> dict[str, str]:
        return {"shard": self.shard, "marker": self.marker}


@dataclass
class Gate(Step):
    """Keeps every document; on ``shard``, while ``gate`` exists, writes ``reached`` and waits (at most 60 s)."""

    shard: str = "part-00003"
    gate: str = ""
    reached: str = ""
    _shard_name: str = field(default="", init=False, repr=False)

    def setup(self, workdir: Path | None, shard_name: str) -> None:
        self._shard_name = shard_name

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        if self._shard_name == self.shard and os.path.exists(self.gate):
            Path(self.reached).write_text(str(os.getpid()))
            deadline = time.monotonic() + 60
            while os.path.exists(self.gate) and time.monotonic() < deadline:
                time.sleep(0.05)
        return docs

    def params(self) -> dict[str, str]:
        return {"shard": self.shard, "gate": self.gate, "reached": self.reached}


def double(x: int) -> tuple[int, int]:
    """Task for the executor tests: the doubled item and the process that computed it."""
    return 2 * x, os.getpid()


def add(a: int, b: int) -> int:
    return a + b


def fail_on_three(args: tuple[int, str]) -> int:
    """Raises for item 3 after logging the attempt to ``log`` (to count how often Ray ran it)."""
    x, log = args
    if x == 3:
        with open(log, "a") as f:
            f.write("attempt\n")
        raise ValueError("item 3 is bad")
    return x


def always_crash(x: int) -> int:
    """Kills its own worker every time, so Ray's retries run out."""
    os.kill(os.getpid(), signal.SIGKILL)
    return x
