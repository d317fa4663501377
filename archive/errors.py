"""Typed errors of the archive package. Every message names the file and what is wrong."""
from __future__ import annotations

from pathlib import Path


class ArchiveError(Exception):
    """Base class: an archive file that cannot be used as asked."""

    def __init__(self, path: str | Path, reason: str, item: str | None = None):
        self.path = Path(path)
        self.reason = reason
        self.item = item  # e.g. "series 0 / instance 3 / frame 1 (SOP 1.2.3)" when one item is at fault
        where = f"{self.path}" + (f" [{item}]" if item else "")
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # picklable (Prefect and Dask move errors between processes)
        return (self.__class__, (self.path, self.reason, self.item))


class ForeignArchiveError(ArchiveError):
    """Not a medzip archive at all (not HDF5, or HDF5 without our format marker)."""


class UnsupportedVersionError(ArchiveError):
    """A medzip archive written in a format version this code does not read."""


class DamagedArchiveError(ArchiveError):
    """A medzip archive whose bytes or structure are not what the writer left (corruption, truncation)."""


class IncompleteArchiveError(DamagedArchiveError):
    """A file the writer never finished (crash while writing, or a leftover temporary file)."""


class ChecksumMismatchError(DamagedArchiveError):
    """Stored bytes (payload, header, verbatim object) or decoded values that fail their SHA-256."""


class ArchiveWriteError(ArchiveError):
    """Misuse of the writer (duplicate frame, missing frames, bad value) — nothing is left at the final path."""


class NoSpaceError(ArchiveWriteError):
    """The disk of `path` (a folder) is full, or would be by this study: nothing partial is left behind, and the
    study can be archived again once space is freed (it is no fault of the study)."""


class CatalogError(Exception):
    """A catalog operation that cannot be done (unknown archive, invalid status transition, …)."""
