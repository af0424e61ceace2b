"""Executors: where shard tasks run.

An executor maps a picklable function over picklable items and yields results as they finish.
Steps and the pipeline never start processes themselves; they ask the executor, so the same recipe
runs in-process, on local processes, or on a Ray cluster (``gristmill.data.executors.ray``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from gristmill.data.executors.local import ExecutorError, LocalExecutor
from gristmill.errors import require_extra

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    name: str
    workers: int

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Apply ``fn`` to every item; yield results in completion order."""
        ...

    def close(self) -> None: ...


def make_executor(name: str = "local", workers: int = 1, address: str | None = None, **options: Any) -> Executor:
    if name == "local":
        return LocalExecutor(workers=workers)
    if name == "ray":
        require_extra("ray", "--executor ray", "ray")
        from gristmill.data.executors.ray import RayExecutor

        return RayExecutor(workers=workers, address=address, **options)
    raise ExecutorError(f"unknown executor {name!r}: use local or ray")
