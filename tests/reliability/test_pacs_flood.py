"""A PACS flood: `medzip listen` (the real command, a child process) under N concurrent associations of C-STOREs of
real instances (pynetdicom SCUs through dicom_io's send_cstore), some of them refused on purpose (no Study Instance
UID). Every instance answered with success is in the inbox byte for byte, none twice, no temporary file is left;
every refusal carries the listener's MISSING_UID status and leaves nothing; then the scheduled inbox flow archives
every accepted instance. Prints instances/s and the listener's peak resident memory (VmHWM).

Default suite: 2 associations x 10; `-m slow`: 4 x 250 (figures in docs/reliability.md).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from dicom_io import pacs_listen
from dicom_io.pacs_listen import safe_name
from dicom_io.pacs_send import CStoreDestination, send_cstore
from tests.helpers.reliability import MEDZIP, child_env, digests
from tests.realdata import find

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
REFUSE_EVERY = 10  # one instance in 10 lacks its Study Instance UID: the listener must refuse it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outbox(folder: Path, associations: int, per: int) -> list[list[tuple[Path, str, bool]]]:
    """Per association, `per` real instances (CT_small, MR_small alternating, relabelled: one study per association,
    fresh SOP UIDs): (file, SOP UID, expected to be accepted)."""
    sources = [pydicom.dcmread(find("CT_small.dcm")), pydicom.dcmread(find("MR_small.dcm"))]
    refused_src = pydicom.dcmread(find("JPEGLSNearLossless_08.dcm"))  # a real file without StudyInstanceUID
    plan = []
    for a in range(associations):
        study, series = generate_uid(), {0: generate_uid(), 1: generate_uid()}
        items = []
        for n in range(per):
            refuse = n % REFUSE_EVERY == REFUSE_EVERY - 1
            ds = refused_src.copy() if refuse else sources[n % 2].copy()
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if not refuse:
                ds.StudyInstanceUID = study
                ds.SeriesInstanceUID = series[n % 2]
                ds.InstanceNumber = n + 1
            path = folder / f"a{a}" / f"{n:04d}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=False)
            items.append((path, str(ds.SOPInstanceUID), not refuse))
        plan.append(items)
    return plan


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _without_group_lengths(ds):
    for elem in [e for e in ds if e.tag.element == 0]:
        del ds[elem.tag]
    return ds


def _flood(tmp_path: Path, monkeypatch, associations: int, per: int, archive: bool) -> dict:
    from configs import load_config
    from tests.helpers.reliability import write_config

    home = tmp_path / "home"
    cfg = write_config(home / "medzip.toml", concurrent=2)
    config_env = child_env(home)
    plan = _outbox(tmp_path / "outbox", associations, per)
    port = _free_port()
    listener = subprocess.Popen([str(MEDZIP), "listen", "--port", str(port), "--config", str(cfg)], cwd=home,
                                env=config_env, stdout=subprocess.DEVNULL, stderr=open(home / "listen.log", "wb"),
                                start_new_session=True)
    try:
        dest = CStoreDestination("127.0.0.1", port, called_ae="MEDZIP", calling_ae="FLOOD", timeout_s=60)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the listener is up when it answers an association
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert listener.poll() is None, (home / "listen.log").read_text()[-2000:]
            time.sleep(0.2)
        t0 = time.monotonic()
        with ThreadPoolExecutor(associations) as pool:  # one association per thread, all at once
            results = list(pool.map(lambda items: send_cstore([p for p, _, _ in items], dest, retries=0), plan))
        elapsed = time.monotonic() - t0
        peak = _peak_rss(listener.pid)
    finally:
        os.killpg(listener.pid, signal.SIGINT)
        try:
            listener.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(listener.pid, signal.SIGKILL)

    monkeypatch.setenv("MEDZIP_HOME", str(home))
    config = load_config(cfg)
    inbox = config.paths.inbox
    accepted, refused, problems = set(), 0, []
    for items, res in zip(plan, results):
        assert [r.path for r in res] == [p for p, _, _ in items]
        for (path, sop, ok), r in zip(items, res):
            if ok:
                if not (r.delivered and r.status == 0):
                    problems.append(f"{path.name}: {r.status} {r.reason}")
                    continue
                sent = pydicom.dcmread(path)
                landed = inbox / safe_name(str(sent.StudyInstanceUID)) / f"{safe_name(sop)}.dcm"
                got = pydicom.dcmread(landed)
                if _without_group_lengths(got) != _without_group_lengths(sent):
                    problems.append(f"{path.name}: stored data set differs from what was sent")
                accepted.add(sop)
            else:
                refused += 1
                if r.delivered or r.status != pacs_listen.MISSING_UID:
                    problems.append(f"{path.name}: a dataset without study UID got {r.status:#06x}")
    files = [p for p in inbox.rglob("*") if p.is_file()]
    stored = [p.stem for p in files]
    assert problems == []
    assert sorted(stored) == sorted(accepted), "inbox holds other or duplicate instances"
    assert not [p for p in files if p.name.startswith(".")], "temporary files left in the inbox"
    figures = {"associations": associations, "instances": associations * per, "accepted": len(accepted),
               "refused": refused, "seconds": round(elapsed, 2),
               "instances_per_s": round(associations * per / elapsed, 1), "listener_peak_rss_mib": peak >> 20}
    if archive:
        from archive import ArchiveReader
        from flows.inbox import archive_inbox

        before = digests(inbox)
        outcomes = archive_inbox(config)
        assert sorted(o["status"] for o in outcomes) == ["released"] * associations, outcomes
        archived = set()
        for path in config.paths.released.glob("*.h5"):
            with ArchiveReader(path) as r:
                archived |= {i.sop_instance_uid for s in r.series() for i in r.instances(s.key)}
        assert archived == accepted
        assert digests(inbox) == before
        figures["archived"] = len(archived)
    print(f"PACS flood: {figures}")
    return figures


def test_pacs_flood_small(tmp_path, monkeypatch, prefect_server):
    figures = _flood(tmp_path, monkeypatch, associations=2, per=10, archive=True)
    assert figures["accepted"] == 18 and figures["refused"] == 2


@pytest.mark.slow
def test_pacs_flood_4x250(tmp_path, monkeypatch, prefect_server):
    figures = _flood(tmp_path, monkeypatch, associations=4, per=250, archive=True)
    assert figures["accepted"] == 4 * (250 - 250 // REFUSE_EVERY) and figures["refused"] == 4 * (250 // REFUSE_EVERY)
