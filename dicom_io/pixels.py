"""Frames of stored values, decoded one at a time from the file (any transfer syntax pydicom's plugins decode).

`raw=True` keeps pydicom from any colour conversion; rescale/VOI are never applied by pydicom's decoders.
The result is masked to BitsStored and sign-extended when PixelRepresentation = 1, so bits above HighBit
(old embedded overlays, garbage) never leak into the values the codec sees.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pydicom
from pydicom.pixels import iter_pixels
from pydicom.uid import UID

from dicom_io.errors import DicomReadError, PixelDataMismatchError, UnsupportedPixelsError
from dicom_io.model import Instance, PixelFormat
from dicom_io.file_reader import has_part10_prefix


def stored_values(arr: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """Mask `arr` to fmt.bits_stored bits and sign-extend if signed; returned in fmt.dtype (native byte order)."""
    width = arr.dtype.itemsize
    unsigned = np.ascontiguousarray(arr).view(f"{arr.dtype.byteorder if arr.dtype.byteorder in '<>' else '='}u{width}")
    values = (unsigned & ((1 << fmt.bits_stored) - 1)).astype(np.int32)
    if fmt.signed:
        half = 1 << (fmt.bits_stored - 1)
        values = np.where(values >= half, values - (1 << fmt.bits_stored), values)
    return values.astype(fmt.dtype)


def _source(instance: Instance):
    """A path when pydicom can stream frames straight from the file, else the whole parsed data set."""
    ts = UID(instance.transfer_syntax_uid) if instance.transfer_syntax_uid else None
    if ts is not None and not ts.is_deflated and has_part10_prefix(instance.path):
        return instance.path
    ds = pydicom.dcmread(instance.path, force=True)
    if not getattr(ds, "file_meta", None) or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = ds.file_meta if getattr(ds, "file_meta", None) else pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ts
    return ds


def _frames(instance: Instance, indices: Iterable[int] | None) -> Iterator[np.ndarray]:
    fmt = instance.pixel
    encapsulated = UID(instance.transfer_syntax_uid).is_encapsulated if instance.transfer_syntax_uid else False
    try:
        for arr in iter_pixels(_source(instance), indices=indices, raw=True):
            if arr.shape != (fmt.rows, fmt.columns):
                raise PixelDataMismatchError(
                    instance.path, f"decoded frame is {arr.shape}, header says {(fmt.rows, fmt.columns)}"
                )
            values = stored_values(arr, fmt)
            if encapsulated and not np.array_equal(values, arr):
                raise PixelDataMismatchError(
                    instance.path, f"decoded values do not fit BitsStored {fmt.bits_stored} (signed={fmt.signed})"
                )
            yield values
    except DicomReadError:
        raise
    except Exception as e:
        raise UnsupportedPixelsError(
            instance.path, f"cannot decode {UID(instance.transfer_syntax_uid).name} pixel data: {type(e).__name__}: {e}"
        ) from e


def iter_frames(instance: Instance) -> Iterator[np.ndarray]:
    """Each frame's stored values as a 2-D array of instance.pixel.dtype, in frame order, one frame in memory at a time."""
    count = 0
    for frame in _frames(instance, None):
        count += 1
        if count > instance.number_of_frames:
            break
        yield frame
    if count != instance.number_of_frames:
        raise PixelDataMismatchError(
            instance.path, f"Pixel Data decodes to {count} frame(s), NumberOfFrames says {instance.number_of_frames}"
        )


def read_frame(instance: Instance, index: int) -> np.ndarray:
    """Frame `index` (0-based) of an instance, decoding only that frame where the transfer syntax allows."""
    if not 0 <= index < instance.number_of_frames:
        raise IndexError(f"{instance.path}: frame {index} of {instance.number_of_frames}")
    frames = list(_frames(instance, [index]))
    if len(frames) != 1:
        raise PixelDataMismatchError(instance.path, f"frame {index} is missing from Pixel Data")
    return frames[0]
