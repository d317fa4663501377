"""Shared fixtures and builders for tests/test_flows_*.py: a real Prefect server, real DICOM studies, configs."""
from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest

from configs import Config, Gate
from configs.schema import CodecSettings, Paths, Runner, Schedule
from tests.realdata import data_roots

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # its telemetry write races the test server's SQLite


def _find(name: str, under: str = "") -> Path:
    for root in data_roots():
        for p in root.rglob(name):
            if under in str(p):
                return p
    raise FileNotFoundError(name)


def study_sources() -> list[Path]:
    """A small real multi-series study: a 4-slice CT series and a single CT (pydicom's test files), a 10-frame MR
    (pydicom-data, RLE), a structured report, and a colour CT from deid-data (kept verbatim)."""
    ct_series = sorted(p for p in _find("17106").parent.iterdir() if p.is_file())
    return [*ct_series, _find("CT_small.dcm"), _find("emri_small_RLE.dcm"), _find("test-SR.dcm"),
            _find("ctbrain1.dcm", "deid_data")]


def write_study(dest: Path, study_uid: str, sources: list[Path] | None = None) -> list[Path]:
    """Copies of real files relabelled with one StudyInstanceUID (pixels and every other attribute untouched)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for n, src in enumerate(sources or study_sources()):
        ds = pydicom.dcmread(src)
        ds.StudyInstanceUID = study_uid
        path = dest / f"{n:02d}_{src.name}"
        ds.save_as(path, enforce_file_format=False)
        out.append(path)
    return out


def make_config(home: Path, mode: str = "lossless", gates: dict[str, Gate] | None = None,
                escalate_to: str = "lossless", runner: Runner | None = None, **schedule) -> Config:
    return Config(
        home=home,
        paths=Paths().resolved(home),
        codec=CodecSettings(mode=mode, escalate_to=escalate_to),
        gates=gates or {"default": Gate(psnr_min=40.0, ssim_min=0.95)},
        schedule=Schedule(**schedule) if schedule else Schedule(),
        runner=runner or Runner(kind="thread", max_workers=2),
    )


@pytest.fixture(scope="session")
def prefect_server():
    """Every flow in these tests runs against a real local Prefect server with a temporary database."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
