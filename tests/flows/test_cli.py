"""The `medzip` command line: help, a bad config reported as JSON, --json documents, `info` on a real archive."""
from __future__ import annotations

import json
import math

import numpy as np
import pydicom
from typer.testing import CliRunner

from archive import ArchiveWriter, QualityRow, values_sha256
from codec import api as codec_api
from quality import metrics
from codec.modes import Mode
from flows.cli import app
from tests.realdata import all_files

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("archive", "retrieve", "info", "verify", "audit", "serve", "listen", "bench", "train"):
        assert command in result.output


def test_cli_reports_a_bad_config_as_json(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[codec]\nmode = 'fast'\n")
    archive_file = tmp_path / "x.h5"
    archive_file.write_bytes(b"not an archive")
    result = runner.invoke(app, ["info", str(archive_file), "--config", str(bad), "--json"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["error"] == "ConfigError" and "codec.mode" in doc["message"]


def test_a_bad_mode_is_refused_at_the_command_line(tmp_path):
    result = runner.invoke(app, ["archive", str(tmp_path), "--mode", "fast", "--json"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["error"] == "ModeError" and "fast" in doc["message"]


def test_info_refuses_a_foreign_file(tmp_path):
    foreign = tmp_path / "foreign.h5"
    foreign.write_bytes(b"hello")
    result = runner.invoke(app, ["info", str(foreign), "--json"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and str(foreign) in doc["message"]


def _real_ct():
    path = next(p for p in all_files() if p.name == "CT_small.dcm")
    ds = pydicom.dcmread(path)
    return ds, ds.pixel_array.astype(np.int16)


def _one_frame_archive(target, mode: str, lossless_bytes: int = -1) -> tuple[np.ndarray, bytes]:
    """An archive of CT_small coded in `mode`, with its measured quality row: (values, payload)."""
    ds, values = _real_ct()
    bits = int(ds.BitsStored)
    payload = codec_api.encode(values, Mode.parse(mode), bits, True)
    decoded = codec_api.decode(payload)
    with ArchiveWriter(target, study_uid=ds.StudyInstanceUID, codec="medzip", mode=mode) as writer:
        series = writer.add_series(ds.SeriesInstanceUID, "CT")
        key = writer.add_instance(
            series, sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID, modality="CT",
            rows=values.shape[0], columns=values.shape[1], bits_allocated=16, bits_stored=bits, signed=True,
            number_of_frames=1, header=b"header", header_format="test")
        frame = writer.add_frame(key, 0, payload, codec="medzip", mode=mode, values_sha256=values_sha256(values))
        writer.set_quality([QualityRow(
            series=frame.series, instance=frame.instance, frame=0, sop_instance_uid=ds.SOPInstanceUID,
            modality="CT", mode=mode, codec="medzip", psnr=metrics.psnr(values, decoded, bits),
            ssim=metrics.ssim(values, decoded), max_error=metrics.max_error(values, decoded),
            payload_bytes=len(payload), original_bytes=values.nbytes,
            ratio=metrics.ratio(values.nbytes, len(payload)), gate_passed=True, lossless_bytes=lossless_bytes)])
    return values, payload


def test_info_json_describes_a_real_archive(tmp_path):
    ds, _ = _real_ct()
    target = tmp_path / "study.h5"
    values, payload = _one_frame_archive(target, "lossless")
    result = runner.invoke(app, ["info", str(target), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["study_uid"] == ds.StudyInstanceUID
    assert doc["frames"] == 1 and doc["instances"] == 1
    assert doc["payload_bytes"] == len(payload)
    assert math.isclose(doc["ratio"], values.nbytes / len(payload))
    assert doc["series"][0]["min_psnr"] == "inf" and doc["series"][0]["max_error"] == 0
    assert "saved_vs_lossless_bytes" not in doc  # no frame's lossless size measured (-1: a row written without it)


def test_info_reports_what_auto_saved_against_lossless(tmp_path):
    """A frame stored near-lossless with its lossless size measured: info gives the bytes saved."""
    ds, values = _real_ct()
    lossless = len(codec_api.encode(values, Mode.parse("lossless"), int(ds.BitsStored), True))
    target = tmp_path / "study.h5"
    _, payload = _one_frame_archive(target, "near-lossless:4", lossless_bytes=lossless)
    doc = json.loads(runner.invoke(app, ["info", str(target), "--json"]).stdout)
    assert doc["lossless_bytes"] == lossless > len(payload)
    assert doc["saved_vs_lossless_bytes"] == lossless - len(payload)
    assert math.isclose(doc["saved_vs_lossless_share"], (lossless - len(payload)) / lossless)


def test_audit_refuses_impossible_dates_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDZIP_HOME", str(tmp_path))
    bad = runner.invoke(app, ["audit", "--since", "2026-13-45"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert bad.stderr.strip() == ("error: ArgumentError: --since '2026-13-45' is not a date: use YYYY-MM-DD "
                                  "(or YYYY-MM-DDTHH:MM:SS)")
    doc = json.loads(runner.invoke(app, ["audit", "--since", "2026-02-01", "--until", "2026-01-01", "--json"]).stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2 and "range is empty" in doc["message"]
    assert not (tmp_path / "reports").exists(), "refused before any work"


def test_retrieve_of_an_unknown_study_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDZIP_HOME", str(tmp_path))
    result = runner.invoke(app, ["retrieve", "1.2.3.4", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: RetrieveError: '1.2.3.4' is neither an archive file nor a StudyInstanceUID")
    debug = runner.invoke(app, ["--debug", "retrieve", "1.2.3.4", str(tmp_path / "out")])
    assert type(debug.exception).__name__ == "RetrieveError", "--debug lets the exception (and traceback) through"


def test_listen_refuses_to_start_on_an_inbox_it_cannot_write(tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    inbox.chmod(0o500)
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            import pytest

            pytest.skip("root without setpriv: permissions cannot be withheld")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    try:
        done = subprocess.run([*prefix, sys.executable, "-m", "flows.cli", "listen", "--port", "0"], text=True,
                              capture_output=True, env=dict(os.environ, MEDZIP_HOME=str(tmp_path)), timeout=120,
                              cwd=Path(__file__).resolve().parents[2])
    finally:
        inbox.chmod(0o700)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: ArgumentError: inbox {inbox}: {inbox} is not writable (Permission denied)")
    assert "listening" not in done.stderr + done.stdout
