"""Frames of stored values from DICOM files, read through dicom_io: what the bench measures and training learns from."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np


@dataclass
class Frame:
    path: Path
    index: int
    modality: str
    bits_stored: int
    bits_allocated: int
    signed: bool
    rescale_slope: float
    values: np.ndarray


def instance(path: Path):
    """dicom_io's Instance for a file with pixels, or (None, why it is not benched)."""
    from dicom_io import DicomReadError, VerbatimObject, read_file

    try:
        obj = read_file(path)
    except DicomReadError as exc:
        return None, f"{type(exc).__name__}: {exc.reason}"
    if isinstance(obj, VerbatimObject):
        return None, f"kept verbatim by dicom_io: {obj.reason}"
    return obj, None


def frames_of(inst) -> Iterator[Frame]:
    """Every frame of one instance as stored values (dicom_io decodes any transfer syntax, one frame at a time)."""
    from dicom_io import iter_frames

    for i, values in enumerate(iter_frames(inst)):
        yield Frame(
            path=inst.path, index=i, modality=inst.modality or "OT", bits_stored=inst.pixel.bits_stored,
            bits_allocated=inst.pixel.bits_allocated, signed=inst.pixel.signed,
            rescale_slope=float(inst.rescale_slope or 1.0), values=np.ascontiguousarray(values),
        )


def read_frames(path: Path) -> list[np.ndarray]:
    """Stored-value frames of one DICOM file (none for an object dicom_io keeps verbatim; DicomReadError if unusable)."""
    from dicom_io import read_frames as frames

    return list(frames(path))
