"""Crash safety: `medzip archive` killed with SIGKILL at seeded random points spanning its run, then rerun.

After every kill, released/ holds only finished archives that open and verify; after the rerun every study is
released exactly once, the catalog agrees with the files (whole-file SHA-256 included) and the inbox is untouched.
The default suite kills 3 runs; `-m slow` runs the 20-kill version and the kills at chosen critical steps. The
child processes talk to the session's Prefect test server (PREFECT_API_URL), so no run pays for starting a server
of its own, and use the cheapest codec mode (lossy:0, no escalation) on small real studies.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from configs import load_config
from tests.helpers.reliability import (
    check_catalog_agrees,
    child_env,
    check_released,
    digests,
    small_studies,
    start_medzip,
    write_config,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
RUN_TIMEOUT_S = 600


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _config(home: Path, cfg: Path, monkeypatch):
    monkeypatch.setenv("MEDZIP_HOME", str(home))
    return load_config(cfg)


def _run_to_end(home: Path, cfg: Path, inbox: Path, log: Path, watch: Path | None = None) -> tuple[int, float, float]:
    """Run to completion: (exit code, seconds, seconds until `watch` appeared - when the flow began its work)."""
    start = time.monotonic()
    proc = start_medzip(["archive", "--config", str(cfg), "--json", str(inbox)], home, _api_url(), log)
    seen = None
    while proc.poll() is None and time.monotonic() - start < RUN_TIMEOUT_S:
        if seen is None and watch is not None and watch.exists():
            seen = time.monotonic() - start
        time.sleep(0.02)
    rc = proc.wait(timeout=5)
    elapsed = time.monotonic() - start
    return rc, elapsed, elapsed if seen is None else seen


def _kill_after(home: Path, cfg: Path, inbox: Path, delay: float, log: Path) -> tuple[bool, float]:
    """Start a run and SIGKILL its whole process group after `delay` s: (whether it was still running, seconds it
    ran)."""
    start = time.monotonic()
    proc = start_medzip(["archive", "--config", str(cfg), "--json", str(inbox)], home, _api_url(), log)
    try:
        proc.wait(timeout=delay)
        return False, time.monotonic() - start
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True, delay


def _crash_runs(tmp_path: Path, monkeypatch, kills: int, seed: int) -> list[dict]:
    """One inbox, one home. A calibration run archives a first study and times the run; then `kills` times: a new
    small real study arrives, `medzip archive` starts over the whole inbox (it also takes over any study a killed
    run left pending) and is SIGKILLed after a seeded random delay drawn over the run's span; released/ is checked
    after every kill. A last run goes to completion and everything is checked. Returns one record per kill."""
    rng = random.Random(seed)
    home = tmp_path / "home"
    cfg = write_config(home / "medzip.toml")
    inbox = home / "inbox"
    config = _config(home, cfg, monkeypatch)
    studies = small_studies(inbox / "s00", n=1)
    # the catalog appears when the flow claims its first study: before that the run is only importing
    rc, duration, work_start = _run_to_end(home, cfg, inbox, home / "run.log", config.paths.catalog)
    assert rc == 0, (home / "run.log").read_text()[-3000:]
    assert check_catalog_agrees(config, studies) == []

    trials = []
    for n in range(1, kills + 1):
        studies |= small_studies(inbox / f"s{n:02d}", n=1)
        before = digests(inbox)
        delay = rng.uniform(0.9 * work_start, 1.05 * duration)
        killed, ran = _kill_after(home, cfg, inbox, delay, home / "run.log")
        if not killed:  # runs got faster than the calibration run (a cold first start): draw over this one's span
            duration = min(duration, ran)
        problems = check_released(config)
        assert problems == [], f"after kill {n} at {delay:.1f}s: {problems}"
        assert digests(inbox) == before
        trials.append({"delay_s": round(delay, 1), "killed": killed,
                       "released_files": len(list(config.paths.released.glob("*.h5")))})
    rc, _, _ = _run_to_end(home, cfg, inbox, home / "run.log")
    assert rc == 0, (home / "run.log").read_text()[-3000:]
    final = check_catalog_agrees(config, studies)
    assert final == [], f"after {kills} kills and a rerun: {final}; trials {trials}"
    assert len(list(config.paths.released.glob("*.h5"))) == len(studies)
    print(f"run takes {duration:.1f}s, its flow starts work at {work_start:.1f}s; kills: {trials}")
    return trials


def test_sigkill_during_archive_then_rerun(tmp_path, monkeypatch, prefect_server):
    trials = _crash_runs(tmp_path, monkeypatch, kills=3, seed=6)
    assert any(t["killed"] for t in trials)


@pytest.mark.slow
def test_sigkill_during_archive_20_runs(tmp_path, monkeypatch, prefect_server):
    trials = _crash_runs(tmp_path, monkeypatch, kills=20, seed=20)
    assert sum(t["killed"] for t in trials) >= 15


# A run killed at the exact steps where a crash is most dangerous: the child replaces one function with a SIGKILL
# of itself, so the kill lands precisely there (deterministic, unlike the random delays above).
KILL_POINTS = {
    "while-writing": "archive.writer.ArchiveWriter.add_verbatim",  # archive half written in work/
    "before-rename": "archive.writer.replace_durably",  # temp file complete, not yet fsynced and renamed
    "after-release-move": "archive.catalog.Catalog.record_summary",  # file in released/, catalog still pending
    "before-status": "archive.catalog.Catalog.set_status",  # summary recorded, status not yet released
}

_CHILD = """
import importlib, os, signal, sys
target = sys.argv[1]
mod_name, _, attr = target.rpartition(".")
try:
    owner = importlib.import_module(mod_name)
except ImportError:
    mod_name, _, cls = mod_name.rpartition(".")
    owner = getattr(importlib.import_module(mod_name), cls)
real = getattr(owner, attr)
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
setattr(owner, attr, die)
from flows.cli import app
app(sys.argv[2:])
"""


@pytest.mark.parametrize("point", [
    pytest.param(p, marks=() if p == "after-release-move" else pytest.mark.slow) for p in KILL_POINTS])
def test_sigkill_at_critical_step_then_rerun(point, tmp_path, monkeypatch, prefect_server):

    home = tmp_path / "home"
    cfg = write_config(home / "medzip.toml")
    inbox = home / "inbox"
    studies = small_studies(inbox, n=1)
    before = digests(inbox)
    config = _config(home, cfg, monkeypatch)
    proc = subprocess.run([sys.executable, "-c", _CHILD, KILL_POINTS[point], "archive", "--config", str(cfg),
                           "--json", str(inbox)], cwd=home, env=child_env(home, _api_url()), capture_output=True,
                          timeout=RUN_TIMEOUT_S, start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert check_released(config) == []
    assert digests(inbox) == before
    rc, _, _ = _run_to_end(home, cfg, inbox, home / "run.log")
    assert rc == 0, (home / "run.log").read_text()[-3000:]
    assert check_catalog_agrees(config, studies) == []
    assert digests(inbox) == before
