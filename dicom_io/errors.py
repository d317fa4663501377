"""Typed errors that name the file and the reason."""
from __future__ import annotations

from pathlib import Path


class DicomReadError(Exception):
    """A file that cannot be used as DICOM input. Subclasses say why.

    `transient` is True for a file that cannot be read *now* (permissions, an I/O error) but may be readable on a
    later run: its study is held back, never archived without it."""

    transient = False

    def __init__(self, path: Path | str, reason: str, *, study_instance_uid: str | None = None):
        self.path = Path(path)
        self.reason = reason
        self.study_instance_uid = study_instance_uid  # set when the header was readable enough to place the file
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable (Prefect/Dask move errors between processes)
        return (self.__class__, (self.path, self.reason), {"study_instance_uid": self.study_instance_uid})


class NotDicomError(DicomReadError):
    """Not a DICOM file at all."""


class UnreadableNowError(DicomReadError):
    """The file cannot be read at the moment (no permission, an I/O error): nothing is known of its content, so
    whatever study it belongs to waits for it."""

    transient = True


class TruncatedDicomError(DicomReadError):
    """The file ends before its content does."""


class PixelDataMismatchError(DicomReadError):
    """The pixel data does not match what the header declares."""


class UnsupportedPixelsError(DicomReadError):
    """Pixel data that pydicom's plugins cannot decode."""


class MissingAttributeError(DicomReadError):
    """DICOM, but without an attribute medzip needs to place it (a Study/Series/SOP Instance UID), e.g. a DICOMDIR."""


class InvalidHeaderError(DicomReadError):
    """An attribute the reader needs has a value it cannot use (e.g. Rows = 0, NumberOfFrames = '1A')."""


class DuplicateInstanceError(DicomReadError):
    """A second file with a SOP Instance UID already read in the same study; the first file (path order) is kept."""


class DicomWriteError(Exception):
    """Reconstructed pixels or a header that cannot be written as the DICOM file asked for."""
