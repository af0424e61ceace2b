"""Local executor: shard tasks on a pool of worker processes on this machine (in-process for one worker).

Workers start from a fork server, not by forking the caller: the caller has threads by then (pyarrow, tokenizers,
torch), and a fork copies their locks and heap mid-update, which once killed a worker with glibc's "invalid chunk
size". As with Python's own spawn and forkserver, each worker imports the script that was run, so a script
that runs gristmill with more than one worker keeps its work under ``if __name__ == "__main__":``.

Workers die with the process that started them, even when it is killed with SIGKILL and cannot clean
up: a thread in each worker waits for that process to end (on a pidfd where Linux has one), and the
fork server exits once its workers have. No orphan keeps memory or the output's lock.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from gristmill.errors import GristmillError

T = TypeVar("T")
R = TypeVar("R")


class ExecutorError(GristmillError, ValueError):
    """An executor that cannot run the work: an unknown name, or a worker process that died under it."""


WORKER_DIED = ("a worker process ended abruptly (killed, out of memory, or it failed to start: what it printed is "
               "above); a script that runs gristmill with more than one worker must do so under "
               "`if __name__ == \"__main__\":`, since each worker imports the script")


def die_with_caller(caller_pid: int) -> None:
    """Run first in each worker: end this process when ``caller_pid``, the process that started the pool, ends.

    Under a fork server the worker's parent is the server, which outlives a killed caller (each worker holds its
    "a client is alive" pipe open), so the worker watches the caller itself; without one (Windows) the caller is
    its parent.
    """
    watch = _watch_parent if os.getppid() == caller_pid else _watch_process
    threading.Thread(target=watch, args=(caller_pid,), daemon=True, name="gristmill-caller-watch").start()


def _watch_process(pid: int, interval: float = 1.0) -> None:
    """Exit when process ``pid`` (not our parent) ends: wait on its pidfd where Linux has one, else poll."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        while _exists(pid):
            time.sleep(interval)
        os._exit(1)
    select.select([handle], [], [])
    os._exit(1)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # POSIX only, as fork servers are (on Windows this would end the process)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        pass
    return True


def _watch_parent(parent_pid: int, interval: float = 1.0) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os._exit(1)


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int = 1):
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        items = list(items)
        if self.workers == 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
            return
        if self._pool is None:
            ctx = mp.get_context("forkserver") if "forkserver" in mp.get_all_start_methods() else None
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=die_with_caller,
                                             initargs=(os.getpid(),))
        try:
            yield from self._stream(fn, items)
        except BrokenProcessPool:
            raise ExecutorError(WORKER_DIED) from None

    def _stream(self, fn: Callable[[T], R], items: list[T]) -> Iterator[R]:
        assert self._pool is not None
        # Keep at most 2 tasks per worker in flight so results stream back and memory stays bounded.
        pending = set()
        queue = iter(items)
        for item in queue:
            pending.add(self._pool.submit(fn, item))
            if len(pending) >= 2 * self.workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(self._pool.submit(fn, nxt))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
