"""What a run read: the size and a sampled hash of every input, so that a resume refuses changed input.

A resumed run skips the shards it finished; if an input file changed in between, the finished shards
came from the old content and the rest would come from the new one: documents lost, ids both kept and
rejected. So a run records each input's fingerprint when it starts (``OUT/_work/inputs.json``) and a
resume compares. The fingerprint is cheap on any size and any filesystem: the size plus an xxh64 of
eight 64 KiB blocks spread over the file (the whole file when it is small); a folder of text files is
fingerprinted by its listing (relative names and sizes).

This module only reads; it must not import anything above ``gristmill.data``.
"""

from __future__ import annotations

import xxhash

import gristmill.data.storage as storage

BLOCK = 1 << 16
SAMPLES = 8


def fingerprint(path: str) -> list[int | str]:
    """``[size, hash]`` of a file, ``[files, hash]`` of a folder."""
    h = xxhash.xxh64()
    if storage.isdir(path):
        files = storage.files_under(path)
        for f in files:
            h.update(f"{f[len(path):]}\0{storage.size(f)}\n".encode())
        return [len(files), h.hexdigest()]
    if storage.is_url(path):
        # One metadata request instead of eight ranged reads: object stores give a content hash (ETag, md5)
        # or at least a modification time with the size.
        fs, inner = storage.filesystem(path)
        info = fs.info(inner)
        version = next((str(info[k]) for k in ("ETag", "etag", "md5", "md5Hash", "crc32c", "mtime", "LastModified",
                                                "last_modified", "created") if info.get(k)), "")
        h.update(version.encode())
        return [int(info.get("size") or 0), h.hexdigest()]
    n = storage.size(path)
    with storage.open_file(path, "rb") as f:
        if n <= SAMPLES * BLOCK:
            h.update(f.read())
        else:
            for i in range(SAMPLES):
                f.seek(i * (n - BLOCK) // (SAMPLES - 1))
                h.update(f.read(BLOCK))
    return [n, h.hexdigest()]


def input_fingerprints(paths: list[str]) -> dict[str, list[int | str]]:
    """The fingerprint of every input path that exists (a missing one is reported by the planner)."""
    return {p: fingerprint(p) for p in paths if storage.exists(p)}


class InputChanged(Exception):
    """An input differs from what the run being resumed read."""


def check_inputs_unchanged(recorded: dict[str, list[int | str]], paths: list[str]) -> None:
    """Raise :class:`InputChanged` naming the first input that is new, gone or different."""
    now = input_fingerprints(paths)
    advice = "a resumed run must read the same input: restore it, or start again with --overwrite"
    for path in sorted(set(recorded) | set(now)):
        if path not in now:
            raise InputChanged(f"input {path} is gone since the run started; {advice}")
        if path not in recorded:
            raise InputChanged(f"input {path} is new since the run started; {advice}")
        (old_size, old_hash), (size, digest) = recorded[path], now[path]
        if old_size != size:
            unit = "files" if storage.isdir(path) else "bytes"
            raise InputChanged(f"input {path} changed since the run started ({old_size:,} -> {size:,} {unit}); {advice}")
        if old_hash != digest:
            raise InputChanged(f"input {path} changed since the run started (same size, other content); {advice}")
