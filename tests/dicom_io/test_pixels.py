"""dicom_io.pixels: every transfer syntax decodes to the same stored values, one frame at a time."""
from __future__ import annotations

import numpy as np
import pytest

import dicom_io
from tests.helpers.dicom_files import grayscale_by_name

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on the broken test files


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


@pytest.mark.parametrize("encoded,reference", SAME_PIXELS, ids=[a for a, _ in SAME_PIXELS])
def test_every_transfer_syntax_decodes_to_the_same_stored_values(encoded, reference):
    names = grayscale_by_name()
    a, b = dicom_io.read_file(names[encoded]), dicom_io.read_file(names[reference])
    fa, fb = list(dicom_io.iter_frames(a)), list(dicom_io.iter_frames(b))
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_iter_frames_streams_one_frame_at_a_time():
    inst = dicom_io.read_file(grayscale_by_name()["emri_small.dcm"])
    frames = dicom_io.iter_frames(inst)
    first = next(frames)  # a generator: nothing else decoded yet
    assert first.shape == (64, 64) and inst.number_of_frames == 10
    assert sum(1 for _ in frames) == 9
    with pytest.raises(IndexError):
        dicom_io.read_frame(inst, 10)
