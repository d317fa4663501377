"""flows.workers: how many worker processes a runner asks for, work run there or inline, a dead worker."""
import os
import signal
from concurrent.futures.process import BrokenProcessPool

import pytest

from configs.schema import Runner
from flows import workers


def test_processes_for_the_runner():
    assert workers.processes_for(Runner(processes=0)) == 0
    assert workers.processes_for(Runner(processes=3)) == 3
    assert workers.processes_for(Runner(processes="auto")) == len(os.sched_getaffinity(0))
    assert workers.processes_for(Runner(kind="dask", dask_address="tcp://h:1", processes=4)) == 0
    with pytest.raises(ValueError):
        Runner(processes=-1)


def test_inline_and_in_a_worker():
    assert workers.run(0, os.getpid) == os.getpid()
    assert workers.run(1, divmod, 7, 2) == (3, 1)
    assert workers.run(1, os.getpid) != os.getpid()


def test_a_killed_worker_fails_its_call_and_the_next_call_gets_a_new_pool():
    victim = workers.run(1, os.getpid)
    with pytest.raises(BrokenProcessPool):
        workers.run(1, os.kill, victim, signal.SIGKILL)
    assert workers.run(1, os.getpid) not in (victim, os.getpid())


def test_workers_exit_when_the_process_that_started_them_is_killed(tmp_path):
    """A killed medzip leaves no worker computing or holding its output pipes (they would hang whoever reads them)."""
    import subprocess
    import sys
    import time

    child = ("import os, sys; from flows import workers; "
             "print(*sorted({workers.run(2, os.getpid) for _ in range(20)}), flush=True); "
             "os.kill(os.getpid(), 9)")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == -signal.SIGKILL
    pids = [int(p) for p in proc.stdout.split()]
    assert pids, proc.stderr
    deadline = time.monotonic() + 10
    while any(workers._gone(p) is False for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(workers._gone(p) for p in pids)
    assert time.monotonic() - started < 60  # capture_output returned: nothing kept the pipes open


def _work_in_a_multiprocessing_child() -> None:
    assert workers.run(1, divmod, 7, 2) == (3, 1)


def test_a_process_started_by_multiprocessing_exits_after_using_the_pool():
    """Prefect's runner starts a served flow run as a multiprocessing child: such a process ends by joining its own
    children, without atexit, so the pool must be shut down by multiprocessing's finaliser or the run never exits."""
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(target=_work_in_a_multiprocessing_child)
    child.start()
    child.join(timeout=60)
    alive = child.is_alive()
    if alive:
        child.kill()
        child.join()
    assert not alive and child.exitcode == 0
