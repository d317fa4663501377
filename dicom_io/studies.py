"""Files and folders → studies: grouped by StudyInstanceUID / SeriesInstanceUID, slices in anatomical order.

Reading is header-only (see dicom_io.file_reader); pixels are decoded later, one frame at a time, by dicom_io.pixels.
"""
from __future__ import annotations

import filecmp
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from dicom_io.errors import DicomReadError, DuplicateInstanceError
from dicom_io.model import Instance, ReadResult, Series, Study, VerbatimObject
from dicom_io.file_reader import read_file
from dicom_io.pixels import iter_frames

ORIENTATION_TOLERANCE = 1e-4  # direction cosines equal within this are one stack


def iter_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """Every file named, and every file under every folder named (recursively, sorted; hidden names skipped)."""
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [Path(root) / f for f in files if not f.startswith(".")]
            candidates = sorted(found)
        else:
            candidates = [p]  # a missing file becomes a NotDicomError naming it
        for c in candidates:
            key = c.resolve() if c.exists() else c.absolute()
            if key not in seen:
                seen.add(key)
                yield c


def read_studies(paths: Iterable[Path | str]) -> ReadResult:
    """Read every file (header only), group into studies and series, order slices.

    Files that cannot be used become typed errors (dicom_io.errors), in their Study.errors when the study
    is known, else in ReadResult.errors; every other file goes on.
    """
    studies: dict[str, Study] = {}
    series_of: dict[tuple[str, str], Series] = {}
    seen_sop: dict[tuple[str, str], Path] = {}
    orphan_errors: list[DicomReadError] = []

    def study(uid: str) -> Study:
        return studies.setdefault(uid, Study(study_instance_uid=uid))

    for path in iter_files(paths):
        try:
            obj = read_file(path)
        except DicomReadError as e:
            (study(e.study_instance_uid).errors if e.study_instance_uid else orphan_errors).append(e)
            continue
        st = study(obj.study_instance_uid)
        key = (obj.study_instance_uid, obj.sop_instance_uid)
        if key in seen_sop:
            st.errors.append(
                DuplicateInstanceError(
                    path,
                    f"SOPInstanceUID {obj.sop_instance_uid} already read from {seen_sop[key]} "
                    f"({'an identical copy' if filecmp.cmp(seen_sop[key], path, shallow=False) else 'different content'})"
                    "; the first is kept",
                    study_instance_uid=obj.study_instance_uid,
                )
            )
            continue
        seen_sop[key] = path
        sk = (obj.study_instance_uid, obj.series_instance_uid)
        if sk not in series_of:
            series_of[sk] = Series(obj.series_instance_uid, obj.modality, obj.series_number)
            st.series.append(series_of[sk])
        s = series_of[sk]
        (s.instances if isinstance(obj, Instance) else s.verbatim).append(obj)

    for st in studies.values():
        for s in st.series:
            s.instances = order_slices(s.instances)
            s.verbatim.sort(key=lambda v: v.sop_instance_uid)
        st.series.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid))
    return ReadResult(studies=[studies[k] for k in sorted(studies)], errors=orphan_errors)


def slice_normal(instances: list[Instance]) -> np.ndarray | None:
    """The stack's normal (row × column direction cosines) when every instance has position and the same orientation."""
    if not instances or any(i.position is None or i.orientation is None for i in instances):
        return None
    first = np.asarray(instances[0].orientation, dtype=float)
    if any(np.max(np.abs(np.asarray(i.orientation) - first)) > ORIENTATION_TOLERANCE for i in instances):
        return None
    normal = np.cross(first[:3], first[3:])
    return normal if np.linalg.norm(normal) > 0.5 else None


def order_slices(instances: list[Instance]) -> list[Instance]:
    """Position along the slice normal (when all have it), then InstanceNumber, then SOPInstanceUID (stable tie-break)."""
    normal = slice_normal(instances)

    def key(i: Instance):
        along = round(float(np.dot(normal, i.position)), 4) if normal is not None else 0.0
        return (along, i.instance_number is None, i.instance_number or 0, i.sop_instance_uid)

    return sorted(instances, key=key)


def read_frames(path: Path | str) -> Iterator[np.ndarray]:
    """Stored-value frames of one file; nothing for an object medzip keeps verbatim (raises DicomReadError if unusable)."""
    obj = read_file(path)
    if isinstance(obj, Instance):
        yield from iter_frames(obj)


def kept_as_received(error: DicomReadError) -> VerbatimObject | None:
    """The object an input that will never decode becomes, so its study keeps it byte for byte: the UIDs its header
    still gives (a stand-in SOP key when it has none, or when it is a different file under a UID already read),
    and the reason as read. None when the file cannot be kept: its study is not known, it cannot be read now
    (error.transient), or it is an identical copy of a file already read."""
    import pydicom

    if error.transient or not error.study_instance_uid:
        return None
    if isinstance(error, DuplicateInstanceError) and "an identical copy" in error.reason:
        return None
    try:
        raw = error.path.read_bytes()
        ds = pydicom.dcmread(error.path, stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - the file is kept whatever its header holds
        ds, raw = None, None
    if raw is None:
        return None
    get = (lambda k: str(ds.get(k, "") or "").strip().rstrip("\x00")) if ds is not None else (lambda k: "")
    digest = hashlib.sha256(raw).hexdigest()[:16]
    sop = get("SOPInstanceUID")
    if not sop or isinstance(error, DuplicateInstanceError):
        sop = f"{sop or 'no-uid'}+{digest}"  # an archive key, never written into the file
    return VerbatimObject(
        path=error.path, sop_instance_uid=sop, sop_class_uid=get("SOPClassUID"),
        series_instance_uid=get("SeriesInstanceUID") or f"{error.study_instance_uid}+undecodable",
        study_instance_uid=error.study_instance_uid, modality=get("Modality"),
        reason=f"not decodable, kept as received ({type(error).__name__}): {error.reason}",
        series_number=None,
    )
