"""Checksums of the files gristmill writes and later trusts: token shards and model weights.

A file's record is its size and its xxh3-64 hash (``{"bytes": N, "xxh3_64": "hex"}``). Token shards
keep theirs in ``TOKENS/manifest.json``; weights keep theirs in ``checksums.json`` beside them (RUN/,
each checkpoint folder, FT/), written whenever the weights are. Checking the size costs one ``stat``
and is always done; the hash reads the whole file (several GB/s) and is done where the file is read
anyway (weights, on every load) or on request / first use (shards). A file without a record (written
by an older gristmill) is only checked for what its reader can see.

This module owns hashing and the sidecar file; it knows nothing of shards or models.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import xxhash

from gristmill import durable
from gristmill.errors import BadDataError, GristmillError

SIDECAR = "checksums.json"
_PREVIOUS = ".previous"
_CHUNK = 1 << 20


class CorruptFileError(GristmillError, BadDataError, ValueError):
    """A file whose size or content no longer matches the checksum recorded when it was written."""


def digest(path: str | Path) -> str:
    """xxh3-64 of the file's bytes, as 16 hex digits (read in 1 MiB chunks)."""
    h = xxhash.xxh3_64()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def describe(path: str | Path) -> dict[str, Any]:
    """The record of a file as it is now: ``{"bytes", "xxh3_64"}``."""
    return {"bytes": os.path.getsize(path), "xxh3_64": digest(path)}


def verify(path: str | Path, record: dict[str, Any], full: bool = True, what: str = "") -> None:
    """Raise :class:`CorruptFileError` when ``path`` differs from ``record`` (size always; hash if ``full``)."""
    path = Path(path)
    fix = what or "it was changed or damaged after it was written; restore or recreate it"
    if not path.is_file():
        raise CorruptFileError(f"{path} is missing ({fix})")
    size = path.stat().st_size
    if "bytes" in record and size != int(record["bytes"]):
        raise CorruptFileError(f"{path} has {size:,} bytes but {int(record['bytes']):,} were written ({fix})")
    if full and record.get("xxh3_64") and digest(path) != record["xxh3_64"]:
        raise CorruptFileError(f"{path}: content does not match its checksum (xxh3-64 {record['xxh3_64']}): {fix}")


def record_sidecar(path: str | Path) -> None:
    """Add ``path``'s record to ``checksums.json`` in its folder (atomically; other entries kept)."""
    path = Path(path)
    records = _read_sidecar(path.parent / SIDECAR)
    records[path.name] = describe(path)
    records.pop(path.name + _PREVIOUS, None)
    _write_sidecar(path.parent / SIDECAR, records)


def replace_recorded(tmp: str | Path, path: str | Path) -> None:
    """``os.replace(tmp, path)`` and record the new content, so that a kill at any point leaves a pair
    that verifies: the new record is written (the old one kept as previous) before the rename, and the
    old one dropped after it."""
    tmp, path = Path(tmp), Path(path)
    sidecar = path.parent / SIDECAR
    records = _read_sidecar(sidecar)
    if path.name in records:
        records[path.name + _PREVIOUS] = records[path.name]
    records[path.name] = describe(tmp)
    _write_sidecar(sidecar, records)
    durable.replace(tmp, path)
    records.pop(path.name + _PREVIOUS, None)
    _write_sidecar(sidecar, records)


def verify_sidecar(path: str | Path, full: bool = True) -> bool:
    """Check ``path`` against ``checksums.json`` beside it; False when it has no record there."""
    path = Path(path)
    records = _read_sidecar(path.parent / SIDECAR)
    record = records.get(path.name)
    if record is None:
        return False
    try:
        verify(path, record, full)
    except CorruptFileError:
        previous = records.get(path.name + _PREVIOUS)  # killed between recording and renaming
        if previous is None:
            raise
        verify(path, previous, full)
    return True


def _write_sidecar(sidecar: Path, records: dict[str, Any]) -> None:
    tmp = sidecar.with_name(f".{SIDECAR}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    durable.replace(tmp, sidecar)


def _read_sidecar(sidecar: Path) -> dict[str, Any]:
    if not sidecar.is_file():
        return {}
    try:
        records = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{sidecar} is damaged ({exc}); delete it to load the files without checking") from None
    if not isinstance(records, dict):
        raise CorruptFileError(f"{sidecar} is not a JSON object; delete it to load the files without checking")
    return records
