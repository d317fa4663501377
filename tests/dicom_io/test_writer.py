"""dicom_io writing: lossless rebuild of every bundled grayscale instance, compressed syntaxes, lossy labelling
(PS3.3 C.7.6.1.1.5), refusal of bad pixels, safe file names."""
from __future__ import annotations

import os
import stat
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

import dicom_io
from dicom_io import DicomWriteError, Instance, LossyInfo
from dicom_io.writer import format_ratio, instance_path, lossy_labelling, safe_filename
from tests.realdata import all_files, grayscale_image_files

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on the odd bundled files

ENCAPSULATION = {0x7FE00010, 0x7FE00001, 0x7FE00002}
# File meta elements the writer sets: the new transfer syntax, the Media Storage UIDs made equal to the data
# set's (PS3.10 requires it; bad_sequence.dcm disagrees with itself), and an implementation UID/name when absent.
META_CHANGED = {0x00020000, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013}


def _file(name: str):
    return next(p for p in all_files() if p.name == name)


UNDECODABLE = ("JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm")  # see test_file_reader


def _rebuildable(p) -> bool:
    try:
        obj = dicom_io.read_file(p)
    except dicom_io.DicomReadError:
        return False  # broken on purpose: covered by test_file_reader
    return isinstance(obj, Instance) and p.name not in UNDECODABLE


def _instances():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [p for p in grayscale_image_files() if _rebuildable(p)]


def differences(a: Dataset, b: Dataset, skip=frozenset(), where="") -> list[str]:
    """Every element whose presence or value differs (sequences compared item by item); group lengths ignored."""
    out = []
    for elem in a:
        if elem.tag in skip or elem.tag.element == 0:
            continue
        if elem.tag not in b:
            out.append(f"{where}{elem.tag} {elem.keyword} missing")
        elif elem.VR == "SQ":
            other = b[elem.tag].value
            if len(other) != len(elem.value):
                out.append(f"{where}{elem.tag} {elem.keyword}: {len(elem.value)} items, now {len(other)}")
            for k, (x, y) in enumerate(zip(elem.value, other)):
                out += differences(x, y, skip, f"{where}{elem.tag}[{k}].")
        elif elem.value != b[elem.tag].value:
            out.append(f"{where}{elem.tag} {elem.keyword}: {elem.value!r} != {b[elem.tag].value!r}")
    out += [f"{where}{e.tag} {e.keyword} added" for e in b if e.tag not in a and e.tag not in skip and e.tag.element]
    return out


INSTANCES = _instances()


@pytest.mark.parametrize("path", INSTANCES, ids=[f"{p.parent.name}/{p.name}" for p in INSTANCES])
def test_lossless_rebuild_is_bit_exact_with_every_attribute_kept(path, tmp_path):
    inst = dicom_io.read_file(path)
    frames = list(dicom_io.iter_frames(inst))
    out = dicom_io.write_instance(dicom_io.header_bytes(inst), frames, tmp_path / "out.dcm")

    written = pydicom.dcmread(out)
    assert written.preamble is not None and written.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    back = dicom_io.read_file(out)
    assert back.pixel == inst.pixel and back.number_of_frames == inst.number_of_frames
    for original, again in zip(frames, dicom_io.iter_frames(back), strict=True):
        assert again.dtype == original.dtype
        np.testing.assert_array_equal(again, original)

    source = pydicom.dcmread(path, force=True)
    assert differences(source, written, ENCAPSULATION) == []
    assert differences(source.file_meta, written.file_meta, META_CHANGED) == []
    assert written.SOPInstanceUID == source.SOPInstanceUID  # lossless keeps the UIDs
    assert written.file_meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID
    assert written.HighBit == written.BitsStored - 1
    assert len(written.PixelData) == inst.pixel.rows * inst.pixel.columns * inst.number_of_frames * (
        inst.pixel.bits_allocated // 8) + (1 if (inst.pixel.rows * inst.pixel.columns * inst.number_of_frames) % 2
                                           and inst.pixel.bits_allocated == 8 else 0)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=lambda s: s.name)
@pytest.mark.parametrize("name", ["MR_small.dcm", "emri_small.dcm", "vlut_04.dcm", "693_UNCR.dcm"])
def test_compressed_lossless_syntaxes_round_trip(name, syntax, tmp_path):
    inst = dicom_io.read_file(_file(name))
    frames = list(dicom_io.iter_frames(inst))
    out = dicom_io.write_instance(dicom_io.header_bytes(inst), frames, tmp_path / "c.dcm", transfer_syntax=syntax)
    written = pydicom.dcmread(out)
    assert written.file_meta.TransferSyntaxUID == syntax and written.SOPInstanceUID == inst.sop_instance_uid
    for a, b in zip(frames, dicom_io.iter_frames(dicom_io.read_file(out)), strict=True):
        np.testing.assert_array_equal(a, b)


