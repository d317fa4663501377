"""Named files of the bundled real DICOM (tests/realdata.py) and edited copies of them, for the dicom_io tests."""
from __future__ import annotations

from pathlib import Path

import pydicom

from tests.realdata import all_files, grayscale_image_files


def grayscale_by_name() -> dict[str, Path]:
    return {p.name: p for p in grayscale_image_files()}


def file_named(name: str) -> Path:
    return next(p for p in all_files() if p.name == name)


def path_ids(paths) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def ct_variant(tmp_path: Path, name: str, **attrs) -> Path:
    """CT_small.dcm with some attributes changed, saved as tmp_path / name."""
    ds = pydicom.dcmread(file_named("CT_small.dcm"))
    for key, value in attrs.items():
        setattr(ds, key, value)
    p = tmp_path / name
    ds.save_as(p)
    return p
