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
