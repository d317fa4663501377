"""A server or worker that dies, and a medzip that dies without leaving a server behind.

* `medzip archive` SIGKILLed (or crashing) while Prefect's temporary server runs: the server (uvicorn) dies with it
  (flows/prefect_server.py gives it PR_SET_PDEATHSIG); issue 14 found it running on, orphaned, after a crash.
* The Prefect API server stopped in the middle of an archive run, and a Dask worker SIGKILLed in the middle of a
  DaskTaskRunner run (`-m slow`): the study ends released exactly once or cleanly pending (never half-released),
  the inbox is untouched, and the next run (against a server that is back) completes it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.reliability import (
    MEDZIP,
    check_catalog_agrees,
    check_released,
    child_env,
    digests,
    small_studies,
    write_config,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
RUN_TIMEOUT_S = 600


def _children(pid: int) -> dict[int, str]:
    """Direct children of `pid` with their command lines (from /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def _env_without_server(home: Path) -> dict[str, str]:
    env = child_env(home)
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_HOME"] = str(home / "prefect")
    return env


@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGSEGV, marks=pytest.mark.slow)],
                         ids=["SIGKILL", "SIGSEGV"])
def test_killed_medzip_leaves_no_prefect_server(tmp_path, sig):
    home = tmp_path / "home"
    cfg = write_config(home / "medzip.toml")
    inbox = home / "inbox"
    small_studies(inbox, n=1)
    proc = subprocess.Popen([str(MEDZIP), "archive", "--config", str(cfg), str(inbox)], cwd=home,
                            env=_env_without_server(home), stdout=subprocess.DEVNULL,
                            stderr=open(home / "run.log", "wb"), start_new_session=True)
    servers: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 300
        while not servers and proc.poll() is None and time.monotonic() < deadline:
            servers = {p: c for p, c in _children(proc.pid).items() if "uvicorn" in c}
            time.sleep(0.2)
        assert servers, "no temporary Prefect server was started: " + (home / "run.log").read_text()[-2000:]
        time.sleep(2)  # the server is up and the run goes on
        os.kill(proc.pid, sig)  # only medzip itself: the kernel, not a process-group kill, must end the server
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in servers) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [p for p in servers if _alive(p)]
        assert survivors == [], f"Prefect server(s) outlived medzip: {[servers[p][:120] for p in survivors]}"
    finally:
        for p in list(servers):
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _run(cfg: Path, home: Path, inbox: Path, api_url: str, log: Path, on_writing=None) -> tuple[int | None, dict]:
    """`medzip archive --json`; `on_writing()` is called once the archive's temporary file appears in work/."""
    from configs import load_config

    work = load_config(cfg).paths.work
    with open(log, "ab") as err:
        proc = subprocess.Popen([str(MEDZIP), "archive", "--config", str(cfg), "--json", str(inbox)], cwd=home,
                                env=child_env(home, api_url), stdout=subprocess.PIPE, stderr=err,
                                start_new_session=True)
        fired = on_writing is None
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            if not fired and work.is_dir() and any(".tmp-" in p.name for p in work.iterdir()):
                on_writing()
                fired = True
            time.sleep(0.01)
        if proc.poll() is None:  # hung: a finding, but the folders must still be consistent
            os.killpg(proc.pid, signal.SIGKILL)
        out = proc.stdout.read().decode(errors="replace")
        proc.wait()
    try:
        return proc.returncode, json.loads(out)
    except ValueError:
        return proc.returncode, {}


def _after_fault(config, studies, before) -> str:
    """released exactly once or cleanly pending, never half; returns the study's catalog status."""
    from archive import Catalog

    assert check_released(config) == []
    records = Catalog.from_config(config).list()
    statuses = [r.status for r in records]
    assert statuses in ([], ["pending"], ["released"]), statuses
    released = list(config.paths.released.glob("*.h5")) if config.paths.released.is_dir() else []
    assert len(released) == statuses.count("released")
    assert digests(config.paths.inbox) == before
    return statuses[0] if statuses else "none"


@pytest.mark.slow
def test_prefect_server_stopped_mid_run_then_rerun(tmp_path, monkeypatch):
    from configs import load_config
    from flows.prefect_server import PrefectServer

    home = tmp_path / "home"
    cfg = write_config(home / "medzip.toml", mode="lossless")
    inbox = home / "inbox"
    studies = small_studies(inbox, n=1)
    monkeypatch.setenv("MEDZIP_HOME", str(home))
    config = load_config(cfg)
    before = digests(inbox)
    server = PrefectServer(home / "prefect-a").start(timeout=300)
    try:
        t0 = time.monotonic()
        rc, out = _run(cfg, home, inbox, server.api_url, home / "run1.log", on_writing=server.stop)
        print(f"server stopped mid-run: exit {rc} after {time.monotonic() - t0:.0f}s, "
              f"outcome {[s.get('status') for s in out.get('studies', [])]}")
    finally:
        server.stop()
    status = _after_fault(config, studies, before)
    with PrefectServer(home / "prefect-b") as again:  # the server is back (a fresh database)
        rc, out = _run(cfg, home, inbox, again.api_url, home / "run2.log")
    assert rc == 0, (home / "run2.log").read_text()[-3000:]
    assert check_catalog_agrees(config, studies) == []
    assert digests(inbox) == before
    print(f"after the fault the study was {status}; the rerun: {[s['status'] for s in out['studies']]}")


@pytest.mark.slow
def test_dask_worker_killed_mid_run_then_rerun(tmp_path, monkeypatch, prefect_server):
    from distributed import Client, LocalCluster
    from prefect.settings import PREFECT_API_URL

    from configs import load_config

    home = tmp_path / "home"
    cfg = write_config(home / "medzip.toml", mode="lossless")
    inbox = home / "inbox"
    studies = small_studies(inbox, n=1)
    monkeypatch.setenv("MEDZIP_HOME", str(home))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        cfg.write_text(cfg.read_text().replace('kind = "thread"',
                                               f'kind = "dask"\ndask_address = "{cluster.scheduler_address}"'))
        config = load_config(cfg)
        before = digests(inbox)
        pids = client.run(os.getpid)
        killed = []

        def kill_a_worker():
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

        rc, out = _run(cfg, home, inbox, PREFECT_API_URL.value(), home / "run1.log", on_writing=kill_a_worker)
        assert killed
        print(f"worker {killed} killed mid-run: exit {rc}, outcome {[s.get('status') for s in out.get('studies', [])]}")
        status = _after_fault(config, studies, before)
        client.wait_for_workers(2, timeout=120)  # the nanny brings the worker back
        rc, out = _run(cfg, home, inbox, PREFECT_API_URL.value(), home / "run2.log")
    assert rc == 0, (home / "run2.log").read_text()[-3000:]
    assert check_catalog_agrees(config, studies) == []
    assert digests(inbox) == before
    print(f"after the kill the study was {status}; the rerun: {[s['status'] for s in out['studies']]}")
