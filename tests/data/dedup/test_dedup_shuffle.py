"""On-disk partitions and the vectorised union-find."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from gristmill.data.dedup.shuffle import (
    cluster_stats,
    connected_components,
    positions,
    read_partition,
    shard_index,
    split_position,
    write_partitioned,
)


def reference_roots(edges: list[tuple[int, int]]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def test_components_match_a_plain_union_find_and_ignore_edge_order() -> None:
    rng = random.Random(3)
    for _ in range(20):
        nodes = rng.sample(range(1, 10**9), 60)
        edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(rng.randint(1, 80))]
        expected = reference_roots(edges)
        arr = np.array(edges, dtype=np.uint64)
        for perm in (arr, arr[::-1], arr[:, ::-1]):
            got_nodes, got_roots = connected_components(perm)
            assert dict(zip(got_nodes.tolist(), got_roots.tolist())) == expected


def test_components_of_a_long_chain_keep_the_smallest() -> None:
    chain = np.array([(i, i + 1) for i in range(1000, 0, -1)], dtype=np.uint64)
    nodes, roots = connected_components(chain)
    assert len(nodes) == 1001 and set(roots.tolist()) == {1}
    assert connected_components(np.zeros((0, 2), np.uint64))[0].size == 0


def test_partitioned_files_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    files = []
    all_rows = []
    for s in range(3):
        rows = rng.integers(0, 2**63, size=(200, 2), dtype=np.uint64)
        write_partitioned(tmp_path / f"part-{s:05d}", rows, 5)
        files.append(tmp_path / f"part-{s:05d}")
        all_rows.append(rows)
    got = np.concatenate([read_partition(files, p, 2) for p in range(5)])
    want = np.concatenate(all_rows)
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, want.tolist()))
    for p in range(5):
        assert (read_partition(files, p, 2)[:, 0] % np.uint64(5) == p).all()


def test_positions_encode_shard_and_row() -> None:
    pos = positions(7, 3)
    shard, row = split_position(pos)
    assert shard.tolist() == [7, 7, 7] and row.tolist() == [0, 1, 2]
    assert shard_index("x/part-00012.parquet") == 12


def test_cluster_stats_counts_sizes() -> None:
    roots = np.array([1, 1, 1, 5, 5, 9, 9, 9, 9, 9, 9], dtype=np.uint64)
    st = cluster_stats(roots)
    assert st["clusters"] == 3 and st["duplicates"] == 8 and st["cluster_size_max"] == 6
    assert st["clusters_size_2"] == 1 and st["clusters_size_3_5"] == 1 and st["clusters_size_6_10"] == 1
