"""DICOM in and out: read studies (any transfer syntax), stored values per frame, headers, rebuild Part 10 files."""
from dicom_io.errors import (
    DicomReadError,
    DicomWriteError,
    DuplicateInstanceError,
    InvalidHeaderError,
    MissingAttributeError,
    NotDicomError,
    PixelDataMismatchError,
    TruncatedDicomError,
    UnreadableNowError,
    UnsupportedPixelsError,
)
from dicom_io.header import header_bytes, read_verbatim_bytes
from dicom_io.model import Instance, PixelFormat, ReadResult, Series, Study, VerbatimObject
from dicom_io.file_reader import read_file
from dicom_io.pixels import iter_frames, read_frame
from dicom_io.studies import kept_as_received, order_slices, read_frames, read_studies
from dicom_io.writer import (
    LOSSY_METHOD,
    WAVELET_METHOD,
    LossyInfo,
    build_dataset,
    instance_path,
    lossy_labelling,
    safe_filename,
    write_instance,
    write_verbatim,
)

__all__ = [
    "DicomReadError", "DicomWriteError", "DuplicateInstanceError", "InvalidHeaderError", "MissingAttributeError",
    "NotDicomError", "PixelDataMismatchError", "TruncatedDicomError", "UnreadableNowError", "UnsupportedPixelsError",
    "Instance", "PixelFormat", "ReadResult", "Series", "Study", "VerbatimObject",
    "LOSSY_METHOD", "LossyInfo", "WAVELET_METHOD", "build_dataset", "instance_path", "lossy_labelling", "safe_filename",
    "write_instance", "write_verbatim",
    "header_bytes", "iter_frames", "kept_as_received", "order_slices", "read_file", "read_frame", "read_frames", "read_studies", "read_verbatim_bytes",
]
