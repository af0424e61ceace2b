"""Putting a finished file or folder in place so that it survives a crash of the machine, not only of the process.

Every gristmill output is written under a temporary name and renamed into place, so a killed process leaves
the old file or the new one. After a power cut or a kernel crash, the rename can reach the disk before the
bytes do, and the file is then empty or short. :func:`replace` closes that gap, as databases do: it flushes
the new content to the disk, renames, then flushes the folder that holds the new name.

This module knows nothing about what is written and imports nothing from gristmill. Every local rename into
place goes through :func:`replace`: ``data.storage.atomic_output``, ``checksums``, ``folders.write_record``,
checkpoints, FT folders, token shards and ``predict`` outputs (fsspec URLs have no such guarantee to give).
"""

from __future__ import annotations

import os
from pathlib import Path


def sync_file(path: str | Path) -> None:
    """Flush ``path``'s bytes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(path: str | Path) -> None:
    """Flush a folder's entries (names created, renamed or removed in it) to the disk, where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows opens no folders; some filesystems refuse: the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sync_tree(path: str | Path) -> None:
    """Flush a file, or every file and folder under a folder."""
    path = Path(path)
    if not path.is_dir():
        sync_file(path)
        return
    for folder, _, files in os.walk(path):
        for name in files:
            sync_file(os.path.join(folder, name))
        sync_folder(folder)


def replace(tmp: str | Path, path: str | Path) -> None:
    """``os.replace(tmp, path)`` with ``tmp``'s content on the disk first and the new name after."""
    sync_tree(tmp)
    os.replace(tmp, path)
    sync_folder(Path(path).parent)
