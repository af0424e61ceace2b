"""Corpus-wide steps: deduplication and decontamination (each a ``CorpusStep``).

Importing this package registers the built-in corpus steps.
"""
