"""Where the bundled real DICOM lies: pydicom's own test files, pydicom-data and deid-data (all installed).

Used by the lab (validation split, benchmarks) and re-exported to the tests by tests/realdata.py."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pydicom

_SKIP_SUFFIXES = {".py", ".pyc", ".json", ".txt", ".md", ".dump", ".icc", ".gz", ".bz2", ".xz", ".zip"}


def data_roots() -> list[Path]:
    import data_store  # pydicom-data
    import deid_data

    return [
        Path(pydicom.__file__).parent / "data" / "test_files",
        Path(data_store.__file__).parent / "data",
        Path(deid_data.__file__).parent,
    ]


def find(name: str, under: str = "") -> Path:
    """A bundled real file by name (first match under the data roots, optionally with `under` in its path)."""
    for root in data_roots():
        for p in sorted(root.rglob(name)):
            if p.is_file() and under in str(p):
                return p
    raise FileNotFoundError(name)


@lru_cache(maxsize=1)
def all_files() -> tuple[Path, ...]:
    """Every candidate file under the data roots (DICOM or not), sorted."""
    files = []
    for root in data_roots():
        files += [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() not in _SKIP_SUFFIXES]
    return tuple(sorted(files))


@lru_cache(maxsize=1)
def grayscale_image_files() -> tuple[Path, ...]:
    """Files whose header declares grayscale (MONOCHROME1/2) pixels with BitsStored >= 2."""
    found = []
    for path in all_files():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if (
            "PixelData" in ds or "Rows" in ds
        ) and str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME") and int(
            ds.get("BitsStored", 0) or 0
        ) >= 2:
            found.append(path)
    return tuple(found)


def decoded_frames():
    """(path, dataset, frame index, frame) for every frame pydicom decodes among grayscale_image_files(),
    multi-frame instances expanded, frames in native byte order. Files pydicom cannot decode are skipped
    (they are the dicom_io tests' business)."""
    import warnings

    for path in grayscale_image_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path)
                arr = ds.pixel_array
        except Exception:
            continue
        for i, frame in enumerate(arr.reshape((-1,) + arr.shape[-2:])):
            yield path, ds, i, frame.astype(frame.dtype.newbyteorder("="))
