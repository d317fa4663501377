"""dicom_io reading on the bundled real DICOM: stored values, formats, grouping, slice order, typed errors."""
from __future__ import annotations

import io
import pickle
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID

import dicom_io
from dicom_io import (
    DicomReadError,
    DuplicateInstanceError,
    Instance,
    MissingAttributeError,
    NotDicomError,
    PixelDataMismatchError,
    TruncatedDicomError,
    UnsupportedPixelsError,
    VerbatimObject,
)
from tests.realdata import all_files, grayscale_image_files

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on the broken test files

# Files among the bundled grayscale images that are broken on purpose (pydicom's own test corpus) or cannot be
# placed in a study: each must give exactly this typed error, on read or on decode.
EXPECTED_READ_ERRORS = {
    "MR_truncated.dcm": TruncatedDicomError,
    "emri_small_jpeg_2k_lossless_too_short.dcm": TruncatedDicomError,
    "JPEGLSNearLossless_08.dcm": MissingAttributeError,  # no StudyInstanceUID / SeriesInstanceUID
    "JPEGLSNearLossless_16.dcm": MissingAttributeError,
}
EXPECTED_DECODE_ERRORS = {
    "JPEG-lossy.dcm": UnsupportedPixelsError,  # misplaced JPEG marker (pydicom keeps it as a broken-file test)
    "JPEG2000-embedded-sequence-delimiter.dcm": UnsupportedPixelsError,  # a fragment holds a sequence delimiter
}
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"

# Same image in two encodings: the decoded stored values must be identical (lossless syntaxes against the
# uncompressed original; the *_UNCI files are the decompressed J2K-lossy files).
SAME_PIXELS = [
    ("MR_small_RLE.dcm", "MR_small.dcm"),
    ("MR_small_bigendian.dcm", "MR_small.dcm"),
    ("MR_small_expb.dcm", "MR_small.dcm"),
    ("MR_small_implicit.dcm", "MR_small.dcm"),
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    ("MR_small_padded.dcm", "MR_small.dcm"),
    ("emri_small_RLE.dcm", "emri_small.dcm"),
    ("emri_small_big_endian.dcm", "emri_small.dcm"),
    ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
    ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
    ("MR2_J2KR.dcm", "MR2_UNCR.dcm"),
    ("MR2_J2KI.dcm", "MR2_UNCI.dcm"),
    ("RG3_J2KR.dcm", "RG3_UNCR.dcm"),
    ("693_J2KR.dcm", "693_UNCR.dcm"),
    ("693_J2KI.dcm", "693_UNCI.dcm"),
    ("JPEG2000.dcm", "JPEG2000_UNC.dcm"),
]


def _by_name() -> dict:
    return {p.name: p for p in grayscale_image_files()}


def _file(name: str):
    return next(p for p in all_files() if p.name == name)


def _ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]


