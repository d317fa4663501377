"""Rebuild standard DICOM Part 10 files from a stored header (dicom_io.header) and decoded stored values.

Lossless reconstruction keeps every attribute and UID; only the file meta's Transfer Syntax UID (and the
group lengths, recomputed) change, plus Extended Offset Table elements, which describe the old encapsulation.
A lossy reconstruction is labelled as PS3.3 C.7.6.1.1.5 asks (see lossy_labelling).
"""
from __future__ import annotations

import hashlib
import io
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from atomicfs import atomic_write
from dicom_io.errors import DicomWriteError

# PS3.3 C.7.6.1.1.5.1 gives Defined Terms (ISO_10918_1, ISO_14495_1, ISO_15444_1, ...); Defined Terms may be
# extended, and no standard term names a learned codec, so medzip writes its own, a valid CS value.
LOSSY_METHOD = "MEDZIP_CNN"
WAVELET_METHOD = "MEDZIP_WAVELET"  # frames coded by medzip's 9/7 wavelet coder (codec mode wavelet:Q/E)
NATIVE_SYNTAXES = {ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian}
COMPRESSED_SYNTAXES = {pydicom.uid.RLELossless, pydicom.uid.JPEGLSLossless, pydicom.uid.JPEG2000Lossless,
                       pydicom.uid.HTJ2KLossless}
# What `medzip retrieve --transfer-syntax` offers, by short name: lossless codings of the stored values (a frame that
# was stored lossily keeps its LossyImageCompression labelling whatever the syntax).
DELIVERY_SYNTAXES = {
    "explicit-le": ExplicitVRLittleEndian,
    "jpeg-ls": pydicom.uid.JPEGLSLossless,
    "jpeg2000": pydicom.uid.JPEG2000Lossless,
    "htj2k": pydicom.uid.HTJ2KLossless,
}
# PS3.3 C.7.6.1.1.5.1 Defined Terms for the lossy transfer syntaxes, to name an earlier compression whose
# ratio was recorded without its method (so value i of the ratios still goes with value i of the methods).
_METHOD_OF_SYNTAX = {
    pydicom.uid.JPEGBaseline8Bit: "ISO_10918_1",
    pydicom.uid.JPEGExtended12Bit: "ISO_10918_1",
    pydicom.uid.JPEGLSNearLossless: "ISO_14495_1",
    pydicom.uid.JPEG2000: "ISO_15444_1",
    pydicom.uid.HTJ2K: "ISO_15444_15",
    "1.2.840.10008.1.2.4.112": "ISO_18181_1",  # JPEG XL (not yet named in pydicom 3.0)
}
_CS = re.compile(r"^[A-Z0-9_ ]{1,16}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_ENCAPSULATION_TAGS = (0x7FE00000, 0x7FE00001, 0x7FE00002)  # group length, Extended Offset Table (+ Lengths)


@dataclass(frozen=True)
class LossyInfo:
    """The decoded pixels differ from the originals: how (for the labelling)."""

    ratio: float  # compression ratio of this instance's pixels (docs/design.md definition)
    method: str = LOSSY_METHOD


def _values(ds: Dataset, keyword: str) -> list:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def format_ratio(ratio: float) -> str:
    """A DS string (at most 16 characters) for a compression ratio."""
    if not (math.isfinite(ratio) and ratio > 0):
        raise DicomWriteError(f"compression ratio {ratio!r} is not a positive finite number")
    return f"{ratio:.4f}".rstrip("0").rstrip(".")[:16] if ratio < 1e10 else f"{ratio:.6e}"


def lossy_labelling(ds: Dataset, ratio: float, method: str = LOSSY_METHOD) -> None:
    """Label `ds` in place as a lossy-compressed derivative (PS3.3 C.7.6.1.1.5 and C.7.6.1.1.2).

    LossyImageCompression "01"; our ratio and method appended after any earlier values (a file that was lossy
    before keeps its history, value i of the ratios goes with value i of the methods; an earlier ratio without
    its method gets the Defined Term of the source file's lossy transfer syntax when there is one); ImageType value 1 DERIVED;
    a new SOPInstanceUID with the file meta to match; for classic (not enhanced multi-frame) images also a
    Derivation Code (DCM 113040 "Lossy Compression") and a Source Image reference to the original instance
    (purpose DCM 121320 "Uncompressed predecessor").
    """
    if not _CS.match(method):
        raise DicomWriteError(f"LossyImageCompressionMethod {method!r} is not a valid CS value")
    ratios = [str(r) for r in _values(ds, "LossyImageCompressionRatio")]
    methods = [str(m) for m in _values(ds, "LossyImageCompressionMethod")]
    source_syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if len(methods) < len(ratios) and source_syntax in _METHOD_OF_SYNTAX:
        methods += [_METHOD_OF_SYNTAX[source_syntax]] * (len(ratios) - len(methods))
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, format_ratio(ratio)]
    ds.LossyImageCompressionMethod = [*methods, method]
    image_type = [str(v) for v in _values(ds, "ImageType")]
    ds.ImageType = ["DERIVED", *image_type[1:]] if image_type else ["DERIVED", "SECONDARY"]

    original_uid, sop_class = str(ds.get("SOPInstanceUID", "")), ds.get("SOPClassUID")
    ds.SOPInstanceUID = generate_uid()
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID

    if "SharedFunctionalGroupsSequence" in ds:
        return  # enhanced multi-frame: derivation lives in functional groups, not at the top level
    codes = ds.get("DerivationCodeSequence") or Sequence()
    codes.append(_code("113040", "DCM", "Lossy Compression"))
    ds.DerivationCodeSequence = codes
    if original_uid and sop_class:
        source = Dataset()
        source.ReferencedSOPClassUID = sop_class
        source.ReferencedSOPInstanceUID = original_uid
        source.PurposeOfReferenceCodeSequence = Sequence([_code("121320", "DCM", "Uncompressed predecessor")])
        sources = ds.get("SourceImageSequence") or Sequence()
        sources.append(source)
        ds.SourceImageSequence = sources


