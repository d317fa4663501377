"""A real `prefect server start` for `medzip serve`.

Prefect's temporary local server runs no scheduler, so scheduled deployments never fire on it. When no
PREFECT_API_URL is set, `medzip serve` starts a real server with its SQLite database under $MEDZIP_HOME/prefect
(PREFECT_HOME), waits until it answers /api/health, and stops it on exit.

Neither server outlives medzip: both this one and Prefect's own temporary server (the uvicorn child Prefect starts
for a one-off run when no PREFECT_API_URL is set, see `temporary_server_dies_with_parent`) get SIGTERM from the
kernel when the process that started them dies, even by SIGKILL or a segmentation fault.
"""
from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


class PrefectServerError(RuntimeError):
    """The Prefect server did not start or answer in time."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent(parent_pid: int | None = None) -> None:
    """Linux: the server gets SIGTERM when the process that started it dies, even by SIGKILL (no orphan servers).
    Run in the child between fork and exec; `parent_pid` closes the race of a parent that died before prctl."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if parent_pid is not None and os.getppid() != parent_pid:
            os._exit(1)


class _ChildrenDieWithUs:
    """The `subprocess` module as Prefect's server module sees it: Popen children get _die_with_parent."""

    _medzip_pdeathsig = True

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs):  # noqa: N802 (the name Prefect calls)
        if kwargs.get("preexec_fn") is None:
            parent = os.getpid()
            kwargs["preexec_fn"] = lambda: _die_with_parent(parent)
        return subprocess.Popen(*args, **kwargs)


def temporary_server_dies_with_parent() -> None:
    """Make Prefect's temporary server (started when no PREFECT_API_URL is set) die with this process.

    Prefect stops it at a normal exit (atexit), but a process killed by SIGKILL or a crash runs no atexit, and the
    uvicorn child lived on, orphaned. Nothing to do when an API URL is set (no temporary server is started); the
    import costs nothing then either, since Prefect imports the same module to start its server."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or not sys.platform.startswith("linux"):
        return
    import prefect.server.api.server as server_module

    if not getattr(server_module.subprocess, "_medzip_pdeathsig", False):
        server_module.subprocess = _ChildrenDieWithUs()


class PrefectServer:
    """`prefect server start` on 127.0.0.1 as a child process; use as a context manager."""

    def __init__(self, prefect_home: Path, port: int | None = None, log_path: Path | None = None,
                 extra_env: dict[str, str] | None = None):
        self.prefect_home = Path(prefect_home)
        self.port = port or _free_port()
        self.log_path = log_path or self.prefect_home / "server.log"
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(
            PREFECT_HOME=str(self.prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(self.port),
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 120.0) -> "PrefectServer":
        self.prefect_home.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.environment(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so stop() ends uvicorn and the services with it
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),
        )
        log.close()
        (self.prefect_home / "server.pid").write_text(f"{self.process.pid}\n")
        self.wait_healthy(timeout)
        return self

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise PrefectServerError(
                    f"prefect server exited with code {self.process.returncode}; see {self.log_path}")
            if self.healthy():
                return
            time.sleep(0.5)
        self.stop()
        raise PrefectServerError(f"prefect server did not answer {self.api_url}/health within {timeout:.0f} s; "
                                 f"see {self.log_path}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        (self.prefect_home / "server.pid").unlink(missing_ok=True)
        self.process = None

    def __enter__(self) -> "PrefectServer":
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
