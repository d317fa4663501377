"""`medzip serve`: the inbox flow as a scheduled deployment.

Schedules fire only on a real Prefect server (the temporary local one runs no scheduler): with PREFECT_API_URL set
we serve against that server; without it we start `prefect server start` with its SQLite under
$MEDZIP_HOME/prefect and stop it when serving ends.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import ExitStack

from prefect.settings import PREFECT_API_URL, temporary_settings

from configs import Config
from flows.inbox import archive_inbox
from flows.prefect_server import PrefectServer

DEPLOYMENT_NAME = "medzip-inbox"


def schedule_kwargs(config: Config) -> dict:
    if config.schedule.cron:
        return {"cron": config.schedule.cron}
    return {"interval": config.schedule.interval_seconds}


def _terminate_gracefully(signum, frame) -> None:
    raise KeyboardInterrupt  # so the ExitStack below stops the Prefect server we started


def serve_inbox(config: Config, server_timeout: float = 180.0) -> None:
    """Serve archive_inbox on the config's interval or cron until interrupted (Ctrl-C or SIGTERM)."""
    with ExitStack() as stack:
        if threading.current_thread() is threading.main_thread():
            # SIGINT too: with Python's default handler in place, asyncio.run (under Prefect's serve) turns the first
            # Ctrl-C into a cancellation of the runner's task, which the runner can swallow; then serving went on
            # until a second Ctrl-C, and a lone SIGINT left the Prefect server running (the slow serve test, under
            # load). A handler of our own keeps asyncio from installing that one.
            for sig in (signal.SIGINT, signal.SIGTERM):
                stack.callback(signal.signal, sig, signal.signal(sig, _terminate_gracefully))
        if not PREFECT_API_URL.value():
            for folder in (config.home, config.paths.inbox):
                folder.mkdir(parents=True, exist_ok=True)
            server = PrefectServer(config.home / "prefect").start(timeout=server_timeout)
            stack.callback(server.stop)
            os.environ["PREFECT_API_URL"] = server.api_url  # for the flow-run processes the runner starts
            stack.enter_context(temporary_settings(updates={PREFECT_API_URL: server.api_url}))
            print(f"Prefect server started: UI {server.ui_url}  (database under {server.prefect_home})")
        config.paths.inbox.mkdir(parents=True, exist_ok=True)
        print(f"serving '{DEPLOYMENT_NAME}': scanning {config.paths.inbox} "
              + (f"on cron {config.schedule.cron!r}" if config.schedule.cron
                 else f"every {config.schedule.interval_seconds} s"))
        archive_inbox.serve(
            name=DEPLOYMENT_NAME,
            parameters={"config": config.model_dump(mode="json")},
            description="Archive every settled study in the medzip inbox",
            limit=1,  # one scan at a time: a slow scan is not overtaken by the next scheduled one
            **schedule_kwargs(config),
        )
