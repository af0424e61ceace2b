"""The documents of an input, planned into shards and read shard by shard, as a run reads them."""

from __future__ import annotations

from gristmill.data.document import Document
from gristmill.data.inputs import InputSpec
from gristmill.data.readers import read_shard
from gristmill.data.shards import plan_shards


def documents_of(spec: InputSpec) -> list[Document]:
    plan = plan_shards(spec)
    assert not plan.errors, plan.errors
    return [d for shard in plan.shards for d in read_shard(shard, spec)]
