"""Bad input through the real inbox flow: every malformed or unsupported file (tests/helpers/badinputs.py) is archived, kept
verbatim or reported with a typed error naming it; the flow always finishes; the inbox is left byte-identical;
nothing is written outside the configured folders, whatever the UIDs say.

The whole corpus goes into ONE inbox and the scheduled flow (archive_inbox) runs once over it, as a hospital inbox
full of odd files would; each case is then its own test. The run is shared by the pytest-xdist workers (the first
one does it under a lock, the others read its result), so the suite pays for it once.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import pytest

from tests.helpers import badinputs
from tests.helpers.badinputs import ARCHIVED, EITHER, ERROR, VERBATIM
from configs import Gate
from tests.helpers.flows import make_config

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning")]


def _digests(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _names(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.is_dir() else set()


def _as_read(case: badinputs.BadCase) -> dict:
    """The case with its UIDs as medzip's reader sees them (a backslash makes a UID multi-valued, padding is
    stripped), which is what the archive and the outcomes name."""
    from dicom_io import DicomReadError, read_file

    study, files = None, []
    for f in case.files:
        uid = f.sop_instance_uid
        try:
            obj = read_file(f.path)
            uid, study = obj.sop_instance_uid, obj.study_instance_uid
        except DicomReadError as exc:
            study = study or exc.study_instance_uid
        files.append([str(f.path), f.expect, f.reason, uid])
    return {"study_uid": study if case.study_uid else None, "files": files}


@pytest.fixture(scope="session")
def corpus_run(tmp_path_factory, prefect_server):
    """(config, cases, inbox digests before, outcomes, error) of one archive_inbox run over the whole corpus."""
    base = tmp_path_factory.getbasetemp()
    # xdist workers' base folders (popen-gwN) share this session's parent folder; a plain run has its own base
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "reliability-badinput"
    root.mkdir(exist_ok=True)
    # the cheapest codec path and gates it always meets: what is tested here is the handling of the input
    config = make_config(root / "home", mode="lossy:0", escalate_to="lossy:0", gates={"default": Gate()},
                         settle_seconds=0, max_concurrent_studies=2)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / "result.json"
        if not done.exists():
            cases = badinputs.build_corpus(config.paths.inbox)
            before = _digests(config.paths.inbox)
            (root / "before.json").write_text(json.dumps(before))
            (root / "cases.json").write_text(json.dumps({c.name: _as_read(c) for c in cases}))
            from flows.inbox import archive_inbox

            try:
                outcomes, error = archive_inbox(config), None
            except Exception as exc:  # the assertion is in the test: the flow must finish
                outcomes, error = [], f"{type(exc).__name__}: {exc}"
            done.write_text(json.dumps({"outcomes": outcomes, "error": error}, default=str))
        result = json.loads(done.read_text())
    cases = {name: badinputs.BadCase(name, [badinputs.BadFile(Path(p), *rest) for p, *rest in c["files"]], c["study_uid"])
             for name, c in json.loads((root / "cases.json").read_text()).items()}
    return config, cases, json.loads((root / "before.json").read_text()), result["outcomes"], result["error"]


@lru_cache(maxsize=2)
def _archived(released: Path) -> tuple[set[str], dict[str, str]]:
    """SOP UIDs coded in released archives, and verbatim objects' SHA-256 by SOP UID (each archive verified)."""
    from archive import ArchiveReader

    coded, verbatim = set(), {}
    for path in sorted(released.glob("*.h5")):
        with ArchiveReader(path) as r:
            assert r.verify().ok
            for s in r.series():
                coded |= {i.sop_instance_uid for i in r.instances(s.key)}
                verbatim |= {v.sop_instance_uid: hashlib.sha256(r.verbatim_bytes(v)).hexdigest()
                             for v in r.verbatim(s.key)}
    return coded, verbatim


def test_corpus_is_large_enough():
    assert len(badinputs.CASES) >= 30


def test_flow_finishes_and_inbox_is_untouched(corpus_run):
    config, _, before, outcomes, error = corpus_run
    assert error is None, error
    assert _digests(config.paths.inbox) == before


def test_nothing_written_outside_the_configured_folders(corpus_run):
    config, _, _, _, _ = corpus_run
    p = config.paths
    roots = [p.inbox, p.work, p.released, p.quarantine, p.retrieved, p.reports]
    home = config.home
    for f in home.parent.rglob("*"):
        if f.is_file() or f.is_symlink():
            in_root = any(f.is_relative_to(r) for r in roots)
            catalog = f.parent == p.catalog.parent and f.name.startswith(p.catalog.name)  # db, -wal, -shm
            ours = f.parent == home.parent and f.name in ("lock", "result.json", "before.json", "cases.json")
            assert in_root or catalog or ours, f
    for up in [home, *list(home.parents)[:6]]:  # where "../../.."-style UIDs would have landed
        assert not [n for n in _names(up) if n.lower().startswith("escaped")], up
    for f in list(p.released.iterdir()) + list(p.quarantine.iterdir() if p.quarantine.exists() else []):
        assert f.resolve().parent == f.parent.resolve() and len(f.name) < 120 and "\0" not in f.name, f


@pytest.mark.parametrize("case_name", list(badinputs.CASES))
def test_bad_input_is_archived_or_reported(case_name, corpus_run):
    config, cases, _, outcomes, error = corpus_run
    assert error is None, error
    case = cases[case_name]
    errors = [e for o in outcomes for e in (o.get("input_errors") or [])]
    coded, verbatim = _archived(config.paths.released)
    for f in case.files:
        reported = [e for e in errors if str(f.path) in e]
        if f.expect == ARCHIVED:
            assert f.sop_instance_uid in coded, (f.path.name, [o for o in outcomes if o.get("study_uid") == case.study_uid])
        elif f.expect == VERBATIM:
            assert verbatim.get(f.sop_instance_uid) == hashlib.sha256(f.path.read_bytes()).hexdigest(), f.path.name
        elif f.expect == ERROR:
            assert reported, f"{f.path.name} neither archived nor reported"
            assert f.reason.lower() in reported[0].lower(), reported
        elif f.expect == EITHER:
            held = [o for o in outcomes if o.get("study_uid") == case.study_uid
                    and o.get("status") in ("failed", "quarantined") and o.get("reasons")]
            assert f.sop_instance_uid in coded or reported or held, f.path.name
    if case.study_uid and any(f.expect in (ARCHIVED, VERBATIM) for f in case.files):
        mine = [o["status"] for o in outcomes if o.get("study_uid") == case.study_uid]
        assert mine == ["released"], [o for o in outcomes if o.get("study_uid") == case.study_uid]
