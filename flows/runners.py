"""The Prefect task runner a config asks for: a thread pool by default, an existing Dask cluster on request."""
from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from configs import Config


def task_runner_for(config: Config) -> TaskRunner:
    runner = config.runner
    if runner.kind == "dask":
        from prefect_dask import DaskTaskRunner  # imported only when asked: it pulls in distributed

        return DaskTaskRunner(address=runner.dask_address)
    return ThreadPoolTaskRunner(max_workers=runner.max_workers)
