"""Corpus-wide steps: deduplication and decontamination (each a ``CorpusStep``).

Importing this package registers the built-in corpus steps: ``exact_dedup``, ``minhash_dedup``,
``line_dedup`` and ``decontaminate``. Shared machinery: ``text`` (tokens and hashes), ``shuffle``
(on-disk partitions, positions, union-find) and ``decisions`` (per-shard reject lists).
"""

from gristmill.data.dedup import decontaminate, exact, lines, minhash  # noqa: F401
