"""Retrieve on real archives: already-lossy input comes back byte for byte, every offered transfer syntax is written
and accepted by dciodvfy, and info / verify / retrieve of one archive need no Prefect server."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

from tests.helpers.flows import _find, make_config, write_study

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def jpeg_baseline_ct(dest: Path, study_uid: str) -> Path:
    """A real CT slice (CT_small, windowed to 8 bits) as a grayscale JPEG Baseline instance, made by libjpeg."""
    import imagecodecs

    ds = pydicom.dcmread(_find("CT_small.dcm"))
    values = ds.pixel_array.astype(np.float64)
    lo, hi = np.percentile(values, [1, 99])
    pixels = np.clip((values - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    ds.StudyInstanceUID = study_uid
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.LossyImageCompression, ds.LossyImageCompressionMethod, ds.LossyImageCompressionRatio = "01", "ISO_10918_1", "8"
    ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(pixels, level=90)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    path = dest / "jpeg_baseline.dcm"
    dest.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def archived(tmp_path_factory, prefect_server):
    """One real study archived losslessly: CT_small, MR_small, a JPEG Baseline CT and a JPEG 2000 irreversible MR."""
    from flows.archive_flow import archive_paths

    root = tmp_path_factory.mktemp("retrieve")
    uid = "1.2.826.0.1.3680043.8.498.63001"
    files = write_study(root / "in", uid, [_find("CT_small.dcm"), _find("MR_small.dcm"), _find("MR2_J2KI.dcm")])
    files.append(jpeg_baseline_ct(root / "in", uid))
    config = make_config(root / "home")
    (outcome,) = archive_paths([root / "in"], config)
    assert outcome["status"] == "released", outcome
    jpeg_only = jpeg_baseline_ct(root / "jpeg-only", "1.2.826.0.1.3680043.8.498.63002")
    (alone,) = archive_paths([jpeg_only], config)
    return {"root": root, "files": files, "config": config, "outcome": outcome, "jpeg_only": (jpeg_only, alone)}


def test_already_lossy_input_is_archived_and_retrieved_byte_for_byte(archived, tmp_path):
    from archive import ArchiveReader

    from flows.audit_flow import audit_quality
    from flows.retrieve_flow import retrieve_study

    o, files = archived["outcome"], archived["files"]
    lossy = {str(files[2]), str(files[3])}
    assert {k["file"] for k in o["kept_as_received"]} == lossy
    assert all("no gate applied" in k["reason"] for k in o["kept_as_received"])
    assert o["frames"] == 2 and o["modes_used"] == {"lossless": 2}, "lossy input is not re-coded"
    with ArchiveReader(o["archive"]) as r:
        stored = {v.sop_instance_uid: v for v in r.verbatim()}
        for f in files[2:]:
            sop = pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
            assert r.verbatim_bytes(stored[sop]) == f.read_bytes() and stored[sop].nbytes == f.stat().st_size
    result = retrieve_study(o["archive"], tmp_path / "out", archived["config"])
    back = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: Path(p) for p in result["files"]}
    for f in files[2:]:
        assert back[pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID].read_bytes() == f.read_bytes()
    # a study of that JPEG alone: the archive is the JPEG's bytes plus the archive's own structure (measured:
    # 10,650 bytes in, 17,758 bytes of archive; before, the learned codec re-coded it into a larger payload)
    path, alone = archived["jpeg_only"]
    assert alone["status"] == "released" and alone["frames"] == 0 and alone["verbatim"] == 1
    assert Path(alone["archive"]).stat().st_size <= path.stat().st_size + 16 * 1024
    report = audit_quality(archived["config"], images=False)
    data = json.loads(Path(report["json"]).read_text())
    kept = {k["sop_instance_uid"]: k for a in data["archives"] for k in a["kept_as_received"]}
    assert any("already lossy-compressed" in k["reason"] and "no gate applied" in k["reason"] for k in kept.values())
    assert "no gate applied" in Path(report["html"]).read_text()


@pytest.mark.parametrize("syntax", ["explicit-le", "jpeg-ls", "jpeg2000", "htj2k"])
def test_retrieve_writes_each_offered_transfer_syntax(archived, tmp_path, syntax):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed (scripts/install_test_tools.sh)")
    from dicom_io import iter_frames, read_file
    from dicom_io.writer import DELIVERY_SYNTAXES

    from flows.retrieve_flow import retrieve_study

    result = retrieve_study(archived["outcome"]["archive"], tmp_path / "out", archived["config"], syntax)
    assert result["bit_exact"] == 2 and result["verbatim"] == 2
    originals = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in archived["files"][:2]}
    for inst in result["instances"]:
        if inst.get("verbatim"):
            continue
        path = Path(inst["file"])
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == DELIVERY_SYNTAXES[syntax]
        original = read_file(originals[ds.SOPInstanceUID])
        for a, b in zip(iter_frames(original), iter_frames(read_file(path)), strict=True):
            assert np.array_equal(a, b)
        if syntax == "htj2k":  # this dicom3tools (2022) predates HTJ2K: judge the same data set labelled J2K
            ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
            path = tmp_path / "as-j2k.dcm"
            ds.save_as(path, enforce_file_format=True)
        assert _dciodvfy_errors(path) == [], path


def test_info_verify_and_retrieve_of_one_archive_need_no_prefect_server(archived, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"PREFECT_SERVER_EPHEMERAL_ENABLED": "false", "MEDZIP_HOME": str(archived["config"].home)}
    archive = archived["outcome"]["archive"]

    def medzip(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=600)

    for args in (["info", archive, "--json"], ["verify", archive, "--json"],
                 ["retrieve", archive, str(tmp_path / "out"), "--json"], ["audit", "--no-images", "--json"]):
        done = medzip(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert json.loads(done.stdout)["ok"] is True
    info = json.loads(medzip("info", archive, "--json").stdout)
    assert info["modes_stored"] == {"lossless": 2} and len(info["kept_as_received"]) == 2
    # the same environment refuses any flow run, so the commands above really ran without one
    assert "No Prefect API URL" in medzip("archive", str(archived["root"] / "in"), "--json").stdout
