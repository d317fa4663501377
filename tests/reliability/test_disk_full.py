"""A full disk: the work, released or catalog folder on a small filesystem (a tmpfs the test mounts; skipped where
mounting is not permitted) that fills during a run, and a disk-full error injected into HDF5's write path.

The run stops with NoSpaceError naming the folder (no h5py traceback wall, no segmentation fault); nothing partial
lands in released/; the catalog agrees with the files; the inbox is untouched; once space is freed the next run
releases the study. Issue 14 found `medzip archive` of 12 real CT slices on a 1 MB tmpfs dying with exit 139.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.reliability import (
    check_catalog_agrees,
    check_released,
    child_env,
    digests,
    small_studies,
    write_config,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
RUN_TIMEOUT_S = 600


@pytest.fixture
def small_fs(tmp_path):
    """mount(size) -> a fresh tmpfs of `size` bytes under tmp_path (unmounted at the end)."""
    mounted = []

    def mount(size: int, name: str = "small") -> Path:
        where = tmp_path / name
        where.mkdir()
        rc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                            capture_output=True, text=True)
        if rc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({rc.stderr.strip() or rc.returncode}): needs root or CAP_SYS_ADMIN")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path, keep: int = 0) -> Path:
    """Fill the filesystem of `folder` until fewer than `keep` bytes are free; returns the filler file."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        block = b"\0" * 65536
        try:
            while os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize > keep + len(block):
                f.write(block)
                f.flush()
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass
    return filler


WRITER = textwrap.dedent("""
    import os, sys
    from archive import ArchiveWriter, NoSpaceError
    try:
        with ArchiveWriter(sys.argv[1], study_uid="1.2.3", codec="c", mode="lossless") as w:
            s = w.add_series("1.2.3.4", "CT")
            for n in range(40):
                i = w.add_instance(s, sop_instance_uid=f"1.2.3.4.{n}", sop_class_uid="1.2", modality="CT", rows=8,
                                   columns=8, bits_allocated=16, bits_stored=12, signed=False, number_of_frames=1,
                                   header=b"h" * 100, header_format="x")
                w.add_frame(i, 0, os.urandom(110000), codec="c", mode="lossless", values_sha256="0" * 64)
    except NoSpaceError as exc:
        print("NoSpaceError", exc.path)
""")


def test_archive_writer_on_a_full_filesystem(small_fs):
    """The bare writer filling a 1 MB tmpfs: one NoSpaceError naming the folder, a clean exit, nothing left."""
    folder = small_fs(1 << 20)
    proc = subprocess.run([sys.executable, "-c", WRITER, str(folder / "a.h5")], capture_output=True, text=True,
                          timeout=120, env=child_env(folder))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["NoSpaceError", str(folder)], proc.stdout
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr[-3000:]
    assert os.listdir(folder) == []  # the temporary file is gone and its space given back
    assert os.statvfs(folder).f_bfree == os.statvfs(folder).f_blocks


def _config_file(home: Path, small: Path, where: str) -> Path:
    """A cheap config whose `where` folder (work+released, or the catalog) lies on the small filesystem."""
    cfg = write_config(home / "medzip.toml", mode="lossless")
    paths = {"work": f'work = "{small}/work"\nreleased = "{small}/released"\n',
             "catalog": f'catalog = "{small}/catalog.sqlite"\n'}[where]
    cfg.write_text(cfg.read_text() + "\n[paths]\n" + paths)
    return cfg


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _archive(home: Path, cfg: Path, inbox: Path, log: Path) -> tuple[int, dict]:
    """`medzip archive --json` to the end: (exit code, its JSON document); stderr goes to `log`."""
    from tests.helpers.reliability import MEDZIP

    with open(log, "wb") as err:
        proc = subprocess.run([str(MEDZIP), "archive", "--config", str(cfg), "--json", str(inbox)], cwd=home,
                              env=child_env(home, _api_url()), stdout=subprocess.PIPE, stderr=err,
                              timeout=RUN_TIMEOUT_S, start_new_session=True)
    out = proc.stdout.decode(errors="replace")
    log.write_text(log.read_text() + "\n--- stdout ---\n" + out)
    try:
        return proc.returncode, json.loads(out)
    except ValueError:
        return proc.returncode, {}


def _fill_when_writing(work: Path, stop: threading.Event, found: list) -> None:
    """Fill the disk as soon as the archive's temporary file appears in work/ (the run is writing it)."""
    while not stop.is_set():
        if work.is_dir() and any(p.name.startswith(".") and ".tmp-" in p.name for p in work.iterdir()):
            found.append(fill(work.parent))
            return
        time.sleep(0.005)


