"""What dicom_io hands to the rest of medzip: studies, series, instances, frames of stored values."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PixelFormat:
    """How a frame's stored values are laid out (the DICOM Image Pixel module, grayscale only)."""

    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool  # PixelRepresentation == 1

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype stored values are handed out in (smallest that holds BitsAllocated)."""
        size = 1 if self.bits_allocated <= 8 else 2 if self.bits_allocated <= 16 else 4
        return np.dtype(f"{'i' if self.signed else 'u'}{size}")


@dataclass
class Instance:
    """One SOP instance with grayscale pixels. Frames are decoded on demand (see dicom_io.pixels)."""

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    number_of_frames: int
    pixel: PixelFormat
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    instance_number: int | None = None
    position: tuple[float, float, float] | None = None  # ImagePositionPatient
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient
    transfer_syntax_uid: str = ""  # of the source file (what iter_frames decodes)
    photometric_interpretation: str = "MONOCHROME2"
    series_number: int | None = None
    # why the pixels are already lossy-compressed (a lossy transfer syntax, LossyImageCompression 01), else None:
    # the archive keeps such an instance as its original file and never re-codes it
    already_lossy: str | None = None

    def as_received(self) -> "VerbatimObject":
        """This instance as an object kept byte for byte (for already-lossy input)."""
        return VerbatimObject(self.path, self.sop_instance_uid, self.sop_class_uid, self.series_instance_uid,
                              self.study_instance_uid, self.modality, self.already_lossy or "kept as received",
                              self.series_number)


@dataclass
class VerbatimObject:
    """A DICOM object without grayscale pixels (SR, RT, ECG, SEG, colour US …), kept byte for byte."""

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    reason: str  # why it is verbatim, e.g. "no pixel data", "colour (RGB)", "1-bit"
    series_number: int | None = None


@dataclass
class Series:
    series_instance_uid: str
    modality: str
    series_number: int | None = None
    instances: list[Instance] = field(default_factory=list)  # in slice order
    verbatim: list[VerbatimObject] = field(default_factory=list)


@dataclass
class Study:
    study_instance_uid: str
    series: list[Series] = field(default_factory=list)
    errors: list["DicomReadError"] = field(default_factory=list)  # files that could not be read

    @property
    def instances(self) -> list[Instance]:
        return [i for s in self.series for i in s.instances]

    @property
    def verbatim(self) -> list[VerbatimObject]:
        return [v for s in self.series for v in s.verbatim]


@dataclass
class ReadResult:
    """What dicom_io.read_studies found: studies (sorted by StudyInstanceUID) and the errors of files whose study
    could not be known (not DICOM, empty, truncated before the UIDs, no StudyInstanceUID). Errors of files whose study
    is known are in that Study.errors."""

    studies: list[Study] = field(default_factory=list)
    errors: list["DicomReadError"] = field(default_factory=list)

    @property
    def all_errors(self) -> list["DicomReadError"]:
        return self.errors + [e for s in self.studies for e in s.errors]


from dicom_io.errors import DicomReadError  # noqa: E402  (for the annotations above)
