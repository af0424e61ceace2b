"""Where corpus bytes live: local paths, and URLs on any fsspec filesystem (``s3://``, ``gs://``, ``hf://``, ...).

Readers and writers call these functions instead of ``open``/``os.path`` so that input and output
can sit on object storage. A plain path (or ``file://``-less) goes straight to the operating system;
anything with a protocol goes through ``fsspec``, which needs that protocol's package installed
(``s3fs`` for S3, ``gcsfs`` for GCS). Credentials come from the usual places (environment, config
files), as for any fsspec user.

Writes are atomic in both cases: a file is written under a hidden temporary name in its folder and
then moved into place, and every reader of gristmill output skips hidden names. On object stores the
move is a copy, but a half-written object is never visible under its final name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

PathLike = str | Path


def is_url(path: PathLike) -> bool:
    """True when ``path`` names a location on an fsspec filesystem rather than a local path."""
    return "://" in str(path)


def filesystem(path: PathLike) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) for a URL."""
    import fsspec

    return fsspec.core.url_to_fs(str(path))


def _under(base: str, inner_base: str, inner: str) -> str:
    """``inner`` (a path within the filesystem, below ``inner_base``) spelled as a URL below ``base``."""
    return base.rstrip("/") + "/" + inner[len(inner_base.rstrip("/")):].lstrip("/")


def _on(path: PathLike, remote: str, local: Callable[[str], Any], *args: Any, **kwargs: Any) -> Any:
    """``fs.<remote>(inner path, ...)`` for a URL, ``local(path)`` for a local path."""
    if is_url(path):
        fs, inner = filesystem(path)
        return getattr(fs, remote)(inner, *args, **kwargs)
    return local(str(path))


def join(base: PathLike, *parts: str) -> str:
    if is_url(base):
        return "/".join([str(base).rstrip("/"), *parts])
    return str(Path(base, *parts))


def name(path: PathLike) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1] if is_url(path) else Path(path).name


def parent(path: PathLike) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[0] if is_url(path) else str(Path(path).parent)


def absolute(path: PathLike) -> str:
    """A URL as it is, a local path made absolute: how manifests name their sources."""
    return str(path) if is_url(path) else str(Path(path).resolve())


def parquet_file(path: PathLike) -> Any:
    """A ``pyarrow.parquet.ParquetFile``: Arrow's own reader for a local path, an fsspec file for a URL."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(open_file(path, "rb") if is_url(path) else str(path))


def open_file(path: PathLike, mode: str = "rb") -> IO[Any]:
    return _on(path, "open", lambda p: open(p, mode), mode)  # noqa: SIM115


def exists(path: PathLike) -> bool:
    return bool(_on(path, "exists", os.path.exists))


def isdir(path: PathLike) -> bool:
    return bool(_on(path, "isdir", os.path.isdir))


def isfile(path: PathLike) -> bool:
    return bool(_on(path, "isfile", os.path.isfile))


def size(path: PathLike) -> int:
    return int(_on(path, "size", os.path.getsize))


def read_bytes(path: PathLike) -> bytes:
    with open_file(path, "rb") as f:
        return f.read()


def makedirs(folder: PathLike) -> None:
    _on(folder, "makedirs", lambda p: Path(p).mkdir(parents=True, exist_ok=True), exist_ok=True)


def remove(path: PathLike) -> None:
    _on(path, "rm", os.unlink)


def remove_tree(folder: PathLike) -> None:
    if exists(folder):
        _on(folder, "rm", lambda p: shutil.rmtree(p, ignore_errors=True), recursive=True)


def has_magic(pattern: str) -> bool:
    import glob as _glob

    return _glob.has_magic(pattern)


def glob(pattern: str) -> list[str]:
    """Sorted matches of a glob pattern (``**`` recursive), local or URL."""
    if is_url(pattern):
        fs, inner = filesystem(pattern)
        return sorted(fs.unstrip_protocol(p) for p in fs.glob(inner))
    import glob as _glob

    return sorted(_glob.glob(pattern, recursive=True))


def files_under(folder: PathLike) -> list[str]:
    """Every file below ``folder``, recursively, sorted."""
    if is_url(folder):
        fs, inner = filesystem(folder)
        return sorted(_under(str(folder), inner, p) for p in fs.find(inner))
    return sorted(str(p) for p in Path(folder).rglob("*") if p.is_file())


def listdir(folder: PathLike, files_only: bool = False) -> list[str]:
    """Entries directly in ``folder`` (full paths or URLs), sorted; empty when it does not exist.

    ``files_only`` drops folders, from the same listing (one request on an object store, not one per entry).
    """
    if is_url(folder):
        fs, inner = filesystem(folder)
        if not fs.isdir(inner):
            return []
        entries = fs.ls(inner, detail=True)
        return sorted(_under(str(folder), inner, e["name"]) for e in entries
                      if e["name"].rstrip("/") != inner.rstrip("/") and not (files_only and e["type"] != "file"))
    local = Path(folder)
    if not local.is_dir():
        return []
    return sorted(str(p) for p in local.iterdir() if not files_only or p.is_file())


@contextmanager
def atomic_output(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """A file object whose content appears at ``path`` only once the block finishes without error."""
    tmp = join(parent(path), f".{name(path)}.tmp-{os.getpid()}")
    makedirs(parent(path))
    try:
        with open_file(tmp, mode) as f:
            yield f
        if is_url(path):
            fs, inner = filesystem(path)
            fs.mv(filesystem(tmp)[1], inner)
        else:
            os.replace(tmp, path)
    except BaseException:
        if exists(tmp):
            remove(tmp)
        raise


def atomic_write(path: PathLike, write: Callable[[IO[Any]], None], mode: str = "wb") -> None:
    with atomic_output(path, mode) as f:
        write(f)
