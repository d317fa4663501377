"""dicom_io.file_reader on the bundled real DICOM: formats, stored values, verbatim objects, typed errors."""
from __future__ import annotations

import io
import pickle

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID

import dicom_io
from dicom_io import (
    Instance,
    MissingAttributeError,
    NotDicomError,
    PixelDataMismatchError,
    TruncatedDicomError,
    UnsupportedPixelsError,
    VerbatimObject,
)
from tests.helpers.dicom_files import ct_variant, file_named, grayscale_by_name, path_ids
from tests.helpers.permissions import without_read_bypass
from tests.realdata import grayscale_image_files

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


@pytest.mark.parametrize("path", grayscale_image_files(), ids=path_ids(grayscale_image_files()))
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
        obj = dicom_io.read_file(file_named(name))
        assert isinstance(obj, VerbatimObject), name
        assert reason in obj.reason, (name, obj.reason)
        assert dicom_io.read_verbatim_bytes(obj) == file_named(name).read_bytes()


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
    src = file_named("CT_small.dcm").read_bytes()
    p = tmp_path / "cut.dcm"
    p.write_bytes(src[: int(len(src) * keep)])
    with pytest.raises((TruncatedDicomError, PixelDataMismatchError)) as err:
        dicom_io.read_file(p)
    assert str(p) in str(err.value)
    if keep >= 0.5:  # inside Pixel Data: plainly truncation
        assert isinstance(err.value, TruncatedDicomError) and "7FE0,0010" in err.value.reason


def test_truncated_encapsulated_file(tmp_path):
    src = grayscale_by_name()["MR2_J2KR.dcm"].read_bytes()
    p = tmp_path / "cut_j2k.dcm"
    p.write_bytes(src[: len(src) - 5000])
    with pytest.raises(TruncatedDicomError):
        dicom_io.read_file(p)


def test_pixel_data_shorter_than_header_says(tmp_path):
    ds = pydicom.dcmread(file_named("CT_small.dcm"))
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    p = tmp_path / "short_pixels.dcm"
    ds.save_as(p)
    with pytest.raises(PixelDataMismatchError) as err:
        dicom_io.read_file(p)
    assert "16384 bytes" in err.value.reason and "32768" in err.value.reason and str(p) in str(err.value)


def test_image_header_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(file_named("CT_small.dcm"))
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
    ds = pydicom.dcmread(file_named("CT_small.dcm"))
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


def test_bits_stored_larger_than_allocated_is_an_invalid_header(tmp_path):
    with pytest.raises(dicom_io.InvalidHeaderError, match="BitsStored 20"):
        dicom_io.read_file(ct_variant(tmp_path, "bs.dcm", BitsStored=20, HighBit=19))


def test_huge_declared_dimensions_are_refused_before_decoding(tmp_path):
    with pytest.raises(dicom_io.InvalidHeaderError, match="exceeds"):
        dicom_io.read_file(ct_variant(tmp_path, "huge.dcm", Rows=65535, Columns=65535))
    with pytest.raises(PixelDataMismatchError):  # plausible size, but the pixel data cannot hold it
        dicom_io.read_file(ct_variant(tmp_path, "big.dcm", Rows=4096, Columns=4096))


def test_a_file_without_read_permission_is_unreadable_now_not_garbage(tmp_path):
    import subprocess
    import sys

    src = file_named("CT_small.dcm")
    target = tmp_path / "slice.dcm"
    target.write_bytes(src.read_bytes())
    target.chmod(0)
    code = ("import pickle, sys\nfrom dicom_io import read_file\ntry:\n    read_file(sys.argv[1])\n"
            "except Exception as e:\n    sys.stdout.buffer.write(pickle.dumps(e))\n")
    out = subprocess.run([*without_read_bypass(), sys.executable, "-c", code, str(target)],
                         capture_output=True, check=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    err = pickle.loads(out.stdout)
    assert isinstance(err, dicom_io.UnreadableNowError) and err.transient
    assert "Permission denied" in err.reason and err.path == target
    target.chmod(0o600)
    assert dicom_io.read_file(target).sop_instance_uid  # readable again: the same file reads as before
