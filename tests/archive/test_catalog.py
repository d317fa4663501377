"""The SQLite catalog: claims, versions, status transitions, filters, and concurrent processes."""
from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import stat
import threading
from datetime import date, datetime, timedelta, timezone

import pytest

from archive import Catalog, CatalogError, study_content_hash


def _hash(n: int) -> str:
    return study_content_hash([(f"1.2.{n}", f"{n:064x}")])


def test_claim_versions_and_idempotence(tmp_path):
    cat = Catalog(tmp_path / "cat" / "catalog.sqlite")
    assert stat.S_IMODE(cat.path.stat().st_mode) == 0o600
    first = cat.claim("1.2.3", _hash(1), path="work/a.h5", mode="lossless", codec="c")
    assert first.claimed and first.why == "new"
    rec = first.record
    assert (rec.study_uid, rec.version, rec.status, rec.path, rec.mode) == ("1.2.3", 1, "pending", "work/a.h5", "lossless")
    cat.set_status(rec.id, "released", path="released/a.h5")
    again = cat.claim("1.2.3", _hash(1))
    assert not again.claimed and again.why == "exists" and again.record.status == "released"
    changed = cat.claim("1.2.3", _hash(2))
    assert changed.claimed and changed.record.version == 2
    other = cat.claim("9.9", _hash(3))
    assert other.record.version == 1
    assert [r.version for r in cat.find_by_study("1.2.3")] == [1, 2]
    assert cat.find_by_content_hash(_hash(1)).path == "released/a.h5"
    assert cat.find_by_path("released/a.h5").id == rec.id
    assert cat.latest("1.2.3").version == 1  # v2 is not released yet
    assert cat.latest("1.2.3", status=None).version == 2
    assert cat.find_by_content_hash("0" * 64) is None
    with pytest.raises(CatalogError, match="already catalogued"):
        cat.add("1.2.3", _hash(1))