@pytest.mark.parametrize("path", grayscale_image_files(), ids=_ids(grayscale_image_files()))
def test_every_grayscale_image_reads_with_its_format_and_values(path):
    if path.name in EXPECTED_READ_ERRORS:
        with pytest.raises(EXPECTED_READ_ERRORS[path.name]) as err:
            dicom_io.read_file(path)
        assert str(path) in str(err.value) and err.value.reason
        return
    obj = dicom_io.read_file(path)
    header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    if isinstance(obj, VerbatimObject):  # only RT Dose grids (32-bit, quantitative) among the grayscale files
        assert obj.sop_class_uid == RT_DOSE, obj.reason
        return
    assert isinstance(obj, Instance)
    fmt = obj.pixel
    assert (fmt.rows, fmt.columns) == (header.Rows, header.Columns)
    assert fmt.bits_allocated == header.BitsAllocated and fmt.bits_stored == header.BitsStored
    assert fmt.signed == (header.PixelRepresentation == 1)
    assert fmt.dtype == np.dtype(f"{'i' if fmt.signed else 'u'}{header.BitsAllocated // 8}")
    assert obj.number_of_frames == int(header.get("NumberOfFrames", 1) or 1)

    if path.name in EXPECTED_DECODE_ERRORS:
        with pytest.raises(EXPECTED_DECODE_ERRORS[path.name]) as err:
            list(dicom_io.iter_frames(obj))
        assert str(path) in str(err.value)
        return
    frames = list(dicom_io.iter_frames(obj))
    assert len(frames) == obj.number_of_frames
    low, high = (-(1 << (fmt.bits_stored - 1)), (1 << (fmt.bits_stored - 1)) - 1) if fmt.signed else (
        0, (1 << fmt.bits_stored) - 1)
    for frame in frames:
        assert frame.shape == (fmt.rows, fmt.columns) and frame.dtype == fmt.dtype
        assert frame.dtype.isnative
        assert low <= int(frame.min()) and int(frame.max()) <= high

    ts = UID(obj.transfer_syntax_uid)
    if not ts.is_compressed and "TransferSyntaxUID" in getattr(header, "file_meta", {}):
        reference = pydicom.dcmread(path).pixel_array.reshape(len(frames), fmt.rows, fmt.columns)
        np.testing.assert_array_equal(np.stack(frames), reference)
    last = obj.number_of_frames - 1
    np.testing.assert_array_equal(dicom_io.read_frame(obj, last), frames[last])


@pytest.mark.parametrize("encoded,reference", SAME_PIXELS, ids=[a for a, _ in SAME_PIXELS])
def test_every_transfer_syntax_decodes_to_the_same_stored_values(encoded, reference):
    names = _by_name()
    a, b = dicom_io.read_file(names[encoded]), dicom_io.read_file(names[reference])
    fa, fb = list(dicom_io.iter_frames(a)), list(dicom_io.iter_frames(b))
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_non_grayscale_objects_are_verbatim_with_a_reason():
    cases = {
        "liver.dcm": "Segmentation",  # 1-bit SEG
        "US1_UNCR.dcm": "RGB",  # colour ultrasound
        "OBXXXX1A.dcm": "PALETTE COLOR",
        "test-SR.dcm": "no pixel data",
        "rtplan.dcm": "no pixel data",
        "waveform_ecg.dcm": "no pixel data",
        "rtdose.dcm": "RT Dose",
    }
    for name, reason in cases.items():
        obj = dicom_io.read_file(_file(name))
        assert isinstance(obj, VerbatimObject), name
        assert reason in obj.reason, (name, obj.reason)
        assert dicom_io.read_verbatim_bytes(obj) == _file(name).read_bytes()


# --- bad input -----------------------------------------------------------------------------------------------


def test_zero_length_file(tmp_path):
    p = tmp_path / "empty.dcm"
    p.write_bytes(b"")
    with pytest.raises(NotDicomError, match="empty"):
        dicom_io.read_file(p)


def test_text_file(tmp_path):
    p = tmp_path / "notes.dcm"
    p.write_text("Patient arrived at 10:00.\nThis is not DICOM.\n" * 20)
    with pytest.raises(NotDicomError) as err:
        dicom_io.read_file(p)
    assert err.value.path == p and str(p) in str(err.value)


@pytest.mark.parametrize("keep", [0.02, 0.1, 0.5, 0.99])
def test_truncated_real_file(tmp_path, keep):
    src = _file("CT_small.dcm").read_bytes()
    p = tmp_path / "cut.dcm"
    p.write_bytes(src[: int(len(src) * keep)])
    with pytest.raises((TruncatedDicomError, PixelDataMismatchError)) as err:
        dicom_io.read_file(p)
    assert str(p) in str(err.value)
    if keep >= 0.5:  # inside Pixel Data: plainly truncation
        assert isinstance(err.value, TruncatedDicomError) and "7FE0,0010" in err.value.reason


def test_truncated_encapsulated_file(tmp_path):
    src = _by_name()["MR2_J2KR.dcm"].read_bytes()
    p = tmp_path / "cut_j2k.dcm"
    p.write_bytes(src[: len(src) - 5000])
    with pytest.raises(TruncatedDicomError):
        dicom_io.read_file(p)


