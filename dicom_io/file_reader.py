"""One file → a parsed header, then an Instance (grayscale pixels) or a VerbatimObject, or a typed error.

Pixel Data is never loaded here: native pixel data is deferred (only its offset and length are read),
so scanning a 1,000-slice study costs headers, not pixels.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import UID

from dicom_io.errors import (
    DicomReadError,
    InvalidHeaderError,
    MissingAttributeError,
    NotDicomError,
    PixelDataMismatchError,
    TruncatedDicomError,
    UnreadableNowError,
)
from dicom_io.model import Instance, PixelFormat, VerbatimObject

PIXEL_DATA = Tag(0x7FE00010)
UNDEFINED_LENGTH = 0xFFFFFFFF
DEFER_SIZE = 4096  # values longer than this stay on disk until asked for
MAX_FRAME_PIXELS = 1 << 27  # 134 M pixels per frame: far above any real radiograph, below a memory bomb

# Quantitative or label objects: their values are measurements (dose, segment labels), never coded lossily.
VERBATIM_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.481.2": "RT Dose (quantitative dose grid)",
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation (label map)",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation",
}


# Transfer syntaxes whose pixels have (or may have) lost information already. Such input is kept as its original
# bitstream, byte for byte: re-coding it cannot bring anything back, only add bytes and a second loss.
LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.81": "JPEG-LS near-lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000 (irreversible allowed)",
    "1.2.840.10008.1.2.4.93": "JPEG 2000 Part 2 multi-component",
    "1.2.840.10008.1.2.4.203": "HTJ2K (irreversible allowed)",
    "1.2.840.10008.1.2.4.111": "JPEG XL JPEG recompression",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
    **{f"1.2.840.10008.1.2.4.{n}": "MPEG/HEVC video" for n in range(100, 109)},
}
ALREADY_LOSSY = "already lossy-compressed"  # the start of the reason such objects are kept verbatim for


def already_lossy(ds: Dataset) -> str | None:
    """Why the pixels are already lossy (a lossy transfer syntax, or LossyImageCompression = 01), else None."""
    ts = str(transfer_syntax(ds))
    if ts in LOSSY_SYNTAXES:
        return f"{ALREADY_LOSSY} ({LOSSY_SYNTAXES[ts]}, {ts}): kept as its original bitstream, no gate applied"
    if str(ds.get("LossyImageCompression", "") or "").strip() == "01":
        return f"{ALREADY_LOSSY} (LossyImageCompression 01): kept as its original bitstream, no gate applied"
    return None


def has_part10_prefix(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def load_header(path: Path) -> Dataset:
    """Parse `path` with Pixel Data deferred; raise NotDicomError / TruncatedDicomError naming the file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise NotDicomError(path, f"cannot be read: {e.strerror or e}") from e
    except OSError as e:
        raise UnreadableNowError(path, f"cannot be read now: {e.strerror or e}") from e
    if size == 0:
        raise NotDicomError(path, "empty file (0 bytes)")
    try:
        ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
    except InvalidDicomError:
        ds = _load_raw_dataset(path)
    except EOFError as e:
        raise TruncatedDicomError(path, f"ends before its header does ({e})") from e
    except FileNotFoundError as e:
        raise NotDicomError(path, f"cannot be read: {e.strerror or e}") from e
    except OSError as e:  # permissions, I/O errors: may read on a later run
        raise UnreadableNowError(path, f"cannot be read now: {e.strerror or e}") from e
    except Exception as e:  # pydicom raises many kinds on garbage
        raise NotDicomError(path, f"not parseable as DICOM: {type(e).__name__}: {e}") from e
    if "SOPInstanceUID" not in ds:
        _check_lost_dataset(path)
    try:
        check_complete(path, ds, size)
    except DicomReadError as e:
        e.study_instance_uid = _uid(ds, "StudyInstanceUID") or None  # the header got far enough to place it
        raise
    return ds


def _check_lost_dataset(path: Path) -> None:
    """pydicom hands back an empty data set when Pixel Data of undefined length runs into the end of the file;
    the header read without pixels tells that case apart from a file that really has no UIDs."""
    try:
        head = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return
    if "SOPInstanceUID" in head:
        raise TruncatedDicomError(
            path,
            "ends inside Pixel Data (encapsulated fragments without their sequence delimiter)",
            study_instance_uid=_uid(head, "StudyInstanceUID") or None,
        )


def _load_raw_dataset(path: Path) -> Dataset:
    """A file without the Part 10 preamble/meta is accepted only if it parses to a real composite instance."""
    try:
        ds = pydicom.dcmread(path, defer_size=DEFER_SIZE, force=True)
        ok = bool(ds.get("SOPClassUID")) and bool(ds.get("SOPInstanceUID"))
    except Exception:
        ok = False
    if not ok:
        raise NotDicomError(path, "no DICOM Part 10 header ('DICM' prefix) and not a raw DICOM data set")
    return ds


