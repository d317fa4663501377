"""medzip verify on the kept format-1 archive: its recorded figures (measured with the full-scale PSNR peak) still
verify under today's default gates, and info says which PSNR definition they used."""
from __future__ import annotations

from pathlib import Path

from archive.summary import archive_summary
from configs import load_config
from flows.verify_flow import verify_archives
from quality.metrics import FULL_SCALE_PSNR

V1 = Path(__file__).resolve().parents[1] / "data" / "archives" / "v1.h5"


def test_an_old_archive_keeps_its_recorded_figures_and_verifies(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDZIP_HOME", str(tmp_path))
    (report,) = verify_archives([V1], load_config())  # one archive: checked without Prefect
    assert report["ok"], report["problems"]
    info = archive_summary(V1)
    assert info["psnr_definition"] == FULL_SCALE_PSNR
    assert info["modes_stored"] == {"lossless": 1, "near-lossless:2": 1}
