"""What medzip writes, judged by independent tools: dicom3tools' dciodvfy, dcmtk's dcmdump and dcmj2pnm.

The study is the demo's multi-series study built from the bundled real files (CT, MR, multi-frame MR, CR, NM,
plus a colour US image and an SR kept verbatim), written back lossless and with lossy labelling.

About dciodvfy errors: several of the bundled originals are not conformant themselves (e.g. 693_J2KR.dcm lacks
FrameOfReferenceUID and Laterality, emri_small_RLE.dcm is an Enhanced MR without its functional groups,
RG1_J2KR.dcm has PixelSpacing 0\\0). Those defects travel with the header, as they must: medzip does not
invent attributes. So every written file is checked against dciodvfy's verdict on its ORIGINAL, and the test
asserts that we add no error of our own; the inherited errors and all warnings are printed (pytest -s or -rA).
"""
from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from tests.helpers.peers_study import build_input, original_of, originals_by_uid, written_study
from tests.helpers.peers_tools import check_files, dciodvfy, require


@pytest.fixture(scope="module")
def demo_input(tmp_path_factory) -> Path:
    return build_input(tmp_path_factory.mktemp("demo-input"))


@pytest.mark.parametrize("lossy", [False, True], ids=["lossless", "lossy"])
def test_writer_output_passes_independent_tools(demo_input, tmp_path, lossy):
    require("dciodvfy", "dcmdump", "dcmj2pnm")
    written = written_study(demo_input, tmp_path / "out", lossy)
    assert len(written) == len(list(demo_input.iterdir()))
    originals = originals_by_uid(demo_input)
    assert {original_of(p, originals) for p in written} == set(demo_input.iterdir())
    derived = check_files(written, tmp_path)
    assert derived == 0 if not lossy else derived == 5, f"{derived} lossy derivatives"  # CT, MR, MR, CR, NM


def test_the_comparison_catches_a_defect_we_add(demo_input, tmp_path):
    """The 'no new errors' check is not vacuous: a file with a Type 1 attribute removed fails it."""
    require("dciodvfy")
    src = demo_input / "693_J2KR.dcm"
    ds = pydicom.dcmread(src)
    del ds.SOPClassUID
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken, enforce_file_format=False)
    assert set(dciodvfy(broken).errors) - set(dciodvfy(src).errors)
