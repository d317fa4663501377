"""Shared fixtures and builders for tests/flows/ and others: a real Prefect server, real DICOM studies, configs."""
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
        runner=runner or Runner(kind="thread", max_workers=2, processes=0),
    )


@pytest.fixture(scope="session")
def prefect_server():
    """Every flow in these tests runs against a real local Prefect server with a temporary database."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=600):
        yield


def file_digests(paths) -> dict[str, str]:
    import hashlib

    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def archive_content(path: Path) -> dict:
    """What an archive holds, independent of when/where it was written: per-frame payload and values checksums,
    header checksums, verbatim checksums, quality table (without timestamps or paths)."""
    from archive import ArchiveReader

    with ArchiveReader(path) as r:
        frames = {(fr.sop_instance_uid, fr.key.frame): (fr.codec, fr.mode, fr.payload_sha256, fr.values_sha256)
                  for _, fr in r.iter_frames()}
        headers = {i.sop_instance_uid: i.header_sha256 for s in r.series() for i in r.instances(s.key)}
        verbatim = {v.sop_instance_uid: v.sha256 for v in r.verbatim()}
        quality = sorted((q.sop_instance_uid, q.frame, q.mode, q.psnr, q.ssim, q.max_error, q.gate_passed)
                         for q in r.quality())
        return {"study": r.info.study_uid, "frames": frames, "headers": headers, "verbatim": verbatim,
                "quality": quality}


def codec_has(mode: str) -> bool:
    """Whether the installed codec really codes `mode` (the foundation placeholder answered every mode losslessly)."""
    import numpy as np

    from codec import api
    from codec.modes import Mode

    try:
        payload = api.encode(np.arange(64, dtype=np.uint16).reshape(8, 8), Mode.parse(mode), 12, False)
        return api.payload_info(payload).get("mode") == str(Mode.parse(mode))
    except Exception:
        return False
