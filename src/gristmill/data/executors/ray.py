"""Ray executor: shard tasks as Ray tasks, on a local Ray instance or an existing Ray cluster.

Owns connecting to Ray (or starting a private local instance), submitting one Ray task per item with
a bounded number in flight, retrying tasks whose worker died, and turning failures Ray gives up on
into a message that says what to do. It does not know what the tasks do: the pipeline's shard
tasks are idempotent (outputs replaced atomically, done-marker last), which is what makes Ray's
at-least-once retries safe. It never stops a cluster it did not start.

Where it connects (``address``):

* ``None``: ``$RAY_ADDRESS`` if set (as under ``ray job submit``), else a private local instance
  with ``workers`` CPUs that ``close()`` shuts down again (``"local"``: always the private instance);
* ``"auto"``: the cluster already running on this machine (``ray start --head`` / a worker node);
* ``"HOST:PORT"``: the head's GCS address; ``"ray://HOST:10001"``: Ray Client.

Workers must be able to import gristmill (and any user step module a recipe names): on one machine
they share the driver's interpreter, working directory and ``sys.path``; on a cluster install the
package on every node or pass ``runtime_env`` (see ``docs/scaling.md``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import ray
import ray.exceptions

from gristmill.errors import GristmillError

T = TypeVar("T")
R = TypeVar("R")


class RayClusterError(GristmillError, RuntimeError):
    """The Ray cluster is unreachable or lost a task past its retries: the user fixes the cluster and resumes."""


# Failures of the machinery rather than of the task's code: Ray already retried them max_retries times.
_INFRA_ERRORS: tuple[type[BaseException], ...] = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OutOfMemoryError,
    ray.exceptions.TaskUnschedulableError,
    ray.exceptions.RuntimeEnvSetupError,
)


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a wrong head address: ``ray.init`` would retry it for ever."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayClusterError(f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayClusterError(f"cannot reach the Ray head at {address} ({exc.strerror or exc}): "
                           "is `ray start --head` running there, and is the port right?") from None


class RayExecutor:
    """Map a function over items as Ray tasks; results come back in completion order.

    ``workers`` is how many tasks run at once (``0`` or less: one per CPU of the cluster). Options:
    ``max_retries`` (times Ray reruns a task whose worker or node died, default 3),
    ``retry_exceptions`` (also rerun tasks that raised, default False: a bug fails fast),
    ``max_in_flight`` (tasks submitted but not yet collected; default ``workers``, or ``2 * workers``
    on a private instance, whose CPU count already caps concurrency), ``num_cpus`` (per task,
    default 1), ``runtime_env``, ``namespace`` and ``scheduling_strategy`` (passed to Ray).
    """

    name = "ray"

    def __init__(
        self,
        workers: int = 1,
        address: str | None = None,
        *,
        max_retries: int = 3,
        retry_exceptions: bool = False,
        max_in_flight: int | None = None,
        num_cpus: float = 1.0,
        runtime_env: dict[str, Any] | None = None,
        namespace: str | None = None,
        scheduling_strategy: str | None = None,
    ):
        # Ray's usage statistics would phone home; gristmill never reaches the network on its own.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        self.max_retries = max_retries
        self.retry_exceptions = retry_exceptions
        self.num_cpus = num_cpus
        self.scheduling_strategy = scheduling_strategy
        self._owns_ray = False
        private = False
        if not ray.is_initialized():
            private = address == "local" or (address is None and not os.environ.get("RAY_ADDRESS"))
            self._connect(None if private else address, private, workers, runtime_env, namespace)
            self._owns_ray = True
        if workers <= 0:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // max(num_cpus, 1e-9)))
        self.workers = workers
        default_in_flight = 2 * workers if private else workers
        self.max_in_flight = max(1, max_in_flight or default_in_flight)

    @staticmethod
    def _connect(address: str | None, private: bool, workers: int, runtime_env: dict[str, Any] | None,
                 namespace: str | None) -> None:
        kwargs: dict[str, Any] = {"runtime_env": runtime_env, "namespace": namespace,
                                  "logging_level": logging.WARNING}
        if private:
            kwargs.update(address="local", num_cpus=max(1, workers), include_dashboard=False)
        elif address is not None:
            kwargs["address"] = address
            if address != "auto":
                _check_reachable(address)
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            where = address or os.environ.get("RAY_ADDRESS") or "auto"
            raise RayClusterError(f"cannot connect to the Ray cluster at {where}: {exc}") from None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Run ``fn(item)`` for each item as a Ray task; items are consumed lazily, at most
        ``max_in_flight`` tasks are outstanding, and results are yielded as tasks finish."""
        options: dict[str, Any] = {"max_retries": self.max_retries, "retry_exceptions": self.retry_exceptions,
                                   "num_cpus": self.num_cpus, "name": _task_name(fn)}
        if self.scheduling_strategy:
            options["scheduling_strategy"] = self.scheduling_strategy
        remote = _apply.options(**options)
        # ``fn`` may be any picklable callable (a partial, a step object): stored once, shared by all its tasks.
        fn_ref = ray.put(fn)
        queue = iter(items)
        pending: list[ray.ObjectRef] = []
        try:
            for item in queue:
                pending.append(remote.remote(fn_ref, item))
                if len(pending) >= self.max_in_flight:
                    break
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                # Refill before handing the result over, so the cluster stays busy while the caller works.
                nxt = next(queue, _END)
                if nxt is not _END:
                    pending.append(remote.remote(fn_ref, nxt))
                yield self._get(ready[0], fn)
        finally:
            for ref in pending:
                # Already finished, or its worker is gone: then there is nothing to cancel.
                with contextlib.suppress(Exception):
                    ray.cancel(ref)

    def _get(self, ref: ray.ObjectRef, fn: Callable[..., R]) -> R:
        try:
            return ray.get(ref)
        except _INFRA_ERRORS as exc:
            raise RayClusterError(
                f"a {_task_name(fn)} task failed on the Ray cluster after {self.max_retries} retries "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
                "finished work is kept: fix the cause and rerun with --resume"
            ) from exc

    def close(self) -> None:
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False


_END = object()


@ray.remote
def _apply(fn: Callable[[T], R], item: T) -> R:
    return fn(item)


def _task_name(fn: Callable[..., Any]) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial
    return getattr(inner, "__name__", None) or type(inner).__name__
