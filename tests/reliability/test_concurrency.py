"""Two archive runs on the same inbox at once never archive a study twice: the catalog's claim on a study's content
hash (UNIQUE in SQLite) decides which run does the work; the other reports it as taken."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from configs import load_config
from tests.helpers.flows import make_config
from tests.helpers.reliability import check_catalog_agrees, digests, small_studies, start_medzip, write_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_two_threads_never_both_claim_a_study(tmp_path):
    """The catalog's claim from two threads of one process (the default owner names the thread): one wins."""
    from archive import Catalog

    catalog = Catalog(tmp_path / "catalog.sqlite")
    for n in range(20):
        barrier, claims = threading.Barrier(2), []

        def claim() -> None:
            barrier.wait()
            claims.append(catalog.claim(f"1.2.{n}", f"{n:064x}").claimed)

        threads = [threading.Thread(target=claim) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claims) == [False, True]


@pytest.mark.slow  # two `medzip` children (TensorFlow + Prefect start-up each); the threads test below is the default
def test_two_processes_on_one_inbox(tmp_path, monkeypatch, prefect_server):
    from prefect.settings import PREFECT_API_URL

    home = tmp_path / "home"
    cfg = write_config(home / "medzip.toml")
    inbox = home / "inbox"
    studies = small_studies(inbox, n=2)
    before = digests(inbox)
    procs = [start_medzip(["archive", "--config", str(cfg), "--json", str(inbox)], home, PREFECT_API_URL.value(),
                          tmp_path / f"run{k}.log") for k in range(2)]
    rcs = [p.wait(timeout=900) for p in procs]
    logs = [(tmp_path / f"run{k}.log").read_text() for k in range(2)]
    monkeypatch.setenv("MEDZIP_HOME", str(home))
    config = load_config(cfg)
    assert check_catalog_agrees(config, studies) == [], logs
    assert digests(inbox) == before
    # each study: released by one run; the other found it archived or in progress, never a second archive
    statuses = {uid: [] for uid in studies}
    for log in logs:
        text = "\n" + log
        start = text.find("\n{\n")  # the --json document (log lines of the run may come before and after it)
        doc = json.JSONDecoder().raw_decode(text[start + 1:])[0] if start >= 0 else {"studies": []}
        for o in doc.get("studies", []):
            statuses.setdefault(o["study_uid"], []).append(o["status"])
    for uid, seen in statuses.items():
        assert seen.count("released") == 1, (uid, seen, rcs)
    assert len(list(config.paths.released.glob("*.h5"))) == len(studies)


def test_two_threads_run_the_inbox_flow_at_once(tmp_path, prefect_server):
    """The same in one process (e.g. overlapping scheduled runs served by one worker)."""
    from flows.inbox import archive_inbox

    config = make_config(tmp_path / "home", settle_seconds=0)
    studies = small_studies(config.paths.inbox, n=2)
    before = digests(config.paths.inbox)
    results, errors = {}, []
    barrier = threading.Barrier(2)

    def run(k: int) -> None:
        try:
            barrier.wait()
            results[k] = archive_inbox(config)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    assert errors == []
    assert check_catalog_agrees(config, studies) == [], results
    assert digests(config.paths.inbox) == before
    for uid in studies:
        seen = [o["status"] for k in results for o in results[k] if o["study_uid"] == uid]
        assert seen.count("released") == 1, (uid, seen)
    assert len(list(Path(config.paths.released).glob("*.h5"))) == len(studies)