def safe_filename(name: str, suffix: str = ".dcm", max_len: int = 96) -> str:
    """A file name made from untrusted text (a UID): only [A-Za-z0-9._-], no leading dots, bounded length.
    Anything that had to change gets a hash of the original, so distinct names stay distinct."""
    cleaned = _UNSAFE.sub("_", name).lstrip(".")
    if cleaned != name or not cleaned or len(cleaned) > max_len:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        cleaned = f"{cleaned[: max_len - 17]}-{digest}" if cleaned else f"unnamed-{digest}"
    return cleaned + suffix


def instance_path(out_dir: Path | str, sop_instance_uid: str, suffix: str = ".dcm") -> Path:
    """out_dir / safe_filename(uid), checked to stay inside out_dir."""
    out_dir = Path(out_dir)
    path = out_dir / safe_filename(sop_instance_uid, suffix)
    if path.resolve().parent != out_dir.resolve():
        raise DicomWriteError(f"file name for {sop_instance_uid!r} escapes {out_dir}")
    return path


def _pixel_array(ds: Dataset, frames: Iterable[np.ndarray]) -> np.ndarray:
    """Stack frames as (frames, rows, columns) in the dtype the header's Image Pixel module declares, refusing
    values BitsStored cannot hold."""
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        bits_allocated, bits_stored = int(ds.BitsAllocated), int(ds.BitsStored)
        signed = int(ds.get("PixelRepresentation", 0)) == 1
    except (AttributeError, TypeError, ValueError) as e:
        raise DicomWriteError(f"header lacks a usable Image Pixel module: {e}") from e
    if bits_allocated not in (8, 16) or not 2 <= bits_stored <= bits_allocated:
        raise DicomWriteError(f"BitsAllocated {bits_allocated} / BitsStored {bits_stored} not writable as grayscale")
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
    low, high = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
    out = []
    for n, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.shape != (rows, columns):
            raise DicomWriteError(f"frame {n} is {frame.shape}, the header says {(rows, columns)}")
        if frame.dtype.kind not in "iu":
            raise DicomWriteError(f"frame {n} has dtype {frame.dtype}; stored values are integers")
        if frame.size and (int(frame.min()) < low or int(frame.max()) > high):
            raise DicomWriteError(
                f"frame {n} has values in [{frame.min()}, {frame.max()}], outside BitsStored {bits_stored} "
                f"({'signed' if signed else 'unsigned'}: [{low}, {high}])"
            )
        out.append(frame.astype(dtype, copy=False))
    if not out:
        raise DicomWriteError("no frames to write")
    declared = int(ds.get("NumberOfFrames", 1) or 1)
    if len(out) != declared:
        raise DicomWriteError(f"{len(out)} frame(s) given, the header declares NumberOfFrames {declared}")
    return np.stack(out)


_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap_other_words(ds: Dataset) -> None:
    """A big-endian original's OW/OF/OL/OD/OV values are raw big-endian bytes; pydicom re-encodes numbers but
    writes these bytes as they are, so swap them to little endian before writing (UN cannot be known: left as is)."""

    def swap(dataset: Dataset, elem) -> None:
        size = _WORD_SIZES.get(elem.VR)
        if size and isinstance(elem.value, bytes) and len(elem.value) % size == 0:
            elem.value = np.frombuffer(elem.value, f">u{size}").astype(f"<u{size}").tobytes()

    ds.walk(swap)


