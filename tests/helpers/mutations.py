"""Seeded mutations of real files for the fuzz tests (tests/reliability/test_fuzz_dicom.py, test_fuzz_archive.py).

Every mutation is a pure function of (source bytes, random.Random): the same seed gives the same mutated file, so a
failing case is reproduced from its seed alone (`mutate_dicom(src, seed)` / `mutate_archive(src, dst, seed)`).

Byte level (any file): flipped bytes, truncation, inserted / deleted / overwritten runs.
DICOM header fields: an element's length field, its VR, and the values that decide how pixels are read (BitsStored,
BitsAllocated, Rows/Columns, NumberOfFrames, PixelRepresentation, SamplesPerPixel, Photometric Interpretation,
the transfer syntax), set to neighbouring, extreme or wrong-type values.
HDF5 structure (archives): attributes changed, retyped or deleted; datasets replaced by other shapes or dtypes;
objects deleted or added.
"""
from __future__ import annotations

import io
import random
import struct
import warnings
from pathlib import Path

# ---- bytes ------------------------------------------------------------------------------------------------

def flip_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    out = bytearray(data)
    n = rng.choice((1, 1, 2, 4, 16))
    for _ in range(n):
        i = rng.randrange(len(out))
        out[i] ^= rng.randrange(1, 256)
    return bytes(out), f"flip {n} byte(s)"


def truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    cut = rng.randrange(len(data))
    return data[:cut], f"truncate at {cut}/{len(data)}"