def test_pixel_data_shorter_than_header_says(tmp_path):
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    p = tmp_path / "short_pixels.dcm"
    ds.save_as(p)
    with pytest.raises(PixelDataMismatchError) as err:
        dicom_io.read_file(p)
    assert "16384 bytes" in err.value.reason and "32768" in err.value.reason and str(p) in str(err.value)


def test_image_header_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    del ds.PixelData
    p = tmp_path / "no_pixels.dcm"
    ds.save_as(p)
    with pytest.raises(PixelDataMismatchError, match="no Pixel Data"):
        dicom_io.read_file(p)


def test_errors_are_picklable_and_keep_their_fields(tmp_path):
    err = TruncatedDicomError(tmp_path / "x.dcm", "ends early", study_instance_uid="1.2.3")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is TruncatedDicomError and back.path == err.path and back.reason == err.reason
    assert back.study_instance_uid == "1.2.3" and str(back) == str(err)


def test_raw_data_set_without_part10_header(tmp_path):
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    raw = pydicom.Dataset()
    raw.update(ds)  # the data set alone: no preamble, no file meta
    p = tmp_path / "raw.dcm"
    pydicom.dcmwrite(p, raw, enforce_file_format=False, implicit_vr=False, little_endian=True)
    assert p.read_bytes()[:2] == b"\x08\x00"
    obj = dicom_io.read_file(p)
    assert isinstance(obj, Instance)
    np.testing.assert_array_equal(next(dicom_io.iter_frames(obj)), ds.pixel_array)
    header = pydicom.dcmread(io.BytesIO(dicom_io.header_bytes(obj)))
    assert header.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID and "PixelData" not in header


# --- header bytes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["MR_small_padded.dcm", "MR2_J2KR.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm"])
def test_header_bytes_are_the_file_minus_pixel_data(name):
    path = _by_name()[name]
    header = dicom_io.header_bytes(dicom_io.read_file(path))
    original = pydicom.dcmread(path)
    back = pydicom.dcmread(io.BytesIO(header))
    assert "PixelData" not in back
    assert [e.tag for e in back] == [e.tag for e in original if e.tag != 0x7FE00010]
    for elem in back:
        assert elem.value == original[elem.tag].value, elem
    assert back.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    if not UID(original.file_meta.TransferSyntaxUID).is_deflated:  # a plain cut: every other byte kept
        raw = path.read_bytes()
        k = next(i for i, (a, b) in enumerate(zip(raw, header + b"\xff")) if a != b)  # first differing byte
        assert raw.endswith(header[k:])  # header = raw[:k] + raw[k + cut:]
        cut = len(raw) - len(header)
        assert cut >= len(original.PixelData) and raw[k : k + 4] in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")
    if name == "MR_small_padded.dcm":
        assert back[0xFFFCFFFC].value == original[0xFFFCFFFC].value  # an element after Pixel Data


# --- grouping and slice order --------------------------------------------------------------------------------


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
    ct = _file("CT_small.dcm")
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
    ct = _file("CT_small.dcm")
    for k, (z, n, uid) in enumerate([(0, 2, "1.2.3.9"), (0, 1, "1.2.3.8"), (-5, 9, "1.2.3.7"), (0, 2, "1.2.3.6")]):
        _slice(ct, tmp_path / f"d{k}.dcm", sop=uid, position=(0, 0, z), number=n, orientation=(1, 0, 0, 0, 1, 0))
    (study,) = dicom_io.read_studies([tmp_path]).studies
    assert [i.sop_instance_uid for i in study.series[0].instances] == ["1.2.3.7", "1.2.3.8", "1.2.3.6", "1.2.3.9"]


def test_without_positions_instance_number_orders(tmp_path):
    ct = _file("CT_small.dcm")
    for k, n in enumerate([3, 1, None, 2]):
        pos = (0, 0, 10 * k) if k != 1 else None  # one slice lacks its position: positions are not used at all
        _slice(ct, tmp_path / f"n{k}.dcm", sop=f"1.2.3.{k}", position=pos, number=n)
    (study,) = dicom_io.read_studies([tmp_path]).studies
    assert [i.instance_number for i in study.series[0].instances] == [1, 2, 3, None]


