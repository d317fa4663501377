"""Disk space for archives: refuse a study that cannot fit before any work, turn a disk that fills mid-write into
one typed error naming the folder, and close a half-written HDF5 file without writing another byte.

Why the last one matters: HDF5 caches dataset chunks and metadata and writes them when an object is released or the
file is closed. On a full disk those writes fail inside h5py's ObjectID deallocation (printed and ignored, then a
segmentation fault when the file is finally closed). The writer therefore flushes each dataset as it writes it (the
failure surfaces as an exception at the call that wrote the bytes), and a file being discarded is closed with its
descriptor pointed at a throw-away memory file, so HDF5's closing flush cannot fail and nothing touches the disk.
"""
from __future__ import annotations

import errno
import functools
import os
import re
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

from archive.errors import ArchiveError, ArchiveWriteError, CatalogError, NoSpaceError
from atomicfs import atomic_move as _atomic_move
from atomicfs import free_bytes

_NO_SPACE_RE = re.compile(r"errno\s*=\s*(28|122)\b|No space left on device|Disk quota exceeded|database or disk is full")


def is_no_space(exc: BaseException) -> bool:
    """True for an OSError ENOSPC/EDQUOT, or an h5py error whose HDF5 message reports one."""
    if isinstance(exc, NoSpaceError):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, (OSError, RuntimeError, CatalogError)) and bool(_NO_SPACE_RE.search(str(exc)))


def no_space(folder: str | Path, what: str, exc: BaseException | None = None) -> NoSpaceError:
    folder = Path(folder)
    try:
        free = f"{free_bytes(folder)} bytes free"
    except OSError:
        free = "free space unknown"
    return NoSpaceError(folder, f"no space left on the disk of this folder while {what} ({free})")


def check_room(needs: Mapping[str | Path, int]) -> None:
    """Refuse (NoSpaceError naming the folder) when any filesystem lacks the room asked for: `needs` maps folders
    to bytes; folders on one filesystem add up."""
    by_dev: dict[int, tuple[Path, int]] = {}
    for folder, need in needs.items():
        folder = Path(folder)
        probe = _existing(folder)
        dev = probe.stat().st_dev
        first, total = by_dev.get(dev, (folder, 0))
        by_dev[dev] = (first, total + int(need))
    for folder, need in by_dev.values():
        free = free_bytes(folder)
        if need > free:
            raise NoSpaceError(folder, f"not enough free space for this study: it may need up to {need} bytes "
                                       f"here, {free} are free; nothing was written")


def check_study_room(work: str | Path, released: str | Path, archive_bound: int) -> None:
    """Refuse a study before any work when its archive cannot fit: `archive_bound` is the most its archive can take
    (the caller's estimate, e.g. its stored values uncompressed). The work folder holds the archive and, while the
    verify step rewrites it, a second copy; released/ needs a copy of its own only on another filesystem (else the
    release is a rename)."""
    work, released = Path(work), Path(released)
    needs: dict[Path, int] = {work: 2 * archive_bound}
    if _existing(released).stat().st_dev != _existing(work).stat().st_dev:
        needs[released] = archive_bound
    check_room(needs)


def _existing(folder: Path) -> Path:
    p = folder.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def discard_and_close(h5) -> None:
    """Close an h5py File that is being thrown away, without any write reaching its disk (see module doc)."""
    try:
        valid = bool(h5.id.valid)
    except Exception:
        return
    if not valid:
        return
    try:
        fd = h5.id.get_vfd_handle()
        sink = os.memfd_create("medzip-discard") if hasattr(os, "memfd_create") else os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(sink, fd)  # HDF5 keeps its descriptor number; its writes now go to memory
        finally:
            os.close(sink)
    except Exception:
        pass  # no descriptor to swap (another driver): a plain close is all there is
    try:
        h5.close()
    except Exception:
        pass


def atomic_move(src: str | Path, dst_dir: str | Path, **kw) -> Path:
    """atomicfs.atomic_move, with a full destination disk as NoSpaceError naming the folder (flows move archives)."""
    try:
        return _atomic_move(src, dst_dir, **kw)
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(dst_dir, f"moving {Path(src).name} there") from None
        raise


@contextmanager
def writing(final_path: Path, what: str):
    """HDF5/OS write failures of the archive at `final_path` as typed errors; a full disk as NoSpaceError naming
    the folder."""
    try:
        yield
    except ArchiveError:
        raise
    except (OSError, RuntimeError) as exc:
        if is_no_space(exc):
            raise no_space(final_path.parent, f"writing {final_path.name}") from None
        raise ArchiveWriteError(final_path, f"{what}: write failed: {type(exc).__name__}: {str(exc)[:300]}") from None


def guarded(method):
    """An ArchiveWriter method run inside `writing` (its final path names the folder)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with writing(self.final_path, method.__name__):
            return method(self, *args, **kwargs)
    return wrapper
