"""dicom_io.header: the header bytes an archive keeps are the file minus Pixel Data."""
from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.uid import UID

import dicom_io
from tests.helpers.dicom_files import grayscale_by_name

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on the broken test files


@pytest.mark.parametrize("name", ["MR_small_padded.dcm", "MR2_J2KR.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm"])
def test_header_bytes_are_the_file_minus_pixel_data(name):
    path = grayscale_by_name()[name]
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