# --- lossy labelling ------------------------------------------------------------------------------------------


def _floats(value) -> list[float]:
    return [float(v) for v in (value if isinstance(value, pydicom.multival.MultiValue) else [value])]


def _lossy_decode(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """A synthetic lossy decode: the original plus noise, kept inside the original's range."""
    noise = np.random.default_rng(seed).integers(-4, 5, size=frame.shape)
    return np.clip(frame.astype(np.int64) + noise, frame.min(), frame.max()).astype(frame.dtype)


def test_lossy_rebuild_is_labelled(tmp_path):
    src = _file("CT_small.dcm")
    inst = dicom_io.read_file(src)
    decoded = [_lossy_decode(f) for f in dicom_io.iter_frames(inst)]
    out = dicom_io.write_instance(dicom_io.header_bytes(inst), decoded, tmp_path, lossy=LossyInfo(ratio=11.25))
    ds, original = pydicom.dcmread(out), pydicom.dcmread(src)

    assert ds.LossyImageCompression == "01"
    assert _floats(ds.LossyImageCompressionRatio) == [11.25]
    assert ds.LossyImageCompressionMethod == "MEDZIP_CNN"
    assert list(ds.ImageType) == ["DERIVED", *list(original.ImageType)[1:]]
    assert ds.SOPInstanceUID != original.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert out == tmp_path / f"{ds.SOPInstanceUID}.dcm"  # a folder given: named by the new UID
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID) == (original.StudyInstanceUID, original.SeriesInstanceUID)
    (source,) = ds.SourceImageSequence
    assert source.ReferencedSOPInstanceUID == original.SOPInstanceUID
    assert source.PurposeOfReferenceCodeSequence[0].CodeValue == "121320"
    assert ds.DerivationCodeSequence[-1].CodeValue == "113040"
    np.testing.assert_array_equal(next(dicom_io.iter_frames(dicom_io.read_file(out))), decoded[0])
    # everything else is the original's
    changed = {0x00082111, 0x00089215, 0x00082112, 0x00080008, 0x00080018, 0x00282110, 0x00282112, 0x00282114}
    assert differences(original, ds, ENCAPSULATION | changed) == []


def test_lossy_labelling_appends_to_an_earlier_lossy_history():
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = ["8.5", "2"]
    ds.LossyImageCompressionMethod = ["ISO_10918_1", "ISO_15444_1"]
    lossy_labelling(ds, 12.0)
    assert ds.LossyImageCompression == "01"
    assert [float(r) for r in ds.LossyImageCompressionRatio] == [8.5, 2.0, 12.0]
    assert list(ds.LossyImageCompressionMethod) == ["ISO_10918_1", "ISO_15444_1", "MEDZIP_CNN"]
    assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "AXIAL"]
    assert ds.SOPInstanceUID != "1.2.3.4" and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    first_new = ds.SOPInstanceUID
    lossy_labelling(ds, 3.0, "ISO_14495_1")  # a second lossy step appends again and gets its own UID
    assert [float(r) for r in ds.LossyImageCompressionRatio] == [8.5, 2.0, 12.0, 3.0]
    assert list(ds.LossyImageCompressionMethod)[-1] == "ISO_14495_1" and ds.SOPInstanceUID != first_new
    assert [s.ReferencedSOPInstanceUID for s in ds.SourceImageSequence] == ["1.2.3.4", first_new]


def test_earlier_ratio_without_method_gets_its_syntax_term(tmp_path):
    inst = dicom_io.read_file(_file("JPGExtended.dcm"))  # LossyImageCompression 01, ratio 76, no method
    frames = list(dicom_io.iter_frames(inst))
    ds = dicom_io.build_dataset(dicom_io.header_bytes(inst), frames, lossy=LossyInfo(ratio=20))
    assert [float(r) for r in ds.LossyImageCompressionRatio] == [76.0, 20.0]
    assert list(ds.LossyImageCompressionMethod) == ["ISO_10918_1", "MEDZIP_CNN"]


