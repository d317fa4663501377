"""CheckedArchiveFile: opens an HDF5 file as a medzip archive, refusing foreign, damaged, incomplete and temporary
files, and reads attributes and byte strings with every HDF5 failure turned into an ArchiveError naming the item.
ArchiveReader (archive/reader.py) builds the archive's structure on top of it."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np

from archive import layout as L
from archive.checksums import bytes_sha256
from archive.errors import (
    ArchiveError,
    ChecksumMismatchError,
    DamagedArchiveError,
    ForeignArchiveError,
    IncompleteArchiveError,
    UnsupportedVersionError,
)
from archive.records import ArchiveInfo, Limits
from atomicfs import is_temp_name


class CheckedArchiveFile:
    """An open archive file: format marker, version and completion marker checked on opening (`info`)."""

    def __init__(self, path: str | Path, *, limits: Limits = Limits()):
        self.path = Path(path)
        self.limits = limits
        self._h5: h5py.File | None = None
        self._open()
        try:
            self.info = self._read_info()
        except BaseException:
            self.close()
            raise

    # ---- opening --------------------------------------------------------------------------------------

    def _open(self) -> None:
        p = self.path
        if not p.is_file():
            raise ArchiveError(p, "no such archive file" if not p.exists() else "not a regular file")
        size = p.stat().st_size
        if size == 0:
            raise ForeignArchiveError(p, "empty file, not a medzip archive")
        if size > self.limits.max_file_bytes:
            raise DamagedArchiveError(p, f"file of {size} bytes exceeds the limit of {self.limits.max_file_bytes}")
        with open(p, "rb") as fh:
            head = fh.read(8)
        if head != b"\x89HDF\r\n\x1a\n":
            raise ForeignArchiveError(p, "not an HDF5 file (no HDF5 signature), so not a medzip archive")
        try:
            self._h5 = h5py.File(p, "r", locking=False)
        except OSError as exc:
            msg = str(exc)
            if "truncated file" in msg:
                raise DamagedArchiveError(p, f"truncated file ({msg})") from None
            if "already open for write" in msg or "consistency flags" in msg:
                raise IncompleteArchiveError(p, "the writer never closed this file (crash or write in progress)") from None
            raise DamagedArchiveError(p, f"HDF5 cannot open it: {msg}") from None

    def _read_info(self) -> ArchiveInfo:
        with self._guard("file attributes"):
            a = self._file.attrs
            magic = self._str(a, "format", required=False, where="file attributes")
            if magic != L.MAGIC:
                raise ForeignArchiveError(self.path, f"HDF5 file without the {L.MAGIC!r} format marker")
            version = self._int(a, "format_version", "file attributes")
            if version not in L.SUPPORTED_VERSIONS:
                raise UnsupportedVersionError(
                    self.path, f"format version {version} is not supported (this reader knows {sorted(L.SUPPORTED_VERSIONS)})"
                )
            if "complete" not in a or self._int(a, "complete", "file attributes") != 1:
                raise IncompleteArchiveError(self.path, "no completion marker: the writer never finished this file")
            if is_temp_name(self.path.name):
                raise IncompleteArchiveError(self.path, "a temporary file of the writer, never an archive")
            try:
                meta = json.loads(self._str(a, "meta_json", where="file attributes"))
            except ValueError as exc:
                raise DamagedArchiveError(self.path, f"meta_json is not JSON: {exc}") from None
            counts = {n: self._int(a, n, "file attributes") for n in ("n_series", "n_instances", "n_frames", "n_verbatim", "payload_bytes")}
            for n in ("n_series", "n_instances", "n_frames", "n_verbatim"):
                if not 0 <= counts[n] <= self.limits.max_items:
                    raise DamagedArchiveError(self.path, f"{n} = {counts[n]} outside 0..{self.limits.max_items}")
            return ArchiveInfo(
                path=self.path,
                quality_recorded=bool(self._int(a, "quality_recorded", "file attributes")),
                format_version=version,
                created_utc=self._str(a, "created_utc", where="file attributes"),
                study_uid=self._str(a, "study_instance_uid", where="file attributes"),
                codec=self._str(a, "codec", where="file attributes"),
                mode=self._str(a, "mode", where="file attributes"),
                content_hash=self._str(a, "content_hash", where="file attributes"),
                meta=meta,
                file_bytes=self.path.stat().st_size,
                **counts,
            )

    @property
    def _file(self) -> h5py.File:
        if self._h5 is None:
            raise ArchiveError(self.path, "archive reader is closed")
        return self._h5

    def close(self) -> None:
        if self._h5 is not None:
            try:
                self._h5.close()
            finally:
                self._h5 = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- low-level checked access ---------------------------------------------------------------------

    @contextmanager
    def _guard(self, item: str):
        """Turn HDF5 read failures (metadata checksum, fletcher32, truncation) into DamagedArchiveError."""
        try:
            yield
        except ArchiveError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise DamagedArchiveError(self.path, f"cannot read it: {type(exc).__name__}: {exc}", item) from None

    def _attr(self, attrs, name: str, where: str):
        try:
            return attrs[name]  # one HDF5 call; an `in` check first would double the cost on big archives
        except KeyError:
            raise DamagedArchiveError(self.path, f"attribute {name!r} is missing or unreadable", where) from None

    def _str(self, attrs, name: str, required: bool = True, where: str = "") -> str | None:
        if not required and name not in attrs:
            return None
        v = self._attr(attrs, name, where)
        if isinstance(v, np.ndarray) and v.shape == ():
            v = v[()]
        if not isinstance(v, (bytes, np.bytes_)):
            raise DamagedArchiveError(self.path, f"attribute {name!r} is not a fixed-length string", where)
        return bytes(v).decode("utf-8", "surrogateescape")

    def _int(self, attrs, name: str, where: str) -> int:
        v = self._attr(attrs, name, where)
        if not isinstance(v, (np.integer, int)) or isinstance(v, bool):
            raise DamagedArchiveError(self.path, f"attribute {name!r} is not an integer", where)
        return int(v)

    def _extra(self, attrs, where: str) -> dict[str, Any]:
        if "extra_json" not in attrs:
            return {}
        try:
            return json.loads(self._str(attrs, "extra_json", where=where))
        except ValueError as exc:
            raise DamagedArchiveError(self.path, f"extra_json is not JSON: {exc}", where) from None

    def _numbered(self, group: h5py.Group, where: str) -> list[int]:
        names = list(group.keys())
        if len(names) > self.limits.max_items:
            raise DamagedArchiveError(self.path, f"{len(names)} entries exceed the limit {self.limits.max_items}", where)
        if not all(n.isdigit() and n == str(int(n)) for n in names):
            raise DamagedArchiveError(self.path, f"unexpected entries {sorted(n for n in names if not n.isdigit())[:5]}", where)
        nums = sorted(int(n) for n in names)
        if nums != list(range(len(nums))):
            raise DamagedArchiveError(self.path, f"entries are not numbered 0..{len(nums) - 1}", where)
        return nums

    def _obj(self, path: str):
        """The object at `path`. Never h5py's .get(): it answers None for an object whose metadata fails its
        checksum, which would make a damaged quality table look like an absent one."""
        try:
            return self._file[path]
        except KeyError as exc:
            raise DamagedArchiveError(self.path, f"{path} is missing or unreadable ({exc})") from None

    def _bytes(self, ds_path: str, limit: int, item: str) -> bytes:
        with self._guard(item):
            ds = self._obj(ds_path)
            if not isinstance(ds, h5py.Dataset):
                raise DamagedArchiveError(self.path, f"dataset {ds_path} is missing", item)
            if ds.dtype != np.uint8 or ds.ndim != 1:
                raise DamagedArchiveError(self.path, f"dataset {ds_path} is not 1-D uint8", item)
            if ds.shape[0] > limit:
                raise DamagedArchiveError(self.path, f"{ds.shape[0]} bytes exceed the limit of {limit}", item)
            return ds[()].tobytes() if ds.shape[0] else b""

    def _checked(self, data: bytes, expected: str, what: str, item: str) -> bytes:
        actual = bytes_sha256(data)
        if actual != expected:
            raise ChecksumMismatchError(self.path, f"{what} SHA-256 mismatch (stored {expected[:16]}…, actual {actual[:16]}…)", item)
        return data