def element_end(elem: RawDataElement, path: Path) -> int:
    """File offset just past a raw element's value. An undefined length ends after its sequence delimiter item;
    when pydicom deferred such a value, its items (always little endian) are walked header by header."""
    if elem.length != UNDEFINED_LENGTH:
        return elem.value_tell + elem.length
    if elem.value is not None:
        return elem.value_tell + len(elem.value) + 8
    pos = elem.value_tell
    with open(path, "rb") as f:
        while True:
            f.seek(pos)
            head = f.read(8)
            if len(head) < 8:
                return pos + 8  # past the end: the caller reports truncation
            group, element, length = struct.unpack("<HHL", head)
            pos += 8
            if (group, element) == (0xFFFE, 0xE0DD):
                return pos
            if (group, element) != (0xFFFE, 0xE000) or length == UNDEFINED_LENGTH:
                raise PixelDataMismatchError(path, f"encapsulated Pixel Data: unexpected tag ({group:04X},{element:04X})")
            pos += length


def is_deflated(ds: Dataset) -> bool:
    ts = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    try:
        return bool(ts) and UID(ts).is_deflated
    except (TypeError, ValueError):  # a damaged Transfer Syntax UID is no deflated syntax; decoding refuses it later
        return False


def check_complete(path: Path, ds: Dataset, size: int) -> None:
    """pydicom stops quietly at end of file; a value or file meta that needs more bytes than the file has is truncation."""
    meta = getattr(ds, "file_meta", None)
    if ds.preamble is not None and meta is not None and "FileMetaInformationGroupLength" in meta:
        try:
            meta_end = 132 + 12 + int(meta.FileMetaInformationGroupLength)
        except (TypeError, ValueError) as e:
            raise InvalidHeaderError(path, f"File Meta Information Group Length is not a number: {e}") from e
        if meta_end > size:
            raise TruncatedDicomError(path, f"ends inside the file meta information ({size} of {meta_end} bytes)")
    if is_deflated(ds) or not ds._dict:
        return  # offsets of a deflated data set refer to the inflated stream; zlib reports its own truncation
    last = next(reversed(ds._dict.values()))
    if isinstance(last, RawDataElement) and last.value_tell is not None:
        end = element_end(last, path)
        if end > size:
            raise TruncatedDicomError(
                path, f"ends inside element {Tag(last.tag)} ({size} bytes, the element needs {end})"
            )


