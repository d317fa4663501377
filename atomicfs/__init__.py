"""Atomic file placement for the whole project: a file is either wholly at its final name or not there at all.

Writers fill a hidden, unique temporary sibling (same folder, so same filesystem), fsync it, rename it over the final
name and fsync the folder (POSIX needs the folder itself fsynced to make the rename durable). Readers that skip hidden
names never see a half file; a crash leaves at most a temporary that `remove_stale_temp_files` can delete.
Standard library only.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from pathlib import Path

__all__ = [
    "TEMP_MARK",
    "atomic_move",
    "atomic_write",
    "create_private",
    "ensure_private_dir",
    "fsync_dir",
    "free_bytes",
    "fsync_file",
    "is_temp_name",
    "publish",
    "remove_stale_temp_files",
    "replace_durably",
    "stale_temp_files",
    "temp_sibling",
]

TEMP_MARK = ".tmp-"
_TEMP_RE = re.compile(r"^\..+\.tmp-(?P<pid>[0-9]+)-[0-9a-f]+$")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def temp_sibling(final: str | Path) -> Path:
    """A hidden, unique name in the same folder as `final` (same filesystem, so os.replace is atomic)."""
    final = Path(final)
    return final.parent / f".{final.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"


def is_temp_name(name: str) -> bool:
    """True for names made by temp_sibling: never a finished file."""
    return name.startswith(".") and TEMP_MARK in name


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


def create_private(path: str | Path) -> None:
    """Create an empty file readable and writable by the owner only; fail if anything is already there."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, 0o600)
    os.close(fd)


def ensure_private_dir(path: str | Path) -> None:
    """Create `path` (and parents) with mode 0700 where missing; an existing folder is left as it is."""
    Path(path).mkdir(mode=0o700, parents=True, exist_ok=True)


def free_bytes(folder: str | Path) -> int:
    """Bytes an unprivileged writer may still put on the filesystem of `folder` (or of its nearest existing parent)."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def _no_space(exc: OSError, folder: Path, what: str) -> OSError:
    """An ENOSPC/EDQUOT that names the folder (the raw one names a hidden temporary file, or nothing)."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return exc
    return OSError(exc.errno, f"no space left in {folder} while {what} ({free_bytes(folder)} bytes free)", str(folder))


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: str | Path, final: str | Path, *, overwrite: bool = False) -> Path:
    """fsync the finished file `tmp`, rename it to `final` (same folder) and fsync the folder.

    With overwrite=False an existing `final` is refused (FileExistsError) and `tmp` is left for the caller.
    """
    tmp, final = Path(tmp), Path(final)
    fsync_file(tmp)
    if not overwrite and final.exists():
        raise FileExistsError(f"{final} already exists")
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final


publish = replace_durably  # the older name, kept for callers outside this package


def atomic_write(path: str | Path, data: bytes | str, *, mode: int = 0o600) -> Path:
    """Write `data` (str as UTF-8) to `path` atomically, replacing what is there; the file gets exactly `mode`.

    The temporary sibling is removed when anything fails, so no partial file is ever left behind."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    tmp = temp_sibling(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), mode)  # exact mode, whatever the umask
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise _no_space(exc, path.parent, f"writing {path.name} ({len(raw)} bytes)") from None
    fsync_dir(path.parent)
    return path


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
        size = src.stat().st_size
        if size > free_bytes(dst_dir):  # refuse before copying a byte: a half copy would only fill the disk
            raise OSError(errno.ENOSPC, f"no space left in {dst_dir} for {src.name} ({size} bytes, "
                                        f"{free_bytes(dst_dir)} free); nothing was moved", str(dst_dir)) from None
        tmp = temp_sibling(dst)
        try:
            create_private(tmp)
            shutil.copyfile(src, tmp)
            replace_durably(tmp, dst, overwrite=overwrite)
        except OSError as exc2:
            tmp.unlink(missing_ok=True)
            raise _no_space(exc2, dst_dir, f"copying {src.name} in") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        src.unlink()
    fsync_dir(dst_dir)
    fsync_dir(src.parent)
    return dst
