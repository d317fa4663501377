"""The inbox's settle rule (no Prefect server needed)."""
import os
import time

from tests.helpers.flows import _find, write_study


def test_inbox_waits_for_files_to_settle(tmp_path):
    from flows.inbox import scan_inbox

    inbox = tmp_path / "inbox"
    old = write_study(inbox / "a", "1.2.826.0.1.3680043.8.498.40001", [_find("CT_small.dcm")])
    new = write_study(inbox / "b", "1.2.826.0.1.3680043.8.498.40002", [_find("MR_small.dcm")])
    now = time.time()
    for f in old:
        os.utime(f, (now - 120, now - 120))
    settled, waiting = scan_inbox(inbox, settle_seconds=60, now=now)
    assert [s.study_uid for s in settled] == ["1.2.826.0.1.3680043.8.498.40001"]
    assert settled[0].files == sorted(old)
    assert waiting == ["1.2.826.0.1.3680043.8.498.40002"]
    # a file still being written (not readable yet) may belong to any study: nothing is archived meanwhile
    (inbox / "partial.dcm").write_bytes(new[0].read_bytes()[:300])
    for f in new:
        os.utime(f, (now - 120, now - 120))
    settled, waiting = scan_inbox(inbox, settle_seconds=60, now=now)
    assert settled == [] and len(waiting) == 2
    os.utime(inbox / "partial.dcm", (now - 120, now - 120))
    settled, _ = scan_inbox(inbox, settle_seconds=60, now=now)
    assert len(settled) == 2


def test_inbox_and_archive_flow_import_without_a_circle():
    """archive_flow never imports the inbox flow (the inbox calls archive_flow, not the other way round)."""
    import ast
    from pathlib import Path

    import flows.archive_flow

    tree = ast.parse(Path(flows.archive_flow.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "flows.inbox" not in imported


def test_an_archived_inbox_is_not_read_again_and_a_changed_file_is_caught(prefect_server, tmp_path, monkeypatch):
    from pathlib import Path

    import pydicom

    import dicom_io.studies
    from archive import Catalog
    from archive.catalog_inputs import InputLedger
    from flows.inbox import archive_inbox, scan_inbox
    from tests.helpers.flows import make_config

    uid = "1.2.826.0.1.3680043.8.498.40003"
    config = make_config(tmp_path / "home", settle_seconds=0)
    files = write_study(config.paths.inbox / "s", uid, sorted(p for p in _find("17106").parent.iterdir()
                                                              if p.is_file()))
    (first,) = archive_inbox(config)
    assert (first["status"], first["version"]) == ("released", 1)
    archived = InputLedger(Catalog.from_config(config)).archived()
    assert {Path(p) for p in archived} == {f.absolute() for f in files}

    read = []
    real = dicom_io.studies.read_file
    monkeypatch.setattr(dicom_io.studies, "read_file", lambda p: read.append(Path(p)) or real(p))
    assert archive_inbox(config) == [] and read == [], "a drained inbox is not read again"

    ds = pydicom.dcmread(files[0])
    ds.SeriesDescription = "corrected"
    ds.save_as(files[0], enforce_file_format=False)
    settled, _ = scan_inbox(config.paths.inbox, 0, archived=InputLedger(Catalog.from_config(config)).archived())
    assert read == [files[0]], "only the changed file is read by the scan"
    assert [s.study_uid for s in settled] == [uid] and settled[0].files == sorted(files), "its study comes back whole"
    (second,) = archive_inbox(config)
    assert (second["status"], second["version"]) == ("released", 2) and second["frames"] == 4