def build_dataset(
    header: bytes,
    frames: Iterable[np.ndarray],
    *,
    lossy: LossyInfo | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Dataset:
    """The dataset write_instance writes (exposed for tests and for senders that want a Dataset, not a file)."""
    ts = UID(transfer_syntax)
    if ts not in NATIVE_SYNTAXES | COMPRESSED_SYNTAXES:
        raise DicomWriteError(f"transfer syntax {ts} ({ts.name}) is not one medzip writes")
    try:
        ds = pydicom.dcmread(io.BytesIO(header), force=True)
    except Exception as e:
        raise DicomWriteError(f"stored header is not parseable DICOM: {e}") from e
    arr = _pixel_array(ds, frames)
    if ds.original_encoding[1] is False:
        _swap_other_words(ds)
    for tag in (0x7FE00010, *_ENCAPSULATION_TAGS):
        if tag in ds:
            del ds[tag]
    ds.HighBit = int(ds.BitsStored) - 1
    if "NumberOfFrames" in ds or arr.shape[0] > 1:
        ds.NumberOfFrames = arr.shape[0]
    if lossy is not None:
        lossy_labelling(ds, lossy.ratio, lossy.method)
    if not getattr(ds, "file_meta", None):
        ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "ImplementationClassUID" not in ds.file_meta:
        ds.file_meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID

    if ts in NATIVE_SYNTAXES:
        ds.file_meta.TransferSyntaxUID = ts
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        ds.PixelData = data + b"\x00" * (len(data) % 2)
        ds["PixelData"].VR = "OW" if arr.dtype.itemsize == 2 else "OB"
    elif ts == pydicom.uid.HTJ2KLossless:  # pydicom has no HTJ2K encoder: OpenJPH through imagecodecs
        _encapsulate_htj2k(ds, arr)
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # compress() starts from native data
        try:
            ds.compress(ts, arr if arr.shape[0] > 1 else arr[0], generate_instance_uid=False)
        except Exception as e:
            raise DicomWriteError(f"encoding as {ts.name} failed: {type(e).__name__}: {e}") from e
    return ds


_HTJ2K_LOCK = threading.Lock()  # OpenJPH through imagecodecs failed ("ojph error") when two threads coded at once


def _encapsulate_htj2k(ds: Dataset, arr: np.ndarray) -> None:
    """Each frame as a reversible (lossless) HTJ2K codestream, checked to decode to the same values."""
    import imagecodecs
    from pydicom.encaps import encapsulate

    frames = []
    for n, frame in enumerate(arr):
        try:
            with _HTJ2K_LOCK:
                code = imagecodecs.htj2k_encode(np.ascontiguousarray(frame), reversible=True)
                exact = np.array_equal(imagecodecs.htj2k_decode(code), frame)
        except Exception as e:
            raise DicomWriteError(f"encoding frame {n} as HTJ2K failed: {type(e).__name__}: {e}") from e
        if not exact:
            raise DicomWriteError(f"HTJ2K frame {n} does not decode to the values it coded")
        frames.append(code)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.HTJ2KLossless
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if ds.get("PhotometricInterpretation") is None:
        ds.PhotometricInterpretation = "MONOCHROME2"


def write_instance(
    header: bytes,
    frames: Iterable[np.ndarray],
    out: Path | str,
    *,
    lossy: LossyInfo | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Path:
    """Write a Part 10 file from a header (dicom_io.header_bytes) and each frame's stored values.

    `out` is a file path, or an existing folder in which the name comes from the SOP Instance UID written
    (a new one when lossy), made safe by safe_filename. Returns the path written (atomically).
    `transfer_syntax`: Explicit VR Little Endian (default), Implicit VR Little Endian, the lossless
    RLE / JPEG-LS / JPEG 2000 syntaxes through pydicom's encoders, or HTJ2K lossless through imagecodecs.
    """
    ds = build_dataset(header, frames, lossy=lossy, transfer_syntax=transfer_syntax)
    out = Path(out)
    path = instance_path(out, str(ds.SOPInstanceUID)) if out.is_dir() else out
    buf = io.BytesIO()
    try:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)  # dcmwrite, not save_as: may change endianness
    except Exception as e:
        raise DicomWriteError(f"cannot encode {path.name}: {type(e).__name__}: {e}") from e
    return atomic_write(path, buf.getvalue())


def write_verbatim(raw: bytes, out: Path | str) -> Path:
    """Write a verbatim object's bytes unchanged. `out` is a file path, or an existing folder in which the name
    comes from the object's SOP Instance UID (made safe; a second, different object under the same UID gets the
    name with a hash of its bytes, so neither is overwritten). Returns the path written (atomically)."""
    out = Path(out)
    if out.is_dir():
        try:
            uid = str(pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True, force=True).get("SOPInstanceUID", ""))
        except Exception:
            uid = ""
        digest = hashlib.sha256(raw).hexdigest()
        path = instance_path(out, uid or digest[:32])
        if path.exists() and path.read_bytes() != raw:
            path = instance_path(out, f"{uid}-{digest[:16]}")
        out = path
    return atomic_write(out, raw)
