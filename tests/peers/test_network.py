"""C-STORE SCU/SCP and STOW-RS client, tested against our own listener and against scripted peers.

These need no Debian tools (the tests against a real PACS are in tests/peers/test_orthanc.py)."""
from __future__ import annotations

import errno
import json
import socket
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicom_io import pacs_listen
from dicom_io.pacs_listen import run_listener, safe_name
from dicom_io.pacs_send import CStoreDestination, send_cstore, send_stowrs
from tests.realdata import data_roots

PYDICOM = data_roots()[0]
STORE = data_roots()[1]
# Real files in several transfer syntaxes, each with its own SOP instance UID.
SAMPLES = [
    STORE / "693_J2KR.dcm",  # JPEG 2000 lossless
    STORE / "JPEG-LL.dcm",  # JPEG lossless
    STORE / "OBXXXX1A_rle.dcm",  # RLE
    STORE / "emri_small_big_endian.dcm",  # explicit big endian (retired, still sent as is)
    PYDICOM / "MR_small_implicit.dcm",  # implicit little endian
    PYDICOM / "image_dfl.dcm",  # deflated
    PYDICOM / "CT_small.dcm",  # explicit little endian
]
NO_STUDY_UID = PYDICOM / "JPEGLSNearLossless_08.dcm"  # a real file without StudyInstanceUID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _without_group_lengths(ds):
    for elem in [e for e in ds if e.tag.element == 0]:
        del ds[elem.tag]
    return ds


@pytest.fixture
def listener(tmp_path):
    inbox = tmp_path / "inbox"
    port = free_port()
    server = run_listener(inbox, "MEDZIP", port, "127.0.0.1", block=False)
    yield inbox, CStoreDestination("127.0.0.1", port, called_ae="MEDZIP", calling_ae="TESTSCU", timeout_s=10)
    server.shutdown()


def test_cstore_round_trip_lands_every_file_in_the_inbox_unchanged(listener):
    inbox, dest = listener
    results = send_cstore(SAMPLES, dest, retries=0)
    assert [r.path for r in results] == SAMPLES
    assert all(r.delivered and r.status == 0 and r.attempts == 1 for r in results), [r.as_dict() for r in results]
    for src in SAMPLES:
        orig = pydicom.dcmread(src)
        landed = inbox / safe_name(orig.StudyInstanceUID) / f"{safe_name(orig.SOPInstanceUID)}.dcm"
        got = pydicom.dcmread(landed)
        syntaxes = {got.file_meta.TransferSyntaxUID, orig.file_meta.TransferSyntaxUID}
        # compressed data goes as it is; implicit/explicit little endian may be swapped as the SCP chooses
        assert len(syntaxes) == 1 or syntaxes == {ImplicitVRLittleEndian, ExplicitVRLittleEndian}
        # every element, pixel data included, as sent (pynetdicom drops the retired group lengths)
        assert _without_group_lengths(got) == _without_group_lengths(orig), src.name
    assert not list(inbox.rglob(".*")), "temporary files left behind"


