"""Atomic file placement: temporary siblings, fsync, rename, and moves between the pipeline's folders."""
from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
from pathlib import Path

TEMP_MARK = ".tmp-"
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def temp_sibling(final: Path) -> Path:
    """A hidden, unique name in the same folder as `final` (same filesystem, so os.replace is atomic)."""
    return final.parent / f".{final.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"


def is_temp_name(name: str) -> bool:
    """True for names made by temp_sibling: never a finished archive."""
    return name.startswith(".") and TEMP_MARK in name


_TEMP_RE = re.compile(r"^\..+\.tmp-(?P<pid>[0-9]+)-[0-9a-f]+$")


def stale_temp_files(folder: str | Path) -> list[Path]:
    """Temporary files in `folder` left by writers that no longer run (crashed): safe to delete."""
    out = []
    folder = Path(folder)
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        m = _TEMP_RE.match(p.name)
        if m is None or not p.is_file():
            continue
        try:
            os.kill(int(m["pid"]), 0)
        except ProcessLookupError:
            out.append(p)
        except (PermissionError, OverflowError):
            pass
    return sorted(out)


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete what stale_temp_files finds; returns the removed paths."""
    removed = []
    for p in stale_temp_files(folder):
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def create_private(path: Path) -> None:
    """Create an empty file readable and writable by the owner only; fail if anything is already there."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
    os.close(fd)


def ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable (POSIX needs the directory itself fsynced)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path, *, overwrite: bool = False) -> Path:
    """fsync `tmp`, rename it to `final` (same folder) and fsync the folder."""
    fsync_file(tmp)
    if not overwrite and final.exists():
        raise FileExistsError(f"{final} already exists")
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final


def atomic_move(src: str | Path, dst_dir: str | Path, *, name: str | None = None, overwrite: bool = False) -> Path:
    """Move a finished file into `dst_dir` so that it is either wholly there or not there at all.

    Same filesystem: one rename, then both folders are fsynced. Across filesystems: copy to a temporary sibling
    in `dst_dir`, fsync, rename, fsync, and only then remove the source. Returns the new path.
    """
    src = Path(src)
    dst_dir = Path(dst_dir)
    ensure_private_dir(dst_dir)
    dst = dst_dir / (name or src.name)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: nothing to move")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists; refusing to overwrite it with {src}")
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = temp_sibling(dst)
        try:
            create_private(tmp)
            shutil.copyfile(src, tmp)
            publish(tmp, dst, overwrite=overwrite)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        src.unlink()
    fsync_dir(dst_dir)
    fsync_dir(src.parent)
    return dst


def safe_archive_name(study_uid: str, version: int) -> str:
    """A file name for a study's archive that no UID can turn into a path ("../", "/", very long, odd bytes)."""
    if _UID_RE.match(study_uid) and len(study_uid) <= 64:
        stem = study_uid
    else:
        stem = "study-" + hashlib.sha256(study_uid.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return f"{stem}.v{int(version)}.h5"
