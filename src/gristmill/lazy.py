"""Lazy public names for a package's ``__init__``: ``from gristmill.train import finetune`` imports torch then, not before.

``gristmill.cli`` imports the packages whose verbs it registers; their ``__init__`` must stay cheap (no torch,
no onnxruntime, no pyarrow or tokenizers), yet ``gristmill.data``, ``gristmill.tokenizer``, ``gristmill.model``,
``gristmill.train`` and ``gristmill.serve`` name their public API in ``__all__``. :func:`lazy_exports` gives such
a package the module-level ``__getattr__`` and ``__dir__`` (PEP 562) that import a name's module on first use.
This module imports nothing from gristmill.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose public ``name`` lives in module ``exports[name]``."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)  # the next look-up is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
