"""`medzip serve` end to end: a real `prefect server start` (started by serve_inbox itself, SQLite under
$MEDZIP_HOME), the archive-inbox deployment on a 5 s interval, a study dropped into the inbox is released.

Slow (2-3 minutes on a busy 2-core machine: server start, scheduler, flow-run subprocess, model load), so it is
marked `slow`; run it with `pytest -m slow tests/flows/test_serve_deployment.py`."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.flows import write_study

ROOT = Path(__file__).resolve().parents[2]
STUDY_UID = "1.2.826.0.1.3680043.8.498.50001"


@pytest.mark.slow
def test_served_deployment_archives_a_study_dropped_into_the_inbox(tmp_path):
    from archive import Catalog
    from configs import load_config

    home = tmp_path / "home"
    home.mkdir()
    cfg_path = tmp_path / "medzip.toml"
    cfg_path.write_text('[codec]\nmode = "lossless"\n[schedule]\ninterval_seconds = 5\nsettle_seconds = 1\n'
                        'max_concurrent_studies = 1\n[runner]\nmax_workers = 2\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # no API URL: serve starts one
    env.update(MEDZIP_HOME=str(home), PREFECT_HOME=str(tmp_path / "client"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_RUNNER_POLL_FREQUENCY="2", TF_CPP_MIN_LOG_LEVEL="2")
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", f"from configs import load_config; from flows.serve_deployment import serve_inbox; "
                                   f"serve_inbox(load_config({str(cfg_path)!r}))"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        stage = write_study(tmp_path / "stage", STUDY_UID)
        inbox = home / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        for f in stage:  # arrives while the server starts
            shutil.move(str(f), inbox / f.name)
        os.environ["MEDZIP_HOME"], saved = str(home), os.environ.get("MEDZIP_HOME")
        try:
            config = load_config(cfg_path)
        finally:
            os.environ.pop("MEDZIP_HOME") if saved is None else os.environ.__setitem__("MEDZIP_HOME", saved)
        deadline = time.monotonic() + 420
        released = None
        while time.monotonic() < deadline and released is None:
            assert proc.poll() is None, log_path.read_text()[-4000:]
            time.sleep(2)
            if config.paths.catalog.exists():
                released = Catalog.from_config(config).latest(STUDY_UID, status="released")
        assert released is not None, log_path.read_text()[-4000:]
        assert Path(released.path).parent == config.paths.released and Path(released.path).is_file()
        assert released.n_frames == 15
        assert len(list(inbox.iterdir())) == len(stage)  # inputs stay where they arrived
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert "Prefect server started" in text and "serving 'medzip-inbox'" in text
    assert not (home / "prefect" / "server.pid").exists(), "serve_inbox left its Prefect server running"
    assert (home / "prefect" / "prefect.db").is_file()  # the server's SQLite lives under $MEDZIP_HOME


def test_inside_prefects_event_loop_a_sigint_raises_keyboardinterrupt(tmp_path, monkeypatch):
    """Prefect's serve runs the runner under asyncio.run, which (with Python's default SIGINT handler in place)
    installs one that only cancels the runner's task; the runner swallowed that under load and served on after
    Ctrl-C. serve_inbox's own handler stays in place there and raises KeyboardInterrupt (which Prefect's serve
    catches to shut down), and the previous handlers come back afterwards."""
    import asyncio

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from configs import load_config
    from flows import serve_deployment

    outcome = []

    def fake_serve(**kwargs):
        async def runner():
            outcome.append(signal.getsignal(signal.SIGINT) is serve_deployment._terminate_gracefully)
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(5)
            outcome.append("served on")

        try:
            asyncio.run(runner())
        except KeyboardInterrupt:
            outcome.append("interrupted")

    monkeypatch.setenv("MEDZIP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(serve_deployment.archive_inbox, "serve", fake_serve)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # no server of our own
        serve_deployment.serve_inbox(load_config())
    assert outcome == [True, "interrupted"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
