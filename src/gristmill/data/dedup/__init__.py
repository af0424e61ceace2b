"""Corpus-wide steps: deduplication and decontamination (each a ``CorpusStep``).

Its modules register the built-in corpus steps ``exact_dedup``, ``minhash_dedup``, ``line_dedup``
and ``decontaminate`` (``gristmill.data.recipe.load_builtin_steps`` imports them). Shared machinery:
``text`` (tokens and hashes), ``shuffle`` (on-disk partitions, positions, union-find) and
``decisions`` (per-shard reject lists).
"""
