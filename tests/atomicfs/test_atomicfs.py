"""atomicfs: the project's one atomic write, durable rename and move."""
from __future__ import annotations

import errno
import os
import stat

import pytest

import atomicfs


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_bytes_and_text(tmp_path):
    p = atomicfs.atomic_write(tmp_path / "a.bin", b"\x00\x01")
    assert p == tmp_path / "a.bin" and p.read_bytes() == b"\x00\x01"
    atomicfs.atomic_write(p, "héllo")  # replaces, text as UTF-8
    assert p.read_bytes() == "héllo".encode("utf-8")
    assert _names(tmp_path) == ["a.bin"]


def test_atomic_write_mode_is_exact_whatever_the_umask(tmp_path):
    old = os.umask(0o000)
    try:
        p = atomicfs.atomic_write(tmp_path / "private", b"x")
        q = atomicfs.atomic_write(tmp_path / "shared", b"x", mode=0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(q.stat().st_mode) == 0o644


def test_failed_write_leaves_neither_partial_file_nor_temp(tmp_path, monkeypatch):
    final = tmp_path / "study.json"
    final.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError(errno.EIO, "injected")

    monkeypatch.setattr(atomicfs.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="injected"):
        atomicfs.atomic_write(final, b"new contents")
    assert final.read_bytes() == b"old"
    assert _names(tmp_path) == ["study.json"]


def test_failed_rename_removes_the_temp(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError(errno.ENOSPC, "injected")

    monkeypatch.setattr(atomicfs.os, "replace", broken_replace)
    with pytest.raises(OSError, match="no space left in") as exc:  # a full disk names the folder, not the temp
        atomicfs.atomic_write(tmp_path / "x", b"data")
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(tmp_path)
    assert _names(tmp_path) == []


def test_cross_device_move_refused_before_copying_when_it_cannot_fit(tmp_path, monkeypatch):
    src = tmp_path / "a" / "big.bin"
    src.parent.mkdir()
    src.write_bytes(b"x" * 5000)

    def cross_device(a, b):
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(atomicfs.os, "replace", cross_device)
    monkeypatch.setattr(atomicfs, "free_bytes", lambda folder: 4999)
    with pytest.raises(OSError, match="nothing was moved") as exc:
        atomicfs.atomic_move(src, tmp_path / "b")
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(tmp_path / "b")
    assert src.read_bytes() == b"x" * 5000 and _names(tmp_path / "b") == []


def test_atomic_write_fsyncs_the_folder(tmp_path, monkeypatch):
    synced = []
    real = atomicfs.fsync_dir
    monkeypatch.setattr(atomicfs, "fsync_dir", lambda p: (synced.append(p), real(p)))
    atomicfs.atomic_write(tmp_path / "x", b"data")
    assert synced == [tmp_path]


def test_replace_durably_refuses_to_overwrite(tmp_path, monkeypatch):
    synced = []
    real = atomicfs.fsync_dir
    monkeypatch.setattr(atomicfs, "fsync_dir", lambda p: (synced.append(p), real(p)))
    final = tmp_path / "a.h5"
    final.write_bytes(b"first")
    tmp = atomicfs.temp_sibling(final)
    tmp.write_bytes(b"second")
    with pytest.raises(FileExistsError):
        atomicfs.replace_durably(tmp, final)
    assert final.read_bytes() == b"first" and tmp.exists() and synced == []
    assert atomicfs.replace_durably(tmp, final, overwrite=True) == final
    assert final.read_bytes() == b"second" and not tmp.exists() and synced == [tmp_path]
    assert atomicfs.publish is atomicfs.replace_durably


def test_temp_names_are_hidden_unique_and_recognised(tmp_path):
    a, b = atomicfs.temp_sibling(tmp_path / "s.h5"), atomicfs.temp_sibling(tmp_path / "s.h5")
    assert a != b and a.parent == tmp_path and a.name.startswith(".")
    assert atomicfs.is_temp_name(a.name) and not atomicfs.is_temp_name("s.h5")


def test_stale_temps_of_dead_writers_only(tmp_path):
    dead = tmp_path / f".x.h5{atomicfs.TEMP_MARK}999999999-abcd1234"
    dead.write_bytes(b"")
    live = atomicfs.temp_sibling(tmp_path / "y.h5")
    live.write_bytes(b"")
    assert atomicfs.stale_temp_files(tmp_path) == [dead]
    assert atomicfs.remove_stale_temp_files(tmp_path) == [dead]
    assert _names(tmp_path) == [live.name]
    assert atomicfs.stale_temp_files(tmp_path / "missing") == []


def test_create_private_refuses_existing(tmp_path):
    p = tmp_path / "f"
    atomicfs.create_private(p)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        atomicfs.create_private(p)


def test_atomic_move_same_and_cross_device(tmp_path, monkeypatch):
    src = tmp_path / "in" / "a.h5"
    src.parent.mkdir()
    src.write_bytes(b"A")
    moved = atomicfs.atomic_move(src, tmp_path / "out")
    assert moved.read_bytes() == b"A" and not src.exists()
    with pytest.raises(FileExistsError):
        src.write_bytes(b"B")
        atomicfs.atomic_move(src, tmp_path / "out")
    real = os.replace
    calls = []

    def cross_device_once(a, b):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "cross-device")
        return real(a, b)

    monkeypatch.setattr(atomicfs.os, "replace", cross_device_once)
    moved = atomicfs.atomic_move(src, tmp_path / "out", name="b.h5")
    assert moved.read_bytes() == b"B" and not src.exists()
    assert _names(tmp_path / "out") == ["a.h5", "b.h5"]
