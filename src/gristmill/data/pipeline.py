"""Steps, stages and the nothing-lost accounting of the corpus refinery.

A :class:`Step` is a small picklable dataclass with one job. It receives a batch of documents and
returns every one of them: kept documents unchanged or rewritten, rejected ones marked with
``doc.reject(step, rule)``. The pipeline checks that no step drops a document.

A :class:`CorpusStep` needs the whole corpus (deduplication, decontamination). It runs in two
phases: ``prepare`` sees every document of the previous stage (through the executor, so it can be
distributed) and writes its decisions to a work folder; then ``process`` applies those decisions
shard by shard like any other step. The pipeline cuts the step list into stages at each corpus step.

This module owns the protocol and the per-shard batch loop; it does not read files or start
processes (that is ``io`` and ``executors``), and it imports no step: the step modules import it and
register themselves; ``recipe.load_builtin_steps`` imports the built-in ones.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gristmill.data.document import Document

if TYPE_CHECKING:
    from gristmill.data.executors import Executor


@dataclass
class StepStats:
    """Counters of one step, summed over shards."""

    docs_in: int = 0
    bytes_in: int = 0
    docs_out: int = 0
    bytes_out: int = 0
    rejected: Counter = field(default_factory=Counter)
    counters: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def count(self, key: str, n: int = 1) -> None:
        """Step-specific counters, for example ``lines_removed`` or ``pii_email``."""
        self.counters[key] += n

    def merge(self, other: StepStats) -> None:
        self.docs_in += other.docs_in
        self.bytes_in += other.bytes_in
        self.docs_out += other.docs_out
        self.bytes_out += other.bytes_out
        self.rejected.update(other.rejected)
        self.counters.update(other.counters)
        self.seconds += other.seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "docs_in": self.docs_in,
            "bytes_in": self.bytes_in,
            "docs_out": self.docs_out,
            "bytes_out": self.bytes_out,
            "rejected": dict(sorted(self.rejected.items())),
            "counters": dict(sorted(self.counters.items())),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepStats:
        return cls(
            docs_in=data["docs_in"],
            bytes_in=data["bytes_in"],
            docs_out=data["docs_out"],
            bytes_out=data["bytes_out"],
            rejected=Counter(data["rejected"]),
            counters=Counter(data["counters"]),
            seconds=data["seconds"],
        )


class Step:
    """One job on a batch of documents. Subclasses are dataclasses whose fields are the recipe parameters."""

    name: ClassVar[str] = "step"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            # Unregistered (user) steps are named after their class: MyFilter -> my_filter.
            cls.name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()

    def setup(self, workdir: Path | None, shard_name: str) -> None:
        """Called before each shard (``part-00012``): load models once, read this shard's decisions.

        ``workdir`` is this step's private folder in the run (where a corpus step's ``prepare`` wrote).
        """

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}


class Filter(Step):
    """A step that keeps or rejects each document on its own; subclasses implement ``check``."""

    def check(self, doc: Document) -> str | None:
        """Return the rule that rejects ``doc`` (for example ``min_words``), or None to keep it."""
        raise NotImplementedError

    def process(self, docs: list[Document], stats: StepStats) -> list[Document]:
        for doc in docs:
            rule = self.check(doc)
            if rule is not None:
                doc.reject(self.name, rule)
        return docs


class CorpusStep(Step):
    """A step that needs the whole corpus before it can decide about one document.

    ``prepare`` reads every shard that the previous stage kept (``shards``, files named
    ``part-NNNNN.parquet``), may use ``executor.map`` to spread work, and writes its decisions under
    ``workdir``. ``setup(workdir, shard_name)`` then loads the decisions for one shard in a worker and
    ``process`` applies them. ``prepare`` must be deterministic and must write its
    results atomically, so that a resumed run can skip it when ``is_prepared`` says so.
    """

    def prepare(self, shards: Sequence[Path], workdir: Path, executor: Executor) -> dict[str, Any]:
        """Build the decisions; returns stats to merge into this step's counters (cluster counts, ...)."""
        raise NotImplementedError

    def is_prepared(self, workdir: Path) -> bool:
        return (workdir / "_PREPARED").exists()


STEP_REGISTRY: dict[str, type[Step]] = {}


def register(name: str) -> Callable[[type[Step]], type[Step]]:
    """Class decorator: make a step available to recipes under ``name``."""

    def wrap(cls: type[Step]) -> type[Step]:
        if name in STEP_REGISTRY and STEP_REGISTRY[name] is not cls:
            raise ValueError(f"step name {name!r} registered twice")
        cls.name = name
        STEP_REGISTRY[name] = cls
        return cls

    return wrap


def text_bytes(docs: Iterable[Document]) -> int:
    return sum(len(d.text.encode("utf-8", "surrogatepass")) for d in docs)


def run_steps(
    docs: list[Document], steps: Sequence[Step], stats: Sequence[StepStats]
) -> tuple[list[Document], list[Document]]:
    """Run one batch through ``steps``; return (kept, rejected). Each document lands in exactly one."""
    rejected: list[Document] = []
    alive = [d for d in docs if not d.rejected]
    rejected.extend(d for d in docs if d.rejected)
    for step, st in zip(steps, stats):
        if not alive:
            break
        n_in = len(alive)
        st.docs_in += n_in
        st.bytes_in += text_bytes(alive)
        t0 = time.perf_counter()
        out = step.process(alive, st)
        st.seconds += time.perf_counter() - t0
        if len(out) != n_in:
            raise AssertionError(f"step {step.name} returned {len(out)} documents for {n_in}: steps must not drop")
        alive = []
        for d in out:
            if d.rejected:
                # Reasons like ``minhash_dedup:dup_of=<id>`` carry a value; stats count the rule before '='.
                st.rejected[d.reason.split("=", 1)[0]] += 1
                rejected.append(d)
            else:
                alive.append(d)
        st.docs_out += len(alive)
        st.bytes_out += text_bytes(alive)
    return alive, rejected


def split_stages(steps: Sequence[Step]) -> list[list[Step]]:
    """Cut the step list so that each stage starts with at most one corpus step.

    Stage 1 reads the input shard by shard and never starts with a corpus step (``prepare`` reads the
    output of the stage before it). When the recipe starts with one (a dedup-only recipe), stage 1 has
    no steps: it only reads and stages the input for the corpus step's stage 2.
    """
    stages: list[list[Step]] = [[]]
    for step in steps:
        if isinstance(step, CorpusStep) and (stages[-1] or len(stages) == 1):
            stages.append([])
        stages[-1].append(step)
    return stages


def batched(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