def _uid(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip().rstrip("\x00")


def _int(ds: Dataset, keyword: str, path: Path, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise InvalidHeaderError(path, f"{keyword} is missing")
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise InvalidHeaderError(path, f"{keyword} = {value!r} is not an integer") from e


def _optional_int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _floats(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    try:
        vals = tuple(float(v) for v in ds.get(keyword) or ())
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == n and all(math.isfinite(v) for v in vals) else None


def verbatim_reason(ds: Dataset, path: Path) -> str | None:
    """Why this object is kept verbatim, or None when it carries grayscale stored values medzip can code."""
    if PIXEL_DATA not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            return "float pixel data"
        if "Rows" in ds and "Columns" in ds and "BitsAllocated" in ds:
            raise PixelDataMismatchError(path, "declares an image (Rows, Columns, BitsAllocated) but has no Pixel Data")
        return "no pixel data"
    sop_class = _uid(ds, "SOPClassUID")
    if sop_class in VERBATIM_SOP_CLASSES:
        return VERBATIM_SOP_CLASSES[sop_class]
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return f"PhotometricInterpretation {photometric or 'missing'} (not grayscale)"
    if _int(ds, "SamplesPerPixel", path, 1) != 1:
        return "more than one sample per pixel"
    bits_allocated = _int(ds, "BitsAllocated", path)
    bits_stored = _int(ds, "BitsStored", path)
    if bits_allocated == 1:
        return "1-bit pixels (binary)"
    if bits_allocated not in (8, 16):
        return f"BitsAllocated {bits_allocated} (grayscale coding takes 8 or 16)"
    if not 1 <= bits_stored <= bits_allocated:
        raise InvalidHeaderError(path, f"BitsStored {bits_stored} does not fit BitsAllocated {bits_allocated}")
    if bits_stored < 2:
        return "1-bit stored values (binary)"
    high_bit = _int(ds, "HighBit", path, bits_stored - 1)
    if high_bit != bits_stored - 1:
        return f"HighBit {high_bit} is not BitsStored - 1 (values not in the low bits)"
    ts = transfer_syntax(ds)
    if not _decodable(ts):
        return f"transfer syntax {ts} has no pixel decoder here"
    return None


def transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return UID(ts)
    implicit, little = ds.original_encoding
    if implicit:
        return pydicom.uid.ImplicitVRLittleEndian
    return pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian


def _decodable(ts: UID) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(ts).is_available
    except NotImplementedError:
        return False


def _check_native_length(ds: Dataset, path: Path, fmt: PixelFormat, frames: int, ts: UID) -> None:
    if ts.is_encapsulated:
        return
    elem = ds._dict[PIXEL_DATA]
    length = elem.length if isinstance(elem, RawDataElement) else len(elem.value or b"")
    expected = fmt.rows * fmt.columns * frames * (fmt.bits_allocated // 8)
    if length == UNDEFINED_LENGTH:
        raise PixelDataMismatchError(path, f"native ({ts.name}) Pixel Data with undefined length")
    if length < expected:
        raise PixelDataMismatchError(
            path,
            f"Pixel Data holds {length} bytes, the header declares {expected} "
            f"({frames} frame(s) of {fmt.rows}x{fmt.columns} at {fmt.bits_allocated} bits)",
        )


def describe(path: Path, ds: Dataset) -> Instance | VerbatimObject:
    """Build the model object for a parsed header (raises DicomReadError subclasses, placed in the file's study)."""
    study = _uid(ds, "StudyInstanceUID")
    try:
        return _describe(path, ds, study)
    except DicomReadError as e:
        e.study_instance_uid = e.study_instance_uid or study or None
        raise
    except Exception as e:  # pydicom's value conversions on a damaged element raise many kinds
        err = InvalidHeaderError(path, f"unusable header: {type(e).__name__}: {e}")
        err.study_instance_uid = study or None
        raise err from e


def _describe(path: Path, ds: Dataset, study: str) -> Instance | VerbatimObject:
    sop_class = _uid(ds, "SOPClassUID") or _uid(getattr(ds, "file_meta", Dataset()), "MediaStorageSOPClassUID")
    if sop_class == "1.2.840.10008.1.3.10" or "DirectoryRecordSequence" in ds:
        raise MissingAttributeError(path, "a DICOMDIR (media directory), not an instance of a study")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if not _uid(ds, keyword):
            raise MissingAttributeError(path, f"no {keyword}: the object cannot be placed in a study")
    common = dict(
        path=path,
        sop_instance_uid=_uid(ds, "SOPInstanceUID"),
        sop_class_uid=sop_class,
        series_instance_uid=_uid(ds, "SeriesInstanceUID"),
        study_instance_uid=study,
        modality=str(ds.get("Modality", "") or ""),
        series_number=_optional_int(ds, "SeriesNumber"),
    )
    reason = verbatim_reason(ds, path)
    if reason is not None:
        return VerbatimObject(**common, reason=reason)

    fmt = PixelFormat(
        rows=_int(ds, "Rows", path),
        columns=_int(ds, "Columns", path),
        bits_allocated=_int(ds, "BitsAllocated", path),
        bits_stored=_int(ds, "BitsStored", path),
        signed=_int(ds, "PixelRepresentation", path, 0) == 1,
    )
    if _int(ds, "PixelRepresentation", path, 0) not in (0, 1):
        raise InvalidHeaderError(path, f"PixelRepresentation {ds.PixelRepresentation} is neither 0 nor 1")
    if fmt.rows <= 0 or fmt.columns <= 0:
        raise InvalidHeaderError(path, f"image size {fmt.rows}x{fmt.columns}")
    if fmt.rows * fmt.columns > MAX_FRAME_PIXELS:
        raise InvalidHeaderError(path, f"image size {fmt.rows}x{fmt.columns} exceeds {MAX_FRAME_PIXELS} pixels per frame")
    frames = _int(ds, "NumberOfFrames", path, 1)
    if frames < 1:
        raise InvalidHeaderError(path, f"NumberOfFrames {frames}")
    ts = transfer_syntax(ds)
    _check_native_length(ds, path, fmt, frames, ts)

    try:
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    except (TypeError, ValueError) as e:
        raise InvalidHeaderError(path, f"RescaleSlope/RescaleIntercept not numeric: {e}") from e
    return Instance(
        **common,
        number_of_frames=frames,
        pixel=fmt,
        rescale_slope=slope,
        rescale_intercept=intercept,
        instance_number=_optional_int(ds, "InstanceNumber"),
        position=_floats(ds, "ImagePositionPatient", 3),
        orientation=_floats(ds, "ImageOrientationPatient", 6),
        transfer_syntax_uid=str(ts),
        photometric_interpretation=str(ds.PhotometricInterpretation).strip(),
        already_lossy=already_lossy(ds),
    )


def read_file(path: Path | str) -> Instance | VerbatimObject:
    """Parse one file (header only) into an Instance or VerbatimObject; raise a DicomReadError naming it."""
    path = Path(path)
    return describe(path, load_header(path))
