"""Experiments that run the other packages' verbs and compare their outcomes (``gristmill ablate``)."""
