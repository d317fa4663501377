"""archive_study / `medzip archive` on real DICOM against a real Prefect server: a study is released whole or not at
all, a failed or refused attempt never blocks a later one, a rerun under another policy is a new version, and every
outcome says why on screen."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.flows import _find, codec_has, make_config, write_study
from tests.helpers.permissions import without_read_bypass

REPO = Path(__file__).resolve().parents[2]


def _slices(dest: Path, uid: str) -> list[Path]:
    return write_study(dest, uid, sorted(p for p in _find("17106").parent.iterdir() if p.is_file()))


def _cli(args: list[str], home: Path, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    """`medzip ARGS` in a process of its own (MEDZIP_HOME=home), against the tests' Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, MEDZIP_HOME=str(home), PREFECT_API_URL=str(PREFECT_API_URL.value()))
    return subprocess.run([*prefix, sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)


def test_a_study_with_an_unreadable_file_waits_and_is_released_whole_later(prefect_server, tmp_path):
    from archive import ArchiveReader, Catalog
    from archive.catalog_inputs import InputLedger
    from flows.archive_flow import archive_paths

    uid = "1.2.826.0.1.3680043.8.498.62001"
    home = tmp_path / "home"
    files = _slices(tmp_path / "in", uid)
    files[2].chmod(0)
    try:
        shown = _cli(["archive", str(tmp_path / "in")], home, without_read_bypass())
        assert shown.returncode == 1, shown.stderr
        assert f"PENDING study {uid}" in shown.stdout
        assert f"waiting for {files[2]}: cannot be read now: Permission denied" in shown.stdout
        doc = json.loads(_cli(["archive", str(tmp_path / "in"), "--json"], home, without_read_bypass()).stdout)
        assert doc["ok"] is False and doc["exit_code"] == 1
        (study,) = [o for o in doc["studies"] if o["study_uid"] == uid]
        assert study["status"] == "pending" and study["archive"] is None
        assert study["held"] == [{"file": str(files[2]), "reason": "cannot be read now: Permission denied"}]
        config = make_config(home)
        assert not list(config.paths.released.glob("*.h5")), "nothing is released with a file missing"
        catalog = Catalog.from_config(config)
        assert catalog.find_by_study(uid) == []
        assert InputLedger(catalog).held()[uid]["files"][0]["file"] == str(files[2])
    finally:
        files[2].chmod(0o644)
    (outcome,) = archive_paths([tmp_path / "in"], config)
    assert outcome["status"] == "released" and outcome["frames"] == 4, outcome
    with ArchiveReader(outcome["archive"]) as r:
        assert {i.sop_instance_uid for s in r.series() for i in r.instances(s.key)} == {
            __import__("pydicom").dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    assert uid not in InputLedger(catalog).held()


def test_a_refused_mode_costs_one_line_and_blocks_nothing(prefect_server, tmp_path):
    from flows.archive_flow import archive_paths

    home = tmp_path / "home"
    _slices(tmp_path / "in", "1.2.826.0.1.3680043.8.498.62002")
    refused = _cli(["archive", str(tmp_path / "in"), "--mode", "lossy:9"], home)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == [
        "error: ModeError: mode lossy:9: the codec has rate points lossy:0 to lossy:4"]
    doc = json.loads(_cli(["archive", str(tmp_path / "in"), "--mode", "lossy:9", "--json"], home).stdout)
    assert doc == {"ok": False, "exit_code": 2, "error": "ModeError",
                   "message": "mode lossy:9: the codec has rate points lossy:0 to lossy:4"}
    assert not (home / "catalog.sqlite").exists(), "refused before any work: no catalog, no claim"
    (outcome,) = archive_paths([tmp_path / "in"], make_config(home))
    assert outcome["status"] == "released"


def test_a_failed_run_leaves_the_study_claimable_and_another_mode_is_a_new_version(prefect_server, tmp_path,
                                                                                     monkeypatch):
    from archive import Catalog
    from archive.summary import archive_summary
    from flows import chunk_work
    from flows.archive_flow import archive_paths

    uid = "1.2.826.0.1.3680043.8.498.62003"
    config = make_config(tmp_path / "home")
    _slices(tmp_path / "in", uid)

    def broken(*args, **kwargs):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(chunk_work, "encode_frame", broken)
    (failed,) = archive_paths([tmp_path / "in"], config)
    assert failed["status"] == "failed" and "the disk went away" in failed["reasons"][0]
    (rec,) = Catalog.from_config(config).find_by_study(uid)
    assert rec.status == "pending" and rec.owner is None and "the disk went away" in rec.reasons[0]
    assert not list(config.paths.work.glob("*.h5")) and not list(config.paths.released.glob("*.h5"))
    monkeypatch.undo()

    (first,) = archive_paths([tmp_path / "in"], config)
    assert (first["status"], first["version"]) == ("released", 1), first
    (again,) = archive_paths([tmp_path / "in"], config)
    assert again["status"] == "already-archived" and again["archive"] == first["archive"]
    (second,) = archive_paths([tmp_path / "in"], config.with_mode("near-lossless:2"))
    assert (second["status"], second["version"]) == ("released", 2), "another policy is a new version"
    assert second["mode_asked"] == "near-lossless:2" and second["modes_used"] == {"near-lossless:2": 4}
    info = archive_summary(second["archive"])
    assert info["mode_asked"] == "near-lossless:2" and info["modes_stored"] == {"near-lossless:2": 4}
    assert info["codec"].startswith("medzip-") and info["psnr_definition"].startswith("peak = original slice max")
    assert list(info["frame_codecs"].values()) == [4]
    rec2 = Catalog.from_config(config).latest(uid)
    assert rec2.version == 2 and rec2.modes_used == {"near-lossless:2": 4}


def test_escalations_show_their_figures_and_new_mode_on_screen(prefect_server, tmp_path, monkeypatch):
    if not codec_has("lossy:0"):
        pytest.skip("the installed codec has no lossy mode")
    from flows.cli import app

    home = tmp_path / "home"
    monkeypatch.setenv("MEDZIP_HOME", str(home))
    cfg = tmp_path / "gate.toml"
    cfg.write_text('[codec]\nmode = "lossy:0"\n[gates.default]\npsnr_min = 45.0\nmax_error_max = 2\n'
                   '[runner]\nmax_workers = 2\n')
    write_study(tmp_path / "in", "1.2.826.0.1.3680043.8.498.62004", [_find("CT_small.dcm")])
    result = CliRunner().invoke(app, ["archive", str(tmp_path / "in"), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "RELEASED study 1.2.826.0.1.3680043.8.498.62004" in out
    assert "1 frame(s) failed their gate and were re-encoded:" in out
    line = next(x for x in out.splitlines() if "→ stored" in x)
    assert "lossy:0: PSNR" in line and "< 45.0" in line and line.endswith("→ stored near-lossless:2")
    assert "stored as near-lossless:2 ×1" in out
