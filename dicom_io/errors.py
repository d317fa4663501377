"""Typed errors that name the file and the reason."""
from __future__ import annotations

from pathlib import Path


class DicomReadError(Exception):
    """A file that cannot be used as DICOM input. Subclasses say why."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotDicomError(DicomReadError):
    """Not a DICOM file at all."""


class TruncatedDicomError(DicomReadError):
    """The file ends before its content does."""


class PixelDataMismatchError(DicomReadError):
    """The pixel data does not match what the header declares."""


class UnsupportedPixelsError(DicomReadError):
    """Pixel data that pydicom's plugins cannot decode."""
