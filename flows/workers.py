"""Worker processes for the flows' CPU work (encode, decode, measure), so a study uses every core.

Why processes: the codec's numba kernels and constriction hold the GIL, so the task runner's threads take turns on
one core. The Prefect tasks stay in their threads and hand the work of a chunk to this pool; Prefect's own
ProcessPoolTaskRunner would start a Prefect client in every worker (seconds per worker) and cannot be warmed up
while Prefect's server starts. The pool is one per process, started at most once (`warm_up` starts it ahead of the
flow, so its imports overlap Prefect's start-up), and reused by every study this process archives.
"""
from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_size = 0


def processes_for(runner) -> int:
    """The number of worker processes a config's runner asks for: `processes = "auto"` is one per core this process
    may use; 0 runs the work in the task's own thread, as does a Dask runner (its workers are processes already)."""
    if runner.kind != "thread":
        return 0
    setting = runner.processes
    if setting == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return int(setting)


_WORK_MODULES = ["flows.chunk_work", "codec.api", "codec.coders", "codec.raster_kernels", "archive", "dicom_io"]


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie waiting to be reaped has ended too)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True


def _exit_when_gone(pid: int) -> None:
    while not _gone(pid):
        time.sleep(0.5)
    os._exit(1)


def _warm_worker(owner: int) -> None:
    """Worker start-up: exit when the process that started the pool (`owner`) ends, even killed, so nothing of a
    killed run keeps computing or holds its output pipes open (the fork server only exits once its workers have,
    since they hold its liveness pipe); the modules are imported already (the fork server preloads them); code and
    decode a tiny slice in the lossless, a near-lossless and a wavelet mode, so numba loads its compiled kernels
    before the first chunk."""
    import numpy as np

    threading.Thread(target=_exit_when_gone, args=(owner,), name="medzip-owner-watch", daemon=True).start()

    from codec import api
    from codec.modes import Mode

    tiny = (np.arange(256, dtype=np.int16).reshape(16, 16) * 7) % 1000
    for mode in ("lossless", "near-lossless:2", "wavelet:100/4"):
        api.decode(api.encode(tiny, Mode.parse(mode), 12, True))


def _pool_of(n: int) -> ProcessPoolExecutor:
    global _pool, _size
    with _lock:
        if _pool is None or _size != n:
            if _pool is not None:
                _pool.shutdown(wait=True)
            # forkserver: a clean interpreter that has imported the work's modules once forks the workers (no copy
            # of Prefect's threads and locks, no re-run of the command's __main__ as spawn would do)
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_WORK_MODULES)
            _pool, _size = ProcessPoolExecutor(n, mp_context=context, initializer=_warm_worker,
                                               initargs=(os.getpid(),)), n
        return _pool


def warm_up(n: int) -> None:
    """Start `n` workers now (no-op for 0): their imports run while the caller does other work."""
    if n > 0:
        pool = _pool_of(n)
        for _ in range(n):
            pool.submit(int)


def run(n: int, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in one of `n` worker processes (fn and args must pickle), or right here when n is 0. A worker
    that dies (killed, out of memory) fails this call with BrokenProcessPool and the next call gets a new pool."""
    global _pool
    if n <= 0:
        return fn(*args)
    pool = _pool_of(n)
    try:
        return pool.submit(fn, *args).result()
    except BrokenProcessPool:
        with _lock:
            if _pool is pool:
                _pool = None
        raise


@atexit.register
def shutdown() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None


# A process started by multiprocessing (Prefect's runner starts a served flow run so) ends in
# multiprocessing.util._exit_function, which joins its child processes and never runs atexit: the pool's workers wait
# for work, so without this finaliser (run by _exit_function before it joins) a served flow run never exited and
# `medzip serve` hung on Ctrl-C, its Prefect server left running.
multiprocessing.util.Finalize(None, shutdown, exitpriority=100)
