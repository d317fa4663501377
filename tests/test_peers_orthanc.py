"""medzip against a real PACS: Debian's Orthanc (with its DICOMweb plugin) on loopback, configured from
tests/orthanc/orthanc.json.

- C-STORE and STOW-RS of the demo study written back by medzip (lossless, and lossy-labelled): Orthanc's REST API
  must list every instance, hold the same pixels, and render a frame of every image series as PNG.
- Orthanc sends a study to medzip's C-STORE listener (REST /modalities/medzip/store): every instance lands in the
  inbox, intact, and the inbox flow (when present) archives and releases it.

Skips, naming the reason, when Orthanc or its DICOMweb plugin is not installed (scripts/install_test_tools.sh).
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest

from dicom_io.network import CStoreDestination, run_listener, safe_name, send_cstore, send_stowrs
from tests.peers_study import build_input, image_series, written_study
from tests.peers_tools import INSTALL_HINT, skip_or_fail

CONFIG = Path(__file__).with_name("orthanc") / "orthanc.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    url: str
    aet: str
    dicom_port: int
    auth: tuple[str, str]
    listener_port: int  # where Orthanc's modality "medzip" points
    http: httpx.Client

    def lookup(self, uid: str, kind: str) -> str | None:
        r = self.http.post("/tools/lookup", content=uid)
        r.raise_for_status()
        ids = [x["ID"] for x in r.json() if x["Type"] == kind]
        return ids[0] if ids else None

    def instance_file(self, orthanc_id: str) -> pydicom.Dataset:
        r = self.http.get(f"/instances/{orthanc_id}/file")
        r.raise_for_status()
        from io import BytesIO

        return pydicom.dcmread(BytesIO(r.content))

    def preview(self, orthanc_id: str) -> httpx.Response:
        return self.http.get(f"/instances/{orthanc_id}/preview", headers={"Accept": "image/png"})

    def clear(self) -> None:
        for pid in self.http.get("/patients").json():
            self.http.delete(f"/patients/{pid}").raise_for_status()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    exe = shutil.which("Orthanc")
    if exe is None:
        skip_or_fail(f"Orthanc not installed; {INSTALL_HINT}")
    config = json.loads(CONFIG.read_text())
    missing = [p for p in config["Plugins"] if not Path(p).exists()]
    if missing:
        skip_or_fail(f"Orthanc plugins {missing} missing (orthanc-dicomweb, orthanc-gdcm); {INSTALL_HINT}")
    home = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port, listener_port = free_port(), free_port(), free_port()
    config.update(
        StorageDirectory=str(home / "storage"),
        IndexDirectory=str(home / "storage"),
        HttpPort=http_port,
        DicomPort=dicom_port,
        DicomModalities={"medzip": ["MEDZIP", "127.0.0.1", listener_port]},
    )
    (home / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = home / "orthanc.log"
    proc = subprocess.Popen([exe, "--no-jobs", f"--logfile={log}", str(home / "orthanc.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    user, password = next(iter(config["RegisteredUsers"].items()))
    url = f"http://127.0.0.1:{http_port}"
    client = httpx.Client(base_url=url, auth=(user, password), timeout=60)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"Orthanc exited with {proc.returncode}:\n{log.read_text()[-3000:] if log.exists() else ''}")
        try:
            if client.get("/system").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Orthanc did not answer within 30 s:\n{log.read_text()[-3000:] if log.exists() else ''}")
        time.sleep(0.2)
    plugins = client.get("/plugins").json()
    assert "dicom-web" in plugins and "gdcm" in plugins, f"plugins not loaded: {plugins}"
    yield Orthanc(url, config["DicomAet"], dicom_port, (user, password), listener_port, client)
    client.close()
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def demo_input(tmp_path_factory) -> Path:
    return build_input(tmp_path_factory.mktemp("demo-input"))


@pytest.fixture(scope="module", params=[False, True], ids=["lossless", "lossy"])
def study(request, demo_input, tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("lossy" if request.param else "lossless")
    return sorted(written_study(demo_input, out, lossy=request.param))


def _without_group_lengths(ds: pydicom.Dataset) -> pydicom.Dataset:
    for elem in [e for e in ds if e.tag.element == 0]:
        del ds[elem.tag]
    return ds


def assert_orthanc_holds(orthanc: Orthanc, files: list[Path]) -> None:
    """Every file is an instance in Orthanc with the same data set, and a frame of every image series renders."""
    ids = {}
    for f in files:
        ours = pydicom.dcmread(f)
        oid = orthanc.lookup(str(ours.SOPInstanceUID), "Instance")
        assert oid, f"{f.name}: Orthanc has no instance {ours.SOPInstanceUID}"
        ids[f] = oid
        theirs = orthanc.instance_file(oid)
        assert _without_group_lengths(theirs) == _without_group_lengths(ours), f"{f.name}: data set changed in transit"
    series = image_series(files)
    grayscale = 0
    for uid, members in series.items():
        ds = pydicom.dcmread(members[0], stop_before_pixels=True)
        r = orthanc.preview(ids[members[0]])
        rendered = r.status_code == 200 and r.content[:8] == PNG_MAGIC
        print(f"series {ds.Modality} {ds.PhotometricInterpretation} {ds.file_meta.TransferSyntaxUID.name}: "
              f"preview HTTP {r.status_code}{' PNG' if rendered else ''}")
        if str(ds.PhotometricInterpretation).startswith("MONOCHROME"):
            grayscale += 1
            assert rendered, f"series {uid}: Orthanc cannot render {members[0].name} (HTTP {r.status_code})"
        # Colour objects are verbatim (the original's bytes); Orthanc 1.10 + GDCM plugin 1.5 cannot decode the
        # bundled US1_J2KR.dcm (JPEG 2000, YBR_RCT: "Unsupported output photometric interpretation"), so its
        # preview is reported above but not required.
    assert grayscale >= 5, "the demo study has CT, MR, multi-frame MR, CR and NM grayscale series"
    print(f"Orthanc holds all {len(files)} instances and rendered a frame of each of {grayscale} grayscale series")


def test_cstore_to_orthanc(orthanc, study):
    orthanc.clear()
    dest = CStoreDestination("127.0.0.1", orthanc.dicom_port, called_ae=orthanc.aet, calling_ae="MEDZIP")
    results = send_cstore(study, dest, retries=1, backoff_s=0.2)
    assert all(r.delivered and r.status == 0 for r in results), [r.as_dict() for r in results if not r.delivered]
    assert_orthanc_holds(orthanc, study)


def test_stowrs_to_orthanc(orthanc, study):
    orthanc.clear()
    results = send_stowrs(study, f"{orthanc.url}/dicom-web", auth=orthanc.auth, retries=1, backoff_s=0.2)
    assert all(r.delivered for r in results), [r.as_dict() for r in results if not r.delivered]
    assert_orthanc_holds(orthanc, study)


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
        assert _without_group_lengths(got) == _without_group_lengths(orig), path.name
    print(f"Orthanc sent {len(landed)} instances; all landed intact in {folder}")
    archive_and_release(inbox, tmp_path, study_uid)


def archive_and_release(inbox: Path, tmp_path: Path, study_uid: str) -> None:
    """The scheduled flow's part: archive the settled inbox study and release it (needs the flows to exist)."""
    try:
        from flows.inbox import archive_inbox
        import flows.archive_flow  # noqa: F401  (archive_inbox's worker)
    except ImportError as exc:
        pytest.skip(f"received study landed in the inbox; archiving it needs the flows ({exc})")
    pytest.skip("archive step wired in a later commit")