def test_lossy_labelling_without_image_type_and_bad_arguments():
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3"
    lossy_labelling(ds, 7)
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and _floats(ds.LossyImageCompressionRatio) == [7.0]
    with pytest.raises(DicomWriteError):
        lossy_labelling(ds, 5, "medzip cnn")  # not a CS value
    with pytest.raises(DicomWriteError):
        lossy_labelling(ds, float("nan"))
    assert format_ratio(1234.56789) == "1234.5679" and len(format_ratio(3e12)) <= 16


# --- refusal of bad pixels -------------------------------------------------------------------------------------


def test_writer_refuses_pixels_that_do_not_fit_the_header(tmp_path):
    inst = dicom_io.read_file(_file("emri_small.dcm"))  # 10 frames of 64x64, unsigned 12 bits in 16
    header = dicom_io.header_bytes(inst)
    frames = list(dicom_io.iter_frames(inst))
    with pytest.raises(DicomWriteError, match="outside BitsStored 12"):
        dicom_io.write_instance(header, [frames[0] + 4096, *frames[1:]], tmp_path / "x.dcm")
    with pytest.raises(DicomWriteError, match="header says"):
        dicom_io.write_instance(header, [f[:32] for f in frames], tmp_path / "x.dcm")
    with pytest.raises(DicomWriteError, match="NumberOfFrames 10"):
        dicom_io.write_instance(header, frames[:9], tmp_path / "x.dcm")
    with pytest.raises(DicomWriteError, match="dtype"):
        dicom_io.write_instance(header, [f.astype(np.float32) for f in frames], tmp_path / "x.dcm")
    with pytest.raises(DicomWriteError, match="not one medzip writes"):
        dicom_io.write_instance(header, frames, tmp_path / "x.dcm", transfer_syntax=pydicom.uid.JPEGBaseline8Bit)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_signed_values_are_written_as_twos_complement(tmp_path):
    inst = dicom_io.read_file(_file("693_UNCI.dcm"))  # signed, 14 bits stored in 16
    frame = next(dicom_io.iter_frames(inst))
    assert frame.min() < 0
    out = dicom_io.write_instance(dicom_io.header_bytes(inst), [frame], tmp_path / "s.dcm")
    raw = np.frombuffer(pydicom.dcmread(out).PixelData, "<i2").reshape(frame.shape)
    np.testing.assert_array_equal(raw, frame)  # sign-extended, as the original file stores them


# --- file names and verbatim objects ---------------------------------------------------------------------------


@pytest.mark.parametrize("uid", ["../../etc/passwd", "/etc/shadow", "..", ".", "", "a/b\\c:d", "9" * 300, "1.2.3\x00"])
def test_hostile_uids_give_safe_names_inside_the_folder(uid, tmp_path):
    name = safe_filename(uid)
    assert "/" not in name and "\\" not in name and not name.startswith(".") and len(name) <= 100
    path = instance_path(tmp_path, uid)
    assert path.parent == tmp_path
    assert safe_filename("1.2.840.113619.2.55") == "1.2.840.113619.2.55.dcm"  # ordinary UIDs unchanged
    assert safe_filename(uid) != safe_filename(uid + "x")


def test_write_instance_into_a_folder_with_a_hostile_uid(tmp_path):
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    ds.SOPInstanceUID = "../../escape"
    inst_file = tmp_path / "in.dcm"
    ds.save_as(inst_file)
    inst = dicom_io.read_file(inst_file)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = dicom_io.write_instance(dicom_io.header_bytes(inst), dicom_io.iter_frames(inst), out_dir)
    assert out.parent == out_dir and pydicom.dcmread(out).SOPInstanceUID == "../../escape"
    assert stat.S_IMODE(os.stat(out).st_mode) & 0o077 == 0  # patient data: not readable by others
    assert [p.name for p in out_dir.iterdir()] == [out.name]  # no temporary left behind


@pytest.mark.parametrize("name", ["test-SR.dcm", "liver.dcm", "US1_UNCR.dcm", "rtdose.dcm"])
def test_verbatim_objects_come_back_byte_identical(name, tmp_path):
    obj = dicom_io.read_file(_file(name))
    assert isinstance(obj, dicom_io.VerbatimObject)
    raw = dicom_io.read_verbatim_bytes(obj)
    out = dicom_io.write_verbatim(raw, tmp_path)
    assert out.read_bytes() == _file(name).read_bytes()
    assert out == instance_path(tmp_path, obj.sop_instance_uid)
    assert dicom_io.write_verbatim(raw, tmp_path / "named.dcm").read_bytes() == raw
