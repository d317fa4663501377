"""dicom_io.studies: files grouped into studies and series, slices in anatomical order, errors kept apart."""
from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

import dicom_io
from dicom_io import DicomReadError, DuplicateInstanceError, NotDicomError
from tests.helpers.dicom_files import ct_variant, file_named

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on the broken test files


def _slice(src, out, *, sop, series="1.2.826.0.1.3680043.8.498.9001", study="1.2.826.0.1.3680043.8.498.9000",
           position=None, number=None, orientation=None):
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SeriesInstanceUID, ds.StudyInstanceUID = series, study
    if orientation is not None:
        ds.ImageOrientationPatient = list(orientation)
    if position is None:
        del ds.ImagePositionPatient
    else:
        ds.ImagePositionPatient = [float(v) for v in position]
    if number is None:
        del ds.InstanceNumber
    else:
        ds.InstanceNumber = number
    ds.save_as(out)
    return out


def test_slices_are_ordered_along_the_normal_of_an_oblique_stack(tmp_path):
    ct = file_named("CT_small.dcm")
    row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(0.5), np.sin(0.5)])
    normal = np.cross(row, col)
    origin = np.array([-100.0, 20.0, 300.0])
    # (distance along the normal, instance number): numbers deliberately disagree with position
    layout = [(7.5, 1), (-2.5, 2), (12.5, 3), (2.5, 4), (-7.5, 5)]
    for k, (d, n) in enumerate(layout):
        # in-plane shifts must not matter, only the projection on the normal
        pos = origin + d * normal + (k * 3.0) * row - (k * 2.0) * col
        _slice(ct, tmp_path / f"s{k}.dcm", sop=f"1.2.826.0.1.3680043.8.498.{100 + k}", position=pos,
               number=n, orientation=[*row, *col])
    result = dicom_io.read_studies([tmp_path])
    assert not result.all_errors
    (study,) = result.studies
    (series,) = study.series
    assert [i.instance_number for i in series.instances] == [5, 2, 4, 1, 3]


def test_equal_positions_fall_back_to_instance_number_then_uid(tmp_path):
    ct = file_named("CT_small.dcm")
    for k, (z, n, uid) in enumerate([(0, 2, "1.2.3.9"), (0, 1, "1.2.3.8"), (-5, 9, "1.2.3.7"), (0, 2, "1.2.3.6")]):
        _slice(ct, tmp_path / f"d{k}.dcm", sop=uid, position=(0, 0, z), number=n, orientation=(1, 0, 0, 0, 1, 0))
    (study,) = dicom_io.read_studies([tmp_path]).studies
    assert [i.sop_instance_uid for i in study.series[0].instances] == ["1.2.3.7", "1.2.3.8", "1.2.3.6", "1.2.3.9"]


def test_without_positions_instance_number_orders(tmp_path):
    ct = file_named("CT_small.dcm")
    for k, n in enumerate([3, 1, None, 2]):
        pos = (0, 0, 10 * k) if k != 1 else None  # one slice lacks its position: positions are not used at all
        _slice(ct, tmp_path / f"n{k}.dcm", sop=f"1.2.3.{k}", position=pos, number=n)
    (study,) = dicom_io.read_studies([tmp_path]).studies
    assert [i.instance_number for i in study.series[0].instances] == [1, 2, 3, None]


def test_grouping_into_studies_and_series_with_errors_kept_apart(tmp_path):
    ct = file_named("CT_small.dcm")
    _slice(ct, tmp_path / "a1.dcm", sop="1.2.3.1", series="1.2.3.100", study="1.2.3.1000", position=(0, 0, 1))
    _slice(ct, tmp_path / "a2.dcm", sop="1.2.3.2", series="1.2.3.101", study="1.2.3.1000", position=(0, 0, 1))
    (tmp_path / "sub").mkdir()
    _slice(ct, tmp_path / "sub" / "b1.dcm", sop="1.2.3.3", series="1.2.3.200", study="1.2.3.2000", position=(0, 0, 1))
    shutil.copy(tmp_path / "a1.dcm", tmp_path / "sub" / "a1-copy.dcm")  # duplicate SOP Instance UID
    sr = pydicom.dcmread(file_named("test-SR.dcm"))
    sr.StudyInstanceUID = "1.2.3.1000"
    sr.save_as(tmp_path / "report.dcm")
    (tmp_path / "readme.txt").write_text("not dicom")
    (tmp_path / ".partial.dcm").write_bytes(b"\x00" * 10)  # hidden: an upload in progress, skipped
    cut = tmp_path / "cut.dcm"
    cut.write_bytes((tmp_path / "a2.dcm").read_bytes()[:-100])

    result = dicom_io.read_studies([tmp_path])
    assert [s.study_instance_uid for s in result.studies] == ["1.2.3.1000", "1.2.3.2000"]
    first, second = result.studies
    assert {s.series_instance_uid for s in first.series} == {"1.2.3.100", "1.2.3.101", sr.SeriesInstanceUID}
    assert [v.sop_class_uid for v in first.verbatim] == [sr.SOPClassUID]
    assert {i.sop_instance_uid for i in first.instances} == {"1.2.3.1", "1.2.3.2"}
    assert sorted(type(e).__name__ for e in first.errors) == ["DuplicateInstanceError", "TruncatedDicomError"]
    dup = next(e for e in first.errors if isinstance(e, DuplicateInstanceError))
    assert dup.path.name == "a1-copy.dcm" and "a1.dcm" in dup.reason and "identical copy" in dup.reason
    assert [i.sop_instance_uid for i in second.instances] == ["1.2.3.3"] and not second.errors
    assert [(type(e), e.path.name) for e in result.errors] == [(NotDicomError, "readme.txt")]
    assert all(isinstance(e, DicomReadError) for e in result.all_errors) and len(result.all_errors) == 3


def test_mixed_image_sizes_in_one_series_are_each_read_as_they_are(tmp_path):
    small = ct_variant(tmp_path, "small.dcm", SOPInstanceUID="1.2.3.1", InstanceNumber=1)
    mr = pydicom.dcmread(file_named("MR_small.dcm"))  # 64x64 into the CT's 128x128 series
    mr.StudyInstanceUID, mr.SeriesInstanceUID = pydicom.dcmread(small).StudyInstanceUID, pydicom.dcmread(
        small).SeriesInstanceUID
    mr.save_as(tmp_path / "other.dcm")
    (study,) = dicom_io.read_studies([tmp_path]).studies
    (series,) = study.series
    assert sorted((i.pixel.rows, i.pixel.columns) for i in series.instances) == [(64, 64), (128, 128)]
    for inst in series.instances:
        assert next(dicom_io.iter_frames(inst)).shape == (inst.pixel.rows, inst.pixel.columns)


def test_hostile_uids_are_read_as_plain_strings(tmp_path):
    p = ct_variant(tmp_path, "hostile.dcm", StudyInstanceUID="../../../tmp/evil", SOPInstanceUID="/etc/passwd")
    (study,) = dicom_io.read_studies([p]).studies
    assert study.study_instance_uid == "../../../tmp/evil"
    assert study.instances[0].sop_instance_uid == "/etc/passwd"
