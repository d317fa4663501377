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
import importlib.abc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


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
        # PR_SET_PDEATHSIG fires when the *thread* that forked the child ends: only the main thread lives as long
        # as the process (Prefect starts its temporary server there; elsewhere the server is left as it was)
        if kwargs.get("preexec_fn") is None and threading.current_thread() is threading.main_thread():
            kwargs["preexec_fn"] = functools.partial(_die_with_parent, os.getpid())
        return subprocess.Popen(*args, **kwargs)


_SERVER_MODULE = "prefect.server.api.server"


def _patch(module) -> None:
    if not getattr(module.subprocess, "_medzip_pdeathsig", False):
        module.subprocess = _ChildrenDieWithUs()


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches Prefect's server module when (and only if) something imports it, so a command that never starts a
    server pays nothing (the module takes seconds to import)."""

    def find_spec(self, name, path, target=None):
        if name != _SERVER_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is not None and hasattr(loader, "exec_module"):
            real_exec = loader.exec_module

            def exec_module(module):
                real_exec(module)
                _patch(module)

            loader.exec_module = exec_module
        return spec


def temporary_server_dies_with_parent() -> None:
    """Make Prefect's temporary server (the uvicorn child it starts for a run when no PREFECT_API_URL is set) die
    with this process. Prefect stops it at a normal exit (atexit), but a process killed by SIGKILL or a crash runs no
    atexit, and the server lived on, orphaned. Called when the flows package is imported; Linux only."""
    if not sys.platform.startswith("linux"):
        return
    if _SERVER_MODULE in sys.modules:
        _patch(sys.modules[_SERVER_MODULE])
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


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
        import httpx  # here, not at the top: flows/__init__ imports this module for every medzip command

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