def test_grouping_into_studies_and_series_with_errors_kept_apart(tmp_path):
    ct = _file("CT_small.dcm")
    _slice(ct, tmp_path / "a1.dcm", sop="1.2.3.1", series="1.2.3.100", study="1.2.3.1000", position=(0, 0, 1))
    _slice(ct, tmp_path / "a2.dcm", sop="1.2.3.2", series="1.2.3.101", study="1.2.3.1000", position=(0, 0, 1))
    (tmp_path / "sub").mkdir()
    _slice(ct, tmp_path / "sub" / "b1.dcm", sop="1.2.3.3", series="1.2.3.200", study="1.2.3.2000", position=(0, 0, 1))
    shutil.copy(tmp_path / "a1.dcm", tmp_path / "sub" / "a1-copy.dcm")  # duplicate SOP Instance UID
    sr = pydicom.dcmread(_file("test-SR.dcm"))
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


def test_iter_frames_streams_one_frame_at_a_time():
    inst = dicom_io.read_file(_by_name()["emri_small.dcm"])
    frames = dicom_io.iter_frames(inst)
    first = next(frames)  # a generator: nothing else decoded yet
    assert first.shape == (64, 64) and inst.number_of_frames == 10
    assert sum(1 for _ in frames) == 9
    with pytest.raises(IndexError):
        dicom_io.read_frame(inst, 10)


# --- odd headers (issue 6's corpus starts here) ----------------------------------------------------------------


def _variant(tmp_path, name, **attrs):
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    for key, value in attrs.items():
        setattr(ds, key, value)
    p = tmp_path / name
    ds.save_as(p)
    return p


def test_bits_stored_larger_than_allocated_is_an_invalid_header(tmp_path):
    with pytest.raises(dicom_io.InvalidHeaderError, match="BitsStored 20"):
        dicom_io.read_file(_variant(tmp_path, "bs.dcm", BitsStored=20, HighBit=19))


def test_huge_declared_dimensions_are_refused_before_decoding(tmp_path):
    with pytest.raises(dicom_io.InvalidHeaderError, match="exceeds"):
        dicom_io.read_file(_variant(tmp_path, "huge.dcm", Rows=65535, Columns=65535))
    with pytest.raises(PixelDataMismatchError):  # plausible size, but the pixel data cannot hold it
        dicom_io.read_file(_variant(tmp_path, "big.dcm", Rows=4096, Columns=4096))


def test_mixed_image_sizes_in_one_series_are_each_read_as_they_are(tmp_path):
    small = _variant(tmp_path, "small.dcm", SOPInstanceUID="1.2.3.1", InstanceNumber=1)
    mr = pydicom.dcmread(_file("MR_small.dcm"))  # 64x64 into the CT's 128x128 series
    mr.StudyInstanceUID, mr.SeriesInstanceUID = pydicom.dcmread(small).StudyInstanceUID, pydicom.dcmread(
        small).SeriesInstanceUID
    mr.save_as(tmp_path / "other.dcm")
    (study,) = dicom_io.read_studies([tmp_path]).studies
    (series,) = study.series
    assert sorted((i.pixel.rows, i.pixel.columns) for i in series.instances) == [(64, 64), (128, 128)]
    for inst in series.instances:
        assert next(dicom_io.iter_frames(inst)).shape == (inst.pixel.rows, inst.pixel.columns)


def test_hostile_uids_are_read_as_plain_strings(tmp_path):
    p = _variant(tmp_path, "hostile.dcm", StudyInstanceUID="../../../tmp/evil", SOPInstanceUID="/etc/passwd")
    (study,) = dicom_io.read_studies([p]).studies
    assert study.study_instance_uid == "../../../tmp/evil"
    assert study.instances[0].sop_instance_uid == "/etc/passwd"
