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

import gzip
import io
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from gristmill import __version__, durable
from gristmill.errors import GristmillError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
    from pyarrow.parquet import ParquetFile

PathLike = str | Path


def is_url(path: PathLike) -> bool:
    """True when ``path`` names a location on an fsspec filesystem rather than a local path."""
    return "://" in str(path)


def filesystem(path: PathLike) -> tuple[AbstractFileSystem, str]:
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


def parquet_file(path: PathLike) -> ParquetFile:
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


def open_binary(path: str) -> io.BufferedIOBase:
    """Open a possibly compressed file (``.gz``, ``.zst``), local or URL, for binary reading."""
    if is_url(path):
        import fsspec

        compression = "gzip" if path.endswith(".gz") else "zstd" if path.endswith((".zst", ".zstd")) else None
        return fsspec.open(path, "rb", compression=compression).open()
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if path.endswith((".zst", ".zstd")):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))  # noqa: SIM115
    return open(path, "rb")  # noqa: SIM115


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
    """A file object whose content appears at ``path`` only once the block finishes without error.

    A local file is on the disk before it takes its name (``gristmill.durable``), so a crash of the machine
    also leaves the old file or the new one.
    """
    tmp = join(parent(path), f".{name(path)}.tmp-{os.getpid()}")
    makedirs(parent(path))
    try:
        with open_file(tmp, mode) as f:
            yield f
        if is_url(path):
            fs, inner = filesystem(path)
            fs.mv(filesystem(tmp)[1], inner)
        else:
            durable.replace(tmp, path)
    except BaseException:
        if exists(tmp):
            remove(tmp)
        raise