def insert_run(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    at, n = rng.randrange(len(data) + 1), rng.choice((1, 2, 4, 7, 64, 1000))
    run = bytes(rng.randrange(256) for _ in range(n)) if rng.random() < 0.7 else bytes([rng.randrange(256)]) * n
    return data[:at] + run + data[at:], f"insert {n} at {at}"


def delete_run(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    at = rng.randrange(len(data))
    n = min(len(data) - at, rng.choice((1, 2, 4, 8, 100, 4096)))
    return data[:at] + data[at + n:], f"delete {n} at {at}"


def overwrite_run(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    at = rng.randrange(len(data))
    n = min(len(data) - at, rng.choice((2, 4, 8, 32, 512)))
    fill = rng.choice((b"\x00", b"\xff", None))
    run = fill * n if fill else bytes(rng.randrange(256) for _ in range(n))
    return data[:at] + run + data[at + n:], f"overwrite {n} at {at}"


BYTE_MUTATIONS = (flip_bytes, truncate, insert_run, delete_run, overwrite_run)

# ---- DICOM header fields ----------------------------------------------------------------------------------

_PIXEL_TAGS = {  # (group, element) -> keyword
    (0x0028, 0x0002): "SamplesPerPixel", (0x0028, 0x0004): "PhotometricInterpretation",
    (0x0028, 0x0008): "NumberOfFrames", (0x0028, 0x0010): "Rows", (0x0028, 0x0011): "Columns",
    (0x0028, 0x0100): "BitsAllocated", (0x0028, 0x0101): "BitsStored", (0x0028, 0x0102): "HighBit",
    (0x0028, 0x0103): "PixelRepresentation", (0x7FE0, 0x0010): "PixelData", (0x0002, 0x0010): "TransferSyntaxUID",
    (0x0020, 0x000D): "StudyInstanceUID", (0x0008, 0x0018): "SOPInstanceUID", (0x0002, 0x0000): "FileMetaGroupLength",
}
_VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
        b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"TM", b"UI", b"UL", b"UN", b"US", b"UT", b"\x00\x00", b"zz"]
_INT_VALUES = (0, 1, 2, 3, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 64, 255, 256, 4097, 65535, -1, "1A", "", "0.5")
_TS = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
       "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
       "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5",
       "1.2.3.4.5", "", "not a uid")


def _tag_offsets(data: bytes, group: int, element: int) -> list[int]:
    """Offsets where the little-endian tag (group, element) occurs (candidate element starts)."""
    needle = struct.pack("<HH", group, element)
    out, at = [], data.find(needle)
    while at >= 0 and len(out) < 8:
        out.append(at)
        at = data.find(needle, at + 1)
    return out


def element_length(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Change the length field of a pixel-relevant element (explicit VR short/long form or implicit VR)."""
    for _ in range(8):
        (g, e), kw = rng.choice(list(_PIXEL_TAGS.items()))
        offsets = _tag_offsets(data, g, e)
        if offsets:
            at = rng.choice(offsets)
            break
    else:
        return flip_bytes(data, rng)
    out = bytearray(data)
    vr = bytes(out[at + 4:at + 6])
    value = rng.choice((0, 1, 2, 3, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, len(data), rng.randrange(1 << 16)))
    if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN") and at + 12 <= len(out):
        out[at + 8:at + 12] = struct.pack("<I", value & 0xFFFFFFFF)
    elif vr.isalpha() and vr.isupper() and at + 8 <= len(out):
        out[at + 6:at + 8] = struct.pack("<H", value & 0xFFFF)
    elif at + 8 <= len(out):  # implicit VR: 4-byte length after the tag
        out[at + 4:at + 8] = struct.pack("<I", value & 0xFFFFFFFF)
    return bytes(out), f"length of {kw} at {at} -> {value}"


def element_vr(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    (g, e), kw = rng.choice(list(_PIXEL_TAGS.items()))
    offsets = _tag_offsets(data, g, e)
    if not offsets:
        return flip_bytes(data, rng)
    at = rng.choice(offsets)
    vr = rng.choice(_VRS)
    out = bytearray(data)
    out[at + 4:at + 6] = vr
    return bytes(out), f"VR of {kw} at {at} -> {vr!r}"


def dicom_field(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Set a pixel-relevant attribute (or the transfer syntax) to another value through pydicom and save."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception:
            return flip_bytes(data, rng)
        kw = rng.choice(["BitsStored", "BitsAllocated", "Rows", "Columns", "NumberOfFrames", "PixelRepresentation",
                         "SamplesPerPixel", "PhotometricInterpretation", "HighBit", "TransferSyntaxUID",
                         "TransferSyntaxUID", "PixelData", "StudyInstanceUID", "SOPInstanceUID"])
        try:
            if kw == "TransferSyntaxUID":
                value = rng.choice(_TS)
                ds.file_meta = ds.file_meta if getattr(ds, "file_meta", None) is not None else pydicom.dataset.FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = value
            elif kw == "PixelData":
                if "PixelData" not in ds:
                    return truncate(data, rng)
                px = bytes(ds.PixelData)
                value = rng.choice(("half", "odd", "empty", "double"))
                ds.PixelData = {"half": px[: len(px) // 2], "odd": px[:-1], "empty": b"", "double": px + px}[value]
            elif kw == "PhotometricInterpretation":
                value = rng.choice(("MONOCHROME1", "RGB", "YBR_FULL_422", "PALETTE COLOR", "", "BOGUS"))
                ds.PhotometricInterpretation = value
            elif kw.endswith("UID"):
                value = rng.choice(("", "1.2..3", "../../../escaped", "x" * 200, "1.2.3\\4.5"))
                setattr(ds, kw, value)
            else:
                current = ds.get(kw, 1)
                try:
                    near = int(current) + rng.choice((-1, 1, 8))
                except (TypeError, ValueError):
                    near = 1
                value = rng.choice((*_INT_VALUES, near))
                setattr(ds, kw, value)
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=False)
            return buf.getvalue(), f"{kw} -> {value!r}"
        except Exception:  # pydicom refused the value: fall back to the raw length/VR mutations
            return element_length(data, rng)


DICOM_MUTATIONS = (*BYTE_MUTATIONS, element_length, element_vr, dicom_field, dicom_field, dicom_field)


def mutate_dicom(data: bytes, seed: int) -> tuple[bytes, str]:
    """One seeded mutation (sometimes two stacked) of a DICOM file's bytes: (new bytes, what was done)."""
    rng = random.Random(seed)
    out, what = rng.choice(DICOM_MUTATIONS)(data, rng)
    if rng.random() < 0.15 and out:
        out, more = rng.choice(DICOM_MUTATIONS)(out, rng)
        what += "; " + more
    return out, what

# ---- HDF5 archives ----------------------------------------------------------------------------------------


def _objects(f) -> list:
    names = []
    f.visit(names.append)
    return ["/", *names]


def hdf5_attribute(path: Path, rng: random.Random) -> str:
    import h5py
    import numpy as np

    with h5py.File(path, "r+") as f:
        objs = [o for o in _objects(f) if len(f[o].attrs)]
        name = rng.choice(objs)
        attrs = f[name].attrs
        key = rng.choice(sorted(attrs.keys()))
        old = attrs[key]
        how = rng.choice(("int", "int", "str", "swap-type", "delete", "huge", "empty", "array"))
        if how == "delete":
            del attrs[key]
        elif how == "int":
            try:
                value = int(old) + rng.choice((-1, 1, 2, 1 << 20, -(1 << 20)))
            except (TypeError, ValueError):
                value = rng.choice((0, 1, -1))
            attrs.create(key, np.int64(value))
        elif how == "str":
            text = bytes(old).decode("utf-8", "replace") if isinstance(old, (bytes, np.bytes_)) else str(old)
            text = (text[:-1] + rng.choice("0aZ{")) if text else "x"
            attrs.create(key, np.array(text.encode(), dtype=f"S{max(len(text.encode()), 1)}"))
        elif how == "swap-type":
            attrs.create(key, np.array(b"12", dtype="S2") if isinstance(old, (int, np.integer)) else np.int64(12))
        elif how == "huge":
            attrs.create(key, np.int64(2**62) if isinstance(old, (int, np.integer)) else np.array(b"9" * 50000, "S50000"))
        elif how == "empty":
            attrs.create(key, np.array(b"", dtype="S1"))
        else:
            attrs.create(key, np.arange(3, dtype=np.int32))
    return f"attribute {name}@{key}: {how}"


def hdf5_dataset(path: Path, rng: random.Random) -> str:
    import h5py
    import numpy as np

    with h5py.File(path, "r+") as f:
        names = [o for o in _objects(f) if o != "/" and isinstance(f[o], h5py.Dataset)]
        name = rng.choice(names)
        old = f[name]
        attrs = dict(old.attrs)
        data = old[()]
        how = rng.choice(("shorter", "longer", "2-D", "uint16", "empty", "scalar", "records"))
        if how == "shorter":
            new = data[: max(0, len(data) - rng.choice((1, 2, len(data) // 2 or 1)))]
        elif how == "longer":
            new = np.concatenate([data, data[: rng.choice((1, 16))]]) if data.ndim == 1 and len(data) else data
        elif how == "2-D":
            new = data.reshape(1, -1) if data.ndim == 1 else data
        elif how == "uint16":
            new = data.view(np.uint16) if data.dtype == np.uint8 and data.nbytes % 2 == 0 else data.astype(np.int64) \
                if data.dtype.names is None else data[:1]
        elif how == "empty":
            new = data[:0]
        elif how == "scalar":
            new = np.int64(7)
        else:
            new = np.zeros(3, dtype=[("a", "i4"), ("b", "S3")])
        del f[name]
        ds = f.create_dataset(name, data=new)
        for k, v in attrs.items():
            ds.attrs[k] = v
    return f"dataset {name}: {how}"


def hdf5_structure(path: Path, rng: random.Random) -> str:
    import h5py

    with h5py.File(path, "r+") as f:
        names = [o for o in _objects(f) if o != "/"]
        how = rng.choice(("delete", "delete", "add-group", "add-numbered", "rename"))
        name = rng.choice(names)
        if how == "delete":
            del f[name]
        elif how == "add-group":
            f[name].parent.create_group(f"zz{rng.randrange(100)}") if isinstance(f[name], h5py.Group) else \
                f.create_group(f"extra{rng.randrange(100)}")
        elif how == "add-numbered":
            parent = f[name] if isinstance(f[name], h5py.Group) else f[name].parent
            parent.create_group(str(len(parent) + rng.choice((0, 1, 5))))
        else:
            parent = f[name].parent
            target = f"{parent.name.rstrip('/')}/{rng.choice(('0', '1', '9', 'x'))}"
            if target not in f:
                f.move(name, target)
    return f"structure {how} {name}"


ARCHIVE_FIELD_MUTATIONS = (hdf5_attribute, hdf5_attribute, hdf5_dataset, hdf5_structure)


def mutate_archive(src: Path, dst: Path, seed: int) -> str:
    """Write a seeded mutation of the archive `src` to `dst` (bytes or HDF5 structure); returns what was done."""
    rng = random.Random(seed)
    data = src.read_bytes()
    if rng.random() < 0.5:
        out, what = rng.choice(BYTE_MUTATIONS)(data, rng)
        dst.write_bytes(out)
        return what
    dst.write_bytes(data)
    return rng.choice(ARCHIVE_FIELD_MUTATIONS)(dst, rng)
