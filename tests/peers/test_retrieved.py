"""The whole way round with real peers, on a multi-series study of bundled real files (CT, MR, multi-frame MR, NM
+ colour US and SR kept verbatim; tests.helpers.peers_study.SMALL_STUDY):

1. Orthanc (a real PACS) holds the study and sends it to medzip's C-STORE listener; the inbox flow archives it
   (lossless) and releases it.
2. flows.retrieve_flow writes it back from that released archive (lossless), pushing it to Orthanc by C-STORE as the
   config's [delivery] section says, and from a lossy archive of the same study made by flows.archive_flow
   (lossy:0, no gate, no escalation, so it stays lossy).
3. Each retrieved study is judged by dciodvfy (no error beyond the original's), dcmdump and dcmj2pnm, and sent back to
   Orthanc by C-STORE and by STOW-RS; Orthanc must hold every instance and render each grayscale series.

Runs the flows against a real local Prefect server (tests.helpers.flows.prefect_server). One test function on
purpose: pytest-xdist spreads a module's tests over its workers, and each worker would then start its own Prefect
server and run the archive flow again (minutes of CPU on a 2-core machine); the steps are named in every assertion.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_io.network import CStoreDestination, run_listener, send_cstore, send_stowrs
from tests.helpers.peers_orthanc import assert_orthanc_holds, orthanc  # noqa: F401 (fixture)
from tests.helpers.peers_study import build_small_input, original_of, originals_by_uid, retrieved_study
from tests.helpers.peers_tools import check_files, require

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
GRAYSCALE_SERIES = 4  # CT, MR, multi-frame MR, NM


def _pipeline_missing() -> str | None:
    """Why the archive → retrieve path cannot run here (None when it can)."""
    try:
        import flows.archive_flow  # noqa: F401
        import flows.retrieve_flow  # noqa: F401
    except ImportError as exc:
        return f"flows not available: {exc}"
    from codec.api import CodecError, encode

    try:
        encode(np.zeros((16, 16), np.uint16), "lossless", 12, False)
    except CodecError as exc:
        return f"the codec cannot encode yet: {exc}"
    return None


@pytest.fixture(scope="module")
def study_input(tmp_path_factory) -> Path:
    return build_small_input(tmp_path_factory.mktemp("small-study"))


def receive_and_release(orthanc, study_input: Path, home: Path):  # noqa: F811
    """Orthanc → medzip listener → inbox → archive_inbox: (config, outcome of the study)."""
    from configs import Config
    from configs.schema import CodecSettings, Paths, Runner, Schedule
    from flows.inbox import archive_inbox

    orthanc.clear()
    files = sorted(study_input.iterdir())
    for f in files:  # the originals, as a modality would have stored them in the PACS
        orthanc.http.post("/instances", content=f.read_bytes()).raise_for_status()
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)

    config = Config(home=home, paths=Paths().resolved(home), schedule=Schedule(settle_seconds=0),
                    runner=Runner(kind="thread", max_workers=2),
                    codec=CodecSettings(mode="lossless"))  # judged below as a lossless retrieval: every UID kept
    server = run_listener(config.paths.inbox, "MEDZIP", orthanc.listener_port, "127.0.0.1", block=False)
    try:
        r = orthanc.http.post("/modalities/medzip/store",
                              json={"Resources": [orthanc.lookup(study_uid, "Study")], "Synchronous": True})
        assert r.status_code == 200, f"Orthanc → listener: {r.text}"
    finally:
        server.shutdown()
    received = list(config.paths.inbox.rglob("*.dcm"))
    assert len(received) == len(files), f"Orthanc → listener: {len(received)} of {len(files)} instances in the inbox"

    [outcome] = [o for o in archive_inbox(config) if o["study_uid"] == study_uid]
    assert outcome["status"] == "released", f"inbox flow: {outcome}"
    archive = Path(outcome["archive"])
    assert archive.is_file() and archive.parent == config.paths.released, f"inbox flow: {archive}"
    print(f"Orthanc → listener → inbox → released {archive}")
    return config, archive


def judge(mode: str, files: list[Path], study_input: Path, tmp: Path) -> None:
    """dciodvfy/dcmdump/dcmj2pnm on a retrieved study; lossless keeps every UID, lossy is labelled."""
    originals = originals_by_uid(study_input)
    written = {f: original_of(f, originals) for f in files}
    assert set(written.values()) == set(study_input.iterdir()), f"{mode}: not every input file came back"
    derived = check_files(written, tmp)
    if mode == "lossless":
        assert derived == 0, "lossless retrieval: every original SOP Instance UID is kept"
    else:
        assert derived > 0, f"{mode} retrieval: lossy frames must come back as labelled derivatives"
    print(f"{mode}: {len(written)} files, {derived} lossy derivatives")


def send_back(orthanc, mode: str, files: list[Path]) -> None:  # noqa: F811
    orthanc.clear()
    dest = CStoreDestination("127.0.0.1", orthanc.dicom_port, called_ae=orthanc.aet, calling_ae="MEDZIP")
    results = send_cstore(files, dest, retries=1, backoff_s=0.2)
    assert all(r.delivered for r in results), f"{mode} C-STORE: {[r.as_dict() for r in results if not r.delivered]}"
    assert_orthanc_holds(orthanc, files, GRAYSCALE_SERIES)
    orthanc.clear()
    results = send_stowrs(files, f"{orthanc.url}/dicom-web", auth=orthanc.auth, retries=1, backoff_s=0.2)
    assert all(r.delivered for r in results), f"{mode} STOW-RS: {[r.as_dict() for r in results if not r.delivered]}"
    assert_orthanc_holds(orthanc, files, GRAYSCALE_SERIES)


def test_orthanc_listener_archive_retrieve_validate_deliver(orthanc, study_input, tmp_path, request):  # noqa: F811
    reason = _pipeline_missing()
    if reason:
        pytest.skip(reason)
    require("dciodvfy", "dcmdump", "dcmj2pnm")
    request.getfixturevalue("prefect_server")  # started only when the pipeline can run
    from flows.retrieve_flow import retrieve_study

    from configs.schema import Delivery

    config, archive = receive_and_release(orthanc, study_input, tmp_path / "home")
    # retrieve with the config's [delivery] pointing at Orthanc: the flow pushes what it wrote
    orthanc.clear()
    to_pacs = Delivery(kind="cstore", host="127.0.0.1", port=orthanc.dicom_port, called_ae=orthanc.aet, retries=1)
    result = retrieve_study(archive, tmp_path / "retrieved-lossless", config.model_copy(update={"delivery": to_pacs}))
    lossless = [Path(f) for f in result["files"]]
    assert result["delivery"]["delivered"] == len(lossless) and not result["delivery"]["failed"], result["delivery"]
    assert_orthanc_holds(orthanc, lossless, GRAYSCALE_SERIES)
    lossy = retrieved_study(study_input, tmp_path / "lossy", "lossy:0")
    for mode, files in (("lossless", lossless), ("lossy:0", lossy)):
        judge(mode, files, study_input, tmp_path)
        send_back(orthanc, mode, files)
