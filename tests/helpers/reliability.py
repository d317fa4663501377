"""Shared pieces of tests/reliability/: small real studies in an inbox, a config file for child processes
(lab/loadgen.py's, shared with the load benchmark), running `medzip` as a killable child, and the invariants every
run must keep."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from lab.loadgen import cheap_config
from tests.helpers.badinputs import find

REPO = Path(__file__).resolve().parents[2]
MEDZIP = Path(sys.executable).with_name("medzip")


def write_config(path: Path, mode: str = "lossy:0", concurrent: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cheap_config(mode, concurrent))
    return path


def small_studies(inbox: Path, n: int = 2) -> dict[str, list[Path]]:
    """`n` small real studies: 4 CT slices (pydicom's dicomdirtests CT2), CT_small, MR_small and an SR, each
    relabelled with a fresh Study/Series/SOP UID (pixels untouched). Returns {study UID: files}."""
    ct = sorted(p for p in find("17106").parent.iterdir() if p.is_file())
    sources = [*ct, find("CT_small.dcm"), find("MR_small.dcm"), find("test-SR.dcm")]
    out: dict[str, list[Path]] = {}
    for k in range(n):
        study = generate_uid()
        series = {}
        files = []
        for m, src in enumerate(sources):
            ds = pydicom.dcmread(src, force=True)
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = series.setdefault(str(ds.SeriesInstanceUID), generate_uid())
            ds.SOPInstanceUID = generate_uid()
            if getattr(ds, "file_meta", None) is not None:
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            path = inbox / f"study{k}" / f"{m:02d}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=False)
            files.append(path)
        out[study] = files
    return out


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def child_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MEDZIP_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(
        [str(REPO), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]))
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def start_medzip(args: list[str], home: Path, api_url: str | None = None, log: Path | None = None) -> subprocess.Popen:
    """`medzip ARGS` as the leader of its own process group (so os.killpg reaches anything it starts)."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([str(MEDZIP), *args], cwd=home, env=child_env(home, api_url), stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def check_released(config) -> list[str]:
    """Problems with what lies in released/ right now: every file there must be a finished archive that opens and
    verifies (checksums, decode); a leftover temporary file is never in released/."""
    from archive import is_temp_name
    from flows.verify_flow import check_archive

    problems = []
    folder = config.paths.released
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if is_temp_name(p.name):
            problems.append(f"{p.name}: temporary file in released/")
            continue
        if p.suffix != ".h5":
            continue
        report = check_archive(p, config, catalog=None)
        if not report["ok"]:
            problems.append(f"{p.name}: {report['problems']}")
    return problems


def check_catalog_agrees(config, studies: dict[str, list[Path]] | None = None) -> list[str]:
    """Once every run finished: each study released exactly once, the catalog and released/ list the same files,
    every released file verifies against its catalog record (whole-file SHA-256 included)."""
    from archive import Catalog
    from flows.verify_flow import check_archive

    catalog = Catalog.from_config(config)
    problems = []
    records = catalog.list()
    files = {p.resolve() for p in config.paths.released.glob("*.h5")} if config.paths.released.is_dir() else set()
    released = [r for r in records if r.status == "released"]
    for r in records:
        if r.status != "released":
            problems.append(f"catalog: study {r.study_uid} ended {r.status} ({list(r.reasons)[:2]})")
    for uid in (studies or {}):
        mine = [r for r in released if r.study_uid == uid]
        if len(mine) != 1:
            problems.append(f"study {uid}: released {len(mine)} times")
    paths = {Path(r.path).resolve() for r in released if r.path}
    if paths != files:
        problems.append(f"catalog lists {sorted(map(str, paths - files))} not in released/, released/ holds "
                        f"{sorted(map(str, files - paths))} not in the catalog")
    for p in sorted(files):
        report = check_archive(p, config, catalog)
        if not report["ok"]:
            problems.append(f"{p.name}: {report['problems']}")
    return problems
