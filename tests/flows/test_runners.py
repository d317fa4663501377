"""archive_study on a real dask.distributed LocalCluster (two workers) through prefect-dask's DaskTaskRunner gives
the same archive content as the default thread-pool run."""
from configs.schema import Runner
from tests.helpers.flows import _find, archive_content, make_config, write_study


def test_dask_cluster_gives_the_same_archive(prefect_server, tmp_path):
    from distributed import LocalCluster, get_task_stream

    from flows.archive_flow import archive_study

    uid = "1.2.826.0.1.3680043.8.498.30001"
    ct_series = sorted(p for p in _find("17106").parent.iterdir() if p.is_file())
    files = write_study(tmp_path / "in", uid, [*ct_series, _find("CT_small.dcm"), _find("test-SR.dcm")])

    threads = archive_study(files, make_config(tmp_path / "threads"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert len(cluster.workers) == 2
        config = make_config(tmp_path / "dask", runner=Runner(kind="dask", dask_address=cluster.scheduler_address))
        with cluster.get_client() as client, get_task_stream(client) as stream:
            dask = archive_study(files, config)
            workers = set(cluster.scheduler.workers)
    assert threads.status == dask.status == "released"
    # the chunk tasks really ran on the cluster: 2 encode + 2 verify chunks at least, plus ingest and hashing
    assert len(stream.data) >= 4, stream.data
    assert len(workers) == 2 and {t["worker"] for t in stream.data} <= workers
    assert archive_content(threads.archive) == archive_content(dask.archive)


def test_worker_processes_give_the_same_archive(prefect_server, tmp_path):
    """runner.processes = 2 (the default config's "auto" on 2 cores): encode and confirm run in worker processes."""
    import os

    from flows import workers
    from flows.archive_flow import archive_study

    uid = "1.2.826.0.1.3680043.8.498.30002"
    ct_series = sorted(p for p in _find("17106").parent.iterdir() if p.is_file())
    files = write_study(tmp_path / "in", uid, [*ct_series, _find("CT_small.dcm"), _find("MR_small.dcm")])
    for mode in ("lossless", "near-lossless:2"):
        inline = archive_study(files, make_config(tmp_path / f"inline-{mode[:4]}", mode=mode))
        config = make_config(tmp_path / f"pool-{mode[:4]}", mode=mode,
                             runner=Runner(kind="thread", max_workers=2, processes=2))
        pooled = archive_study(files, config)
        assert inline.status == pooled.status == "released", pooled.reasons
        assert archive_content(inline.archive) == archive_content(pooled.archive)
    pids = {workers.run(2, os.getpid) for _ in range(8)}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # the work really left this process