def test_listener_refuses_a_dataset_without_study_uid_and_writes_nothing(listener):
    inbox, dest = listener
    [result] = send_cstore([NO_STUDY_UID], dest, retries=2, backoff_s=0.01)
    assert not result.delivered
    assert result.status == pacs_listen.MISSING_UID
    assert result.attempts == 1, "a permanent refusal is not retried"
    assert not any(p.is_file() for p in inbox.rglob("*"))


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the invalid UID is the point of the test
def test_hostile_uids_never_leave_the_inbox(listener, tmp_path):
    inbox, dest = listener
    ds = pydicom.dcmread(PYDICOM / "CT_small.dcm")
    ds.StudyInstanceUID = "../../../escaped"
    src = tmp_path / "hostile.dcm"
    ds.save_as(src)
    [result] = send_cstore([src], dest, retries=0)
    assert result.delivered
    [landed] = [p for p in inbox.rglob("*.dcm")]
    assert landed.resolve().is_relative_to(inbox.resolve())
    assert not (tmp_path / "escaped").exists()
    for uid in ["..", ".", "", "/etc/passwd", "1.2/../../3", "a" * 200, "1.2.3\x00"]:
        name = safe_name(uid)
        assert name and "/" not in name and not name.startswith(".") and "\x00" not in name, (uid, name)
    assert safe_name("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"
    assert safe_name("../x") != safe_name("__x"), "odd UIDs are tagged with a hash so they cannot collide"


def test_disk_failure_is_out_of_resources_and_retried(listener, monkeypatch):
    inbox, dest = listener
    real_store = pacs_listen.store_instance
    calls = {"n": 0}

    def flaky_store(*args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_store(*args)

    monkeypatch.setattr(pacs_listen, "store_instance", flaky_store)
    [result] = send_cstore([SAMPLES[-1]], dest, retries=2, backoff_s=0.01)
    assert result.delivered and result.attempts == 2, result.as_dict()

    def full_disk(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pacs_listen, "store_instance", full_disk)
    [result] = send_cstore([SAMPLES[0]], dest, retries=2, backoff_s=0.01)
    assert not result.delivered
    assert result.status == pacs_listen.OUT_OF_RESOURCES and result.attempts == 3


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def broken_fsync(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr("os.fsync", broken_fsync)
    with pytest.raises(OSError):
        pacs_listen.store_instance(tmp_path, "1.2.3", "1.2.3.4", (PYDICOM / "CT_small.dcm").read_bytes())
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_no_peer_means_nothing_delivered_after_retries():
    dest = CStoreDestination("127.0.0.1", free_port(), "NOBODY", "MEDZIP", timeout_s=2)
    results = send_cstore(SAMPLES[:2], dest, retries=2, backoff_s=0.01)
    assert all(not r.delivered and r.attempts == 3 and "association" in r.reason for r in results)


def test_warning_status_is_not_counted_as_delivered(tmp_path):
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    ae = AE("WARNS")
    ae.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda e: 0xB000)])
    try:
        [result] = send_cstore([PYDICOM / "CT_small.dcm"], CStoreDestination("127.0.0.1", port, "WARNS"), retries=2)
    finally:
        server.shutdown()
    assert not result.delivered and result.status == 0xB000 and result.attempts == 1
    assert "warning" in result.reason


def test_unreadable_file_is_reported_not_sent(tmp_path, listener):
    _, dest = listener
    junk = tmp_path / "notes.dcm"
    junk.write_text("not DICOM")
    results = send_cstore([junk, SAMPLES[-1]], dest, retries=0)
    assert not results[0].delivered and "cannot read" in results[0].reason and results[0].attempts == 0
    assert results[1].delivered


# ---------------------------------------------------------------- STOW-RS against a scripted server

def _split_multipart(request: httpx.Request) -> list[bytes]:
    ctype = request.headers["content-type"]
    assert ctype.startswith("multipart/related") and 'type="application/dicom"' in ctype
    boundary = ctype.split("boundary=")[1].encode()
    parts = request.content.split(b"--" + boundary)[1:-1]
    out = []
    for part in parts:
        head, body = part.split(b"\r\n\r\n", 1)
        assert b"Content-Type: application/dicom" in head
        out.append(body[:-2])  # the CRLF before the next boundary
    return out


def _reply(referenced=(), failed=(), warned=()):
    body = {}
    if referenced or warned:
        items = [{"00081155": {"vr": "UI", "Value": [u]}} for u in referenced]
        items += [{"00081155": {"vr": "UI", "Value": [u]}, "00081196": {"vr": "US", "Value": [0xB000]}} for u in warned]
        body["00081199"] = {"vr": "SQ", "Value": items}
    if failed:
        body["00081198"] = {
            "vr": "SQ",
            "Value": [{"00081155": {"vr": "UI", "Value": [u]}, "00081197": {"vr": "US", "Value": [c]}} for u, c in failed],
        }
    return body