def atomic_write(path: PathLike, write: Callable[[IO[Any]], None], mode: str = "wb") -> None:
    with atomic_output(path, mode) as f:
        write(f)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` as UTF-8, atomically (a reader sees the old file or the new one, never a part)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# ------------------------------------------------------------------ output folders: marker, lock, the one deletion
#
# Every output folder a gristmill verb creates carries MARKER (kind, created, complete). Deleting an
# output (``--overwrite``) goes through ``remove_output`` alone, which deletes only a folder whose marker
# names the same kind: a user's folder, the current folder or another verb's output is never deleted.
# The marker also says whether the folder is complete, so a downstream verb never takes the output of
# a killed run for a finished one. LOCK lets one process at a time write an output folder.

MARKER = ".gristmill"
LOCK = ".gristmill.lock"
_OWN = (MARKER, LOCK)


class OutputError(GristmillError):
    """An output gristmill must not write or delete, or an input it must not read yet: a user error."""


def _canonical(path: PathLike) -> str:
    """A URL without its trailing slash, a local path with symlinks and ``..`` resolved."""
    return str(path).rstrip("/") if is_url(path) else os.path.realpath(path)


def _inside(inner: str, outer: str) -> bool:
    """``inner`` is ``outer`` or lies below it (both canonical)."""
    sep = "/" if is_url(outer) else os.sep
    return inner == outer or inner.startswith(outer.rstrip(sep) + sep)


def check_not_input(out: PathLike, inputs: Iterable[PathLike | None], flag: str = "--out",
                    inside_folders: bool = False) -> None:
    """Refuse an output that is, or contains, one of ``inputs`` (paths or globs): writing it would destroy them.

    ``inside_folders`` also refuses an output inside an input folder (for readers that walk folders
    recursively, which would read the output back as input).
    """
    target = _canonical(out)
    for item in inputs:
        if item is None:
            continue
        for path in (glob(str(item)) if has_magic(str(item)) else [str(item)]):
            if is_url(path) != is_url(out):
                continue
            source = _canonical(path)
            if _inside(source, target):
                relation = "is" if source == target else "contains"
                raise OutputError(f"{flag} {out} {relation} the input {path}; the output must be a folder of its own")
            if inside_folders and _inside(target, source) and isdir(path):
                raise OutputError(f"{flag} {out} is inside the input folder {path}, which is read recursively; "
                                  "put the output somewhere else")


def check_folder_target(out: PathLike) -> None:
    """Refuse an output path that is an existing file (a folder is expected)."""
    if exists(out) and not isdir(out):
        raise OutputError(f"{out} is a file; the output must be a folder (a new one, or one gristmill made)")


def read_marker(folder: PathLike) -> dict[str, Any] | None:
    import json

    path = join(folder, MARKER)
    try:
        if not isfile(path):
            return None
        data = json.loads(read_bytes(path))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def output_kind(folder: PathLike, legacy: tuple[str, ...] = ()) -> str | None:
    """The kind of gristmill output in ``folder``: its marker's, or ``"legacy"`` when every file named in
    ``legacy`` exists (a folder made before markers), else None."""
    marker = read_marker(folder)
    if marker is not None:
        return str(marker.get("kind"))
    if legacy and all(exists(join(folder, f)) for f in legacy):
        return "legacy"
    return None


def mark_output(folder: PathLike, kind: str, complete: bool = False) -> None:
    """Write the marker that makes ``folder`` a gristmill ``kind`` output (incomplete until ``mark_complete``)."""
    import json
    import time

    old = read_marker(folder) or {}
    created = old.get("created") if old.get("kind") == kind else None
    record = {"kind": kind, "complete": complete, "created": created or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "gristmill": __version__}
    try:
        makedirs(folder)
        atomic_write(join(folder, MARKER), lambda f: f.write(json.dumps(record).encode()))
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}") from None


def mark_complete(folder: PathLike, kind: str) -> None:
    mark_output(folder, kind, complete=True)


def has_content(folder: PathLike) -> bool:
    """True when ``folder`` holds anything besides gristmill's own marker and lock."""
    return any(name(p) not in _OWN for p in listdir(folder))


def removable(folder: PathLike, kind: str, legacy: tuple[str, ...] = ()) -> None:
    """Raise :class:`OutputError` unless ``folder`` is a gristmill ``kind`` output that may be deleted."""
    found = output_kind(folder, legacy)
    if found is None:
        raise OutputError(f"{folder} is not empty and was not made by gristmill (it has no {MARKER} marker); "
                          "refusing to delete it: choose another output folder, or delete it yourself")
    if found not in (kind, "legacy"):
        raise OutputError(f"{folder} holds a gristmill {found} output, not a {kind} output; refusing to delete it")


def remove_output(folder: PathLike, kind: str, legacy: tuple[str, ...] = (), whole: bool = False) -> None:
    """The one place that deletes an output folder (``--overwrite``): its content goes, the folder and its
    lock stay (``whole``: the folder goes too, for a verb that renames a finished folder into place).
    Only a folder whose marker (or ``legacy`` files) shows that gristmill made it as ``kind``."""
    removable(folder, kind, legacy)
    if whole:
        _on(folder, "rm", shutil.rmtree, recursive=True)
        return
    for entry in listdir(folder):
        if name(entry) == LOCK:
            continue
        if isdir(entry):
            _on(entry, "rm", shutil.rmtree, recursive=True)
        else:
            remove(entry)


def remove_stale_temporaries(folder: PathLike) -> int:
    """Delete the hidden ``.NAME.tmp-PID`` files and folders that a killed process left in ``folder``.

    Call it only while holding the folder's lock (or as the only writer), so no live writer loses its file.
    """
    n = 0
    for entry in listdir(folder):
        base = name(entry)
        if base.startswith(".") and ".tmp-" in base:
            if isdir(entry):
                _on(entry, "rm", shutil.rmtree, recursive=True)
            else:
                remove(entry)
            n += 1
    return n


def require_complete(path: PathLike, allow_incomplete: bool = False) -> None:
    """Refuse to read ``path`` when it is (in) a gristmill output whose marker says it is not finished.

    ``path`` may be an output folder or a folder or file inside one (``OUT/kept``, ``OUT/kept/part-0.parquet``).
    """
    if allow_incomplete:
        return
    here = str(path)
    for _ in range(3):
        marker = read_marker(here) if isdir(here) else None
        if marker is None and isfile(join(here, "_work", "recipe.json")):
            # A run output made before markers: stats.json is written last, when the run completes.
            marker = {"kind": "run", "complete": isfile(join(here, "stats.json"))}
        if marker is not None:
            if not marker.get("complete"):
                raise OutputError(f"{here} is an unfinished gristmill {marker.get('kind')} output (killed or still "
                                  "running): finish it with --resume, or pass --allow-incomplete to read it as it is")
            return
        up = parent(here)
        if up == here:
            return
        here = up


@contextmanager
def output_lock(folder: PathLike) -> Iterator[None]:
    """Hold ``folder``'s lock for the block: a second process writing the same output is refused at once.

    The lock file lives in the folder (a URL output locks a file in the local cache instead); it is an
    operating-system lock, so a killed holder releases it.
    """
    from filelock import FileLock, Timeout

    created = False
    if is_url(folder):
        import xxhash

        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gristmill" / "locks"
        cache.mkdir(parents=True, exist_ok=True)
        lock_path = str(cache / f"{xxhash.xxh64_hexdigest(str(folder).rstrip('/').encode())}.lock")
    else:
        check_folder_target(folder)
        created = not os.path.exists(folder)
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
        lock_path = str(Path(folder) / LOCK)
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)  # try once: a second writer is refused, not queued
    except Timeout:
        raise OutputError(f"another gristmill process is writing {folder} (it holds {lock_path}); "
                          "wait for it to finish or stop it") from None
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.release()
        if not is_url(folder) and read_marker(folder) is None:
            # Refused before claiming the folder: leave no lock file (nor a folder made for it) behind.
            Path(lock_path).unlink(missing_ok=True)
            if created and not any(Path(folder).iterdir()):
                Path(folder).rmdir()
