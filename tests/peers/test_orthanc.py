"""medzip against a real PACS: Debian's Orthanc (with its DICOMweb plugin) on loopback, configured from
tests/peers/orthanc/orthanc.json.

- C-STORE and STOW-RS of the demo study written back by medzip's writer (lossless): Orthanc's REST API
  must list every instance, hold the same pixels, and render a frame of every image series as PNG.
- Orthanc sends a study to medzip's C-STORE listener (REST /modalities/medzip/store): every instance lands in the
  inbox, intact (tests/peers/test_retrieved.py takes it on through the inbox flow to a released archive, retrieves it
  lossless and lossy and sends those back to Orthanc).

Skips, naming the reason, when Orthanc or its plugins are not installed (scripts/install_test_tools.sh); fails
instead under CI=true.
"""
from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from dicom_io.network import CStoreDestination, run_listener, safe_name, send_cstore, send_stowrs
from tests.helpers.peers_orthanc import Orthanc, assert_orthanc_holds, orthanc, without_group_lengths  # noqa: F401 (fixture)
from tests.helpers.peers_study import build_input, written_study


@pytest.fixture(scope="module")
def demo_input(tmp_path_factory) -> Path:
    return build_input(tmp_path_factory.mktemp("demo-input"))


@pytest.fixture(scope="module")
def study(demo_input, tmp_path_factory) -> list[Path]:
    """The demo study (with its large CR and MR) rebuilt losslessly by dicom_io.writer. Lossy-labelled files go to
    Orthanc in tests/peers/test_retrieved.py, straight from the retrieve flow."""
    return sorted(written_study(demo_input, tmp_path_factory.mktemp("lossless"), lossy=False))


def test_cstore_to_orthanc(orthanc, study):
    orthanc.clear()
    dest = CStoreDestination("127.0.0.1", orthanc.dicom_port, called_ae=orthanc.aet, calling_ae="MEDZIP")
    results = send_cstore(study, dest, retries=1, backoff_s=0.2)
    assert all(r.delivered and r.status == 0 for r in results), [r.as_dict() for r in results if not r.delivered]
    assert_orthanc_holds(orthanc, study, 5)  # CT, MR, multi-frame MR, CR, NM


def test_stowrs_to_orthanc(orthanc, study):
    orthanc.clear()
    results = send_stowrs(study, f"{orthanc.url}/dicom-web", auth=orthanc.auth, retries=1, backoff_s=0.2)
    assert all(r.delivered for r in results), [r.as_dict() for r in results if not r.delivered]
    assert_orthanc_holds(orthanc, study, 5)  # CT, MR, multi-frame MR, CR, NM


def test_wrong_called_ae_and_wrong_password_deliver_nothing(orthanc, study):
    orthanc.clear()
    dest = CStoreDestination("127.0.0.1", orthanc.dicom_port, called_ae="NOT-THE-PACS", calling_ae="MEDZIP")
    results = send_cstore(study[:2], dest, retries=1, backoff_s=0.05)
    assert all(not r.delivered and "rejected" in r.reason and r.attempts == 2 for r in results), results
    results = send_stowrs(study[:2], f"{orthanc.url}/dicom-web", auth=("medzip", "wrong"), retries=1, backoff_s=0.05)
    assert all(not r.delivered and "HTTP 401" in r.reason and r.attempts == 1 for r in results), results
    assert orthanc.http.get("/instances").json() == []


def test_orthanc_sends_a_study_to_the_listener(orthanc, demo_input, tmp_path):
    orthanc.clear()
    files = sorted(demo_input.iterdir())
    for f in files:  # the originals, as a modality would have stored them in the PACS
        orthanc.http.post("/instances", content=f.read_bytes()).raise_for_status()
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    study_id = orthanc.lookup(study_uid, "Study")

    inbox = tmp_path / "inbox"
    server = run_listener(inbox, "MEDZIP", orthanc.listener_port, "127.0.0.1", block=False)
    try:
        assert orthanc.http.post("/modalities/medzip/echo", json={}).status_code == 200
        r = orthanc.http.post("/modalities/medzip/store", json={"Resources": [study_id], "Synchronous": True})
        assert r.status_code == 200, r.text
    finally:
        server.shutdown()

    folder = inbox / safe_name(study_uid)
    landed = sorted(folder.glob("*.dcm"))
    assert len(landed) == len(files), sorted(p.name for p in folder.iterdir())
    assert not list(inbox.rglob(".incoming-*")), "temporary files left in the inbox"
    by_uid = {str(pydicom.dcmread(f).SOPInstanceUID): f for f in files}
    for path in landed:
        got = pydicom.dcmread(path)
        orig = pydicom.dcmread(by_uid[str(got.SOPInstanceUID)])
        assert path.name == f"{safe_name(got.SOPInstanceUID)}.dcm"
        assert without_group_lengths(got) == without_group_lengths(orig), path.name
    print(f"Orthanc sent {len(landed)} instances; all landed intact in {folder}")