def test_disk_fills_during_a_run_then_a_rerun_releases(tmp_path, small_fs, monkeypatch, prefect_server):
    """work/ and released/ on a 32 MB tmpfs that another writer fills while medzip writes the archive."""
    from configs import load_config

    small = small_fs(32 << 20)
    home = tmp_path / "home"
    inbox = home / "inbox"
    studies = small_studies(inbox, n=1)
    cfg = _config_file(home, small, "work")
    monkeypatch.setenv("MEDZIP_HOME", str(home))
    config = load_config(cfg)
    before = digests(inbox)
    stop, filler = threading.Event(), []
    watcher = threading.Thread(target=_fill_when_writing, args=(config.paths.work, stop, filler), daemon=True)
    watcher.start()
    rc, out = _archive(home, cfg, inbox, home / "run1.log")
    stop.set()
    watcher.join()
    log = (home / "run1.log").read_text()
    assert filler, "the disk was never filled (the run wrote no archive)"
    assert rc == 1, log[-3000:]
    assert "Segmentation fault" not in log and "Exception ignored" not in log, log[-3000:]
    [study] = out["studies"]
    reason = " ".join(study.get("reasons") or [])
    assert study["status"] == "failed" and "NoSpaceError" in reason and str(config.paths.work) in reason, study
    assert check_released(config) == []
    assert not list(config.paths.released.glob("*")) if config.paths.released.exists() else True
    assert [p.name for p in config.paths.work.iterdir()] == [] if config.paths.work.exists() else True
    from archive import Catalog

    assert [r.status for r in Catalog.from_config(config).list()] in ([], ["pending"])  # never quarantined
    assert digests(inbox) == before

    filler[0].unlink()  # space freed: the next run releases the study
    rc, out = _archive(home, cfg, inbox, home / "run2.log")
    assert rc == 0, (home / "run2.log").read_text()[-3000:]
    assert [s["status"] for s in out["studies"]] == ["released"]
    assert check_catalog_agrees(config, studies) == []
    assert digests(inbox) == before


def test_study_larger_than_the_free_space_is_refused_before_work(tmp_path, small_fs, monkeypatch, prefect_server):
    """Issue 14's case: 12 real 512x512 CT slices, lossless, work/ and released/ on a 1 MB tmpfs (it segfaulted).
    Now refused before any work: NoSpaceError naming the work folder with the figures, nothing written there, the
    claim given back (pending, no owner) for a run with more room, the inbox untouched."""
    from archive import Catalog
    from configs import load_config
    from lab.loadgen import slice_series

    small = small_fs(1 << 20)
    home = tmp_path / "home"
    inbox = home / "inbox"
    slice_series(inbox / "ct", 12, source="693_UNCR.dcm")
    cfg = _config_file(home, small, "work")
    monkeypatch.setenv("MEDZIP_HOME", str(home))
    config = load_config(cfg)
    before = digests(inbox)
    rc, out = _archive(home, cfg, inbox, home / "run.log")
    log = (home / "run.log").read_text()
    assert rc == 1 and "Segmentation fault" not in log and "Exception ignored" not in log, log[-3000:]
    [study] = out["studies"]
    reason = " ".join(study.get("reasons") or [])
    assert study["status"] == "failed" and "NoSpaceError" in reason and "not enough free space" in reason, study
    assert str(config.paths.work) in reason
    assert [p.name for p in small.rglob("*") if p.is_file()] == []
    assert [(r.status, r.owner) for r in Catalog.from_config(config).list()] == [("pending", None)]
    assert digests(inbox) == before


@pytest.mark.slow
def test_full_catalog_disk_stops_the_run_before_any_work(tmp_path, small_fs, monkeypatch, prefect_server):
    """The catalog's filesystem full from the start: the claim cannot be written, the run stops naming the catalog,
    nothing is archived; with space back, the rerun releases."""
    from configs import load_config

    small = small_fs(4 << 20)
    home = tmp_path / "home"
    inbox = home / "inbox"
    studies = small_studies(inbox, n=1)
    cfg = _config_file(home, small, "catalog")
    monkeypatch.setenv("MEDZIP_HOME", str(home))
    config = load_config(cfg)
    before = digests(inbox)
    filler = fill(small)
    rc, out = _archive(home, cfg, inbox, home / "run1.log")
    log = (home / "run1.log").read_text()
    assert rc in (1, 2), log[-3000:]
    assert "Segmentation fault" not in log
    text = json.dumps(out)
    assert "catalog" in text and ("full" in text or "space" in text), text[-2000:]
    assert not (config.paths.released.exists() and list(config.paths.released.iterdir()))
    assert digests(inbox) == before
    filler.unlink()
    rc, out = _archive(home, cfg, inbox, home / "run2.log")
    assert rc == 0, (home / "run2.log").read_text()[-3000:]
    assert check_catalog_agrees(config, studies) == []
