"""A finished file or folder reaches the disk before it takes its name, and its new name reaches the disk after."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gristmill import checksums, durable
from gristmill.data import storage


@pytest.fixture
def events(monkeypatch):
    """What was flushed, in order, and whether the final name existed at that moment."""
    seen: list[tuple[str, str, bool]] = []
    final: dict[str, Path] = {}

    def watch(kind: str):
        def record(path: str | Path) -> None:
            seen.append((kind, str(path), final["path"].exists()))
        return record

    monkeypatch.setattr(durable, "sync_file", watch("file"))
    monkeypatch.setattr(durable, "sync_folder", watch("folder"))
    return seen, final


def test_atomic_write_flushes_the_bytes_before_the_rename_and_the_folder_after(tmp_path, events):
    seen, final = events
    final["path"] = tmp_path / "out.json"
    storage.atomic_write_text(final["path"], "{}")
    assert final["path"].read_text() == "{}"
    kind, flushed, existed = seen[0]
    assert kind == "file" and Path(flushed).name.startswith(".out.json.tmp-") and not existed
    assert seen[-1] == ("folder", str(tmp_path), True)


def test_a_replaced_folder_has_every_file_flushed_first(tmp_path, events):
    seen, final = events
    tmp = tmp_path / ".step-10.tmp"
    (tmp / "sub").mkdir(parents=True)
    for name in ("model.safetensors", "state.json", "sub/rng.pt"):
        (tmp / name).write_bytes(b"x")
    final["path"] = tmp_path / "step-10"
    durable.replace(tmp, final["path"])
    files = {Path(p).name for kind, p, existed in seen if kind == "file" and not existed}
    assert files == {"model.safetensors", "state.json", "rng.pt"}
    assert seen[-1] == ("folder", str(tmp_path), True) and (final["path"] / "sub" / "rng.pt").is_file()


def test_recorded_weights_go_through_the_durable_rename(tmp_path, events):
    seen, final = events
    final["path"] = tmp_path / "model.safetensors"
    tmp = tmp_path / ".model.safetensors.tmp"
    tmp.write_bytes(b"weights")
    checksums.replace_recorded(tmp, final["path"])
    assert ("file", str(tmp), False) in seen
    checksums.verify_sidecar(final["path"])


def test_real_flushes_run_on_files_and_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("x")
    durable.replace(tmp_path / "a", tmp_path / "b")
    storage.atomic_write_text(tmp_path / "b" / "g", "y")
    assert sorted(os.listdir(tmp_path / "b")) == ["f", "g"]
