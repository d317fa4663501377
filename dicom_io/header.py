"""An instance's header without its Pixel Data, kept losslessly for the archive; verbatim objects' bytes.

Choice: the header is stored as **Part 10 bytes in the file's own transfer syntax**, namely the original file's
bytes with the top-level Pixel Data element (tag, VR, length and value; for encapsulated data every fragment
and the sequence delimiter) cut out, and nothing else touched. Why this and not the DICOM JSON model:

* It is byte-exact. Every element before *and after* Pixel Data (trailing padding, overlays, private tags,
  Extended Offset Table) comes back exactly as it was: private tags of unknown VR, odd-length or
  non-conforming values, retired elements, undefined-length sequences, specific character sets. The JSON
  model re-encodes values (DS/IS become JSON numbers and lose their text form, private tags in implicit VR
  become UN, PN is split into components, strings are re-decoded through the character set) and needs
  BulkData handling for large binary values, so "equal to the original" would depend on a converter.
* Any DICOM reader opens it as it is (pydicom.dcmread(BytesIO(header))), and the writer rebuilds a file
  from it by setting Pixel Data again, with no conversion layer of our own.
* Removing one top-level element from a stream of tag-length-value elements leaves a valid stream.

Two cases are not a plain cut:

* Deflated transfer syntax (1.2.840.10008.1.2.1.99): the data set is inflated, Pixel Data removed and the
  data set deflated again by pydicom; the elements are the same, the compressed bytes may differ.
* A file without the Part 10 preamble and file meta (a raw data set): a preamble and a file meta group with
  the transfer syntax pydicom detected are put in front, so the header is always a Part 10 stream; the data
  set bytes are still the original ones.
"""
from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info

from dicom_io.errors import DicomReadError, InvalidHeaderError, PixelDataMismatchError
from dicom_io.model import Instance, VerbatimObject
from dicom_io.file_reader import PIXEL_DATA, element_end, has_part10_prefix, is_deflated, load_header, transfer_syntax

_PIXEL_TAG_BYTES = {True: b"\xe0\x7f\x10\x00", False: b"\x7f\xe0\x00\x10"}  # little / big endian


def header_bytes(src: Instance | VerbatimObject | Path | str) -> bytes:
    """The Part 10 bytes of the file minus its top-level Pixel Data element (see the module docstring)."""
    path = Path(src.path if isinstance(src, (Instance, VerbatimObject)) else src)
    try:
        return _header_bytes(path)
    except (DicomReadError, OSError):
        raise
    except Exception as e:  # pydicom re-encoding a damaged element raises many kinds
        raise InvalidHeaderError(path, f"header cannot be written again: {type(e).__name__}: {e}") from e


def _header_bytes(path: Path) -> bytes:
    ds = load_header(path)
    if is_deflated(ds):
        return _reencoded_without_pixels(path)
    elem = ds._dict.get(PIXEL_DATA)
    size = path.stat().st_size
    if elem is None:
        start = end = size
    else:
        if not isinstance(elem, RawDataElement) or elem.value_tell is None:
            return _reencoded_without_pixels(path)
        implicit, little = ds.original_encoding
        start = elem.value_tell - (8 if implicit else 12)
        end = element_end(elem, path)
        with open(path, "rb") as f:
            f.seek(start)
            if f.read(4) != _PIXEL_TAG_BYTES[little]:
                raise PixelDataMismatchError(path, f"Pixel Data element not found at offset {start}")
    with open(path, "rb") as f:
        head = f.read(start)
        f.seek(end)
        tail = f.read()
    if not has_part10_prefix(path):
        head = _part10_prefix(ds) + head
    return head + tail


def _part10_prefix(ds: pydicom.Dataset) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax(ds)
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]
    buf = io.BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)
    return buf.getvalue()


def _reencoded_without_pixels(path: Path) -> bytes:
    ds = pydicom.dcmread(path, force=True)
    if PIXEL_DATA in ds:
        del ds[PIXEL_DATA]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def read_verbatim_bytes(obj: VerbatimObject | Path | str) -> bytes:
    """The object's file, byte for byte (what the archive stores and restores for verbatim objects)."""
    return Path(obj.path if isinstance(obj, VerbatimObject) else obj).read_bytes()