def test_update_summary_and_modalities(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    rec = cat.add("1.2.3", _hash(1), path="w/a.h5", original_bytes=1000, archived_bytes=250, ratio=4.0)
    assert (rec.original_bytes, rec.archived_bytes, rec.ratio) == (1000, 250, 4.0)
    rec = cat.update(rec.id, modalities=["ct", "SR"], n_frames=3, min_psnr=51.2, min_ssim=0.995, max_error=4,
                     file_sha256="f" * 64)
    assert rec.modalities == ("CT", "SR") and rec.n_frames == 3 and rec.max_error == 4
    rec = cat.record_summary("w/a.h5", {"n_series": 2, "unrelated": 1, "modalities": ["MR"]})
    assert rec.n_series == 2 and rec.modalities == ("MR",)
    with pytest.raises(CatalogError, match="cannot be updated"):
        cat.update(rec.id, status="released")
    with pytest.raises(CatalogError, match="no archive"):
        cat.update(12345, n_frames=1)
    assert rec.as_dict()["modalities"] == ["MR"]


def test_status_transitions(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    a = cat.add("1.2.3", _hash(1), path="w/a.h5")
    q = cat.set_status("w/a.h5", "quarantined", ["CT frame 3: PSNR 40.1 dB < 50.0"], path="quarantine/a.h5")
    assert q.status == "quarantined" and q.reasons == ("CT frame 3: PSNR 40.1 dB < 50.0",) and q.path == "quarantine/a.h5"
    with pytest.raises(CatalogError, match="cannot go from quarantined to released"):
        cat.set_status(a.id, "released")
    assert not cat.claim("1.2.3", _hash(1)).claimed
    retry = cat.claim("1.2.3", _hash(1), retry_quarantined=True)
    assert retry.claimed and retry.why == "retry" and retry.record.status == "pending"
    r = cat.set_status(a.id, "released", path="released/a.h5")
    assert r.status == "released" and r.reasons == ()
    assert cat.set_status(a.id, "quarantined", ["verify: payload checksum"]).status == "quarantined"
    with pytest.raises(CatalogError, match="unknown status"):
        cat.set_status(a.id, "deleted")


def test_list_filters(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    recs = []
    for n, (mods, status) in enumerate([(["CT"], "released"), (["MR", "SR"], "quarantined"), (["CT", "MR"], "pending")]):
        r = cat.add(f"1.2.{n}", _hash(n), modalities=mods)
        if status != "pending":
            cat.set_status(r.id, status)
        recs.append(r)
    with sqlite3.connect(cat.path) as con:  # spread creation over three days
        for n, r in enumerate(recs):
            con.execute("UPDATE archives SET created_utc = ? WHERE id = ?", (f"2026-01-0{n + 1}T12:00:00.000000Z", r.id))
    assert [r.study_uid for r in cat.list()] == ["1.2.0", "1.2.1", "1.2.2"]
    assert [r.study_uid for r in cat.list(modality="mr")] == ["1.2.1", "1.2.2"]
    assert [r.study_uid for r in cat.list(status="released")] == ["1.2.0"]
    assert [r.study_uid for r in cat.list(status=["pending", "quarantined"])] == ["1.2.1", "1.2.2"]
    assert [r.study_uid for r in cat.list(since=date(2026, 1, 2))] == ["1.2.1", "1.2.2"]
    assert [r.study_uid for r in cat.list(until=date(2026, 1, 2))] == ["1.2.0"]
    since = datetime(2026, 1, 2, 13, 0, tzinfo=timezone(timedelta(hours=1)))  # 12:00 UTC
    assert [r.study_uid for r in cat.list(since=since, until="2026-01-03", modality="SR")] == ["1.2.1"]
    assert cat.list(modality="CT", status="quarantined") == []
    with pytest.raises(CatalogError, match="unknown status"):
        cat.list(status="gone")


def test_stale_pending_claim_is_taken_over(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    import socket

    dead = f"{socket.gethostname()}:{2**22 + 12345}"  # beyond pid_max: no such process
    cat.claim("1.2.3", _hash(1), owner=dead)
    c = cat.claim("1.2.3", _hash(1), owner="me:1")
    assert c.claimed and c.why == "taken-over" and c.record.owner == "me:1" and c.record.version == 1
    alive = f"{socket.gethostname()}:{os.getpid()}"
    cat.claim("1.2.3", _hash(2), owner=alive)
    assert not cat.claim("1.2.3", _hash(2), owner="other:1").claimed  # owner still running
    assert cat.claim("1.2.3", _hash(2), owner="other:1", stale_after_s=0).claimed  # ...but silent too long


def test_two_runs_in_one_process_do_not_share_a_claim(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    assert cat.claim("1.2.3", _hash(1)).claimed
    assert not cat.claim("1.2.3", _hash(1)).claimed  # same pid, different run: still someone else's claim
    mine = cat.claim("1.2.3", _hash(2), owner="flow-run-7")
    assert cat.claim("1.2.3", _hash(2), owner="flow-run-7").why == "taken-over"  # the same run resuming
    assert mine.record.id == cat.find_by_content_hash(_hash(2)).id


def _race(path, hashes, results):
    cat = Catalog(path)
    won = [h for h in hashes if cat.claim("1.2." + h[:4], h, owner=f"w:{os.getpid()}").claimed]
    results.put(won)


def test_concurrent_processes_never_claim_twice(tmp_path):
    path = tmp_path / "catalog.sqlite"
    Catalog(path)
    hashes = [_hash(n) for n in range(40)]
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, hashes if i % 2 else hashes[::-1], results)) for i in range(4)]
    for p in procs:
        p.start()
    won = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(h for w in won for h in w) == sorted(hashes)  # each content claimed by exactly one process
    cat = Catalog(path)
    assert len(cat.list()) == 40 and all(r.version == 1 for r in cat.list())


def test_concurrent_connections_in_threads_give_distinct_versions(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    claims, errors = [], []

    def worker(i):
        try:
            claims.append(Catalog(cat.path).claim("1.2.3", _hash(i)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(c.record.version for c in claims) == list(range(1, 13))


def test_from_config_uses_the_configured_path(tmp_path, monkeypatch):
    from configs import load_config

    monkeypatch.setenv("MEDZIP_HOME", str(tmp_path / "home"))
    cat = Catalog.from_config(load_config())
    assert cat.path == tmp_path / "home" / "catalog.sqlite" and cat.path.exists()


def test_corrupt_catalog_is_a_catalog_error(tmp_path):
    bad = tmp_path / "catalog.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(CatalogError, match=str(bad)):
        Catalog(bad)