def test_stowrs_per_instance_results_and_retries():
    files = SAMPLES[:4]
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/dicom-web/studies"
        parts = _split_multipart(request)
        seen.append([str(pydicom.dcmread(__import__("io").BytesIO(p)).SOPInstanceUID) for p in parts])
        if len(seen) == 1:
            return httpx.Response(503, text="busy")
        if len(seen) == 2:  # one stored, one refused for good, one out of resources, one stored with a warning
            body = _reply(referenced=[uids[0]], failed=[(uids[1], 0xC122), (uids[2], 0xA700)], warned=[uids[3]])
            return httpx.Response(202, json=body)
        return httpx.Response(200, json=_reply(referenced=seen[-1]))

    client = httpx.Client(transport=httpx.MockTransport(handler))
    results = send_stowrs(files, "http://pacs.test/dicom-web", client=client, retries=3, backoff_s=0.01)
    assert seen[0] == uids and seen[1] == uids and seen[2] == [uids[2]], "only the transient failure goes again"
    assert [r.delivered for r in results] == [True, False, True, False]
    assert results[1].status == 0xC122 and results[1].attempts == 2
    assert results[2].attempts == 3
    assert results[3].status == 0xB000 and "warning" in results[3].reason
    assert all(r.protocol == "stowrs" for r in results)


def test_stowrs_gives_up_after_retries_and_splits_large_requests():
    calls = []

    def handler(request):
        calls.append(len(_split_multipart(request)))
        return httpx.Response(500, text="boom")

    client = httpx.Client(transport=httpx.MockTransport(handler))
    results = send_stowrs(SAMPLES[:3], "http://pacs.test/dicom-web/studies", client=client, retries=1,
                          backoff_s=0.01, max_request_bytes=1)
    assert calls == [1, 1, 1, 1, 1, 1]  # each file alone (over the size limit), twice
    assert all(not r.delivered and r.attempts == 2 and "HTTP 500" in r.reason for r in results)
    json.dumps([r.as_dict() for r in results])  # reports serialise for --json


# ---------------------------------------------------------------- the [delivery] config section

def test_deliver_follows_the_config(listener, monkeypatch):
    from configs.schema import Delivery
    from dicom_io.network import DeliveryError, deliver

    inbox, dest = listener
    assert deliver(SAMPLES, Delivery()) == []  # kind "none"
    cfg = Delivery(kind="cstore", host=dest.host, port=dest.port, called_ae=dest.called_ae, retries=0)
    assert all(r.delivered for r in deliver(SAMPLES[:2], cfg))
    assert len(list(inbox.rglob("*.dcm"))) == 2

    stow = Delivery(kind="stowrs", url="http://pacs.test/dicom-web", username="u", password_env="MEDZIP_TEST_PW")
    monkeypatch.delenv("MEDZIP_TEST_PW", raising=False)
    with pytest.raises(DeliveryError, match="MEDZIP_TEST_PW"):
        deliver(SAMPLES[:1], stow)


def test_delivery_config_names_the_wrong_field(tmp_path):
    from configs.schema import ConfigError, load_config

    bad = tmp_path / "bad.toml"
    bad.write_text('[delivery]\nkind = "cstore"\ncalled_ae = "A-VERY-LONG-AE-TITLE-INDEED"\n')
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "delivery.called_ae" in str(err.value)
    bad.write_text('[delivery]\nkind = "stowrs"\n')
    with pytest.raises(ConfigError, match="delivery.url"):
        load_config(bad)


def test_medzip_listen_command_receives_into_the_configured_inbox(tmp_path):
    import os
    import subprocess
    import sys
    import time

    port = free_port()
    env = {**os.environ, "MEDZIP_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "listen", "--port", str(port), "--ae-title", "MZ"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        dest = CStoreDestination("127.0.0.1", port, called_ae="MZ", calling_ae="TESTSCU", timeout_s=5)
        deadline = time.monotonic() + 60
        while True:
            results = send_cstore(SAMPLES[-1:], dest, retries=0)
            if results[0].delivered or time.monotonic() > deadline or proc.poll() is not None:
                break
            time.sleep(0.5)
        assert results[0].delivered, (results[0].as_dict(), proc.poll())
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    ds = pydicom.dcmread(SAMPLES[-1], stop_before_pixels=True)
    assert (tmp_path / "home" / "inbox" / ds.StudyInstanceUID / f"{ds.SOPInstanceUID}.dcm").is_file(), out
