"""The scheduled inbox flow: archive every study whose files have stopped arriving.

A study is settled when none of its files changed for `schedule.settle_seconds` and no file of unknown study (possibly
a file still being written, whose study cannot be told yet) is younger than that. Inputs are never moved or deleted;
the catalog records each archived input by path, size and modification time, so a scan reads only files that are
new or changed since (a changed file brings its study's archived files back in: the study becomes a new version).
"""

import time
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task

from configs import Config
from flows.archive_flow import archive_study
from flows.ingest import beside
from flows.outcomes import failed_outcome, unplaced_outcome
from flows.window import bounded_map


@dataclass
class InboxStudy:
    study_uid: str
    files: list[Path]
    newest_mtime: float


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()  # vanished or unreadable right now: treat as still changing


def scan_inbox(inbox: Path, settle_seconds: float, now: float | None = None, unplaced: list | None = None,
               archived: dict[str, tuple[int, int, str]] | None = None) -> tuple[list[InboxStudy], list[str]]:
    """(settled studies, UIDs of studies still arriving) in `inbox`. Files recorded in `archived` (InputLedger's
    {path: (size, mtime_ns, study)}) with the same size and modification time are not read again. Settled files of
    no known study that lie beside no settled study's files have their errors added to `unplaced`, so the flow
    reports them instead of passing over them in silence."""
    from archive.catalog_inputs import FileState
    from dicom_io.studies import iter_files, read_studies

    if not inbox.is_dir():
        return [], []
    now = time.time() if now is None else now
    archived = archived or {}
    fresh: list[Path] = []
    done_by_study: dict[str, list[Path]] = {}
    for f in iter_files([inbox]):
        state = FileState.of(f)
        rec = archived.get(state.path) if state is not None else None
        if rec is not None and (rec[0], rec[1]) == (state.size, state.mtime_ns):
            done_by_study.setdefault(rec[2], []).append(f)  # archived as it is now: not read again
        else:
            fresh.append(f)
    found = read_studies(fresh)
    in_flight = any(now - _mtime(e.path) < settle_seconds for e in found.errors)
    placed: set[Path] = set()
    settled, waiting = [], []
    for study in found.studies:
        own = {i.path for i in study.instances} | {v.path for v in study.verbatim} | {e.path for e in study.errors}
        near = set(beside(found.errors, sorted(own)))
        placed |= near
        files = sorted(own | near | set(done_by_study.get(study.study_instance_uid, [])))
        newest = max((_mtime(f) for f in files), default=now)
        if in_flight or now - newest < settle_seconds:
            waiting.append(study.study_instance_uid)
        else:
            settled.append(InboxStudy(study.study_instance_uid, files, newest))
    if unplaced is not None and not in_flight:
        unplaced += [e for e in found.errors if e.path not in placed]
    return settled, waiting


@task(name="scan-inbox")
def find_settled_studies(config: Config) -> tuple[list[InboxStudy], list[str], list]:
    """(settled studies, UIDs still arriving, errors of settled files that belong to no study and lie beside none)."""
    archived = {}
    if config.paths.catalog.exists():
        from archive import Catalog
        from archive.catalog_inputs import InputLedger

        archived = InputLedger(Catalog.from_config(config)).archived()
    unplaced: list = []
    settled, waiting = scan_inbox(config.paths.inbox, config.schedule.settle_seconds, unplaced=unplaced,
                                  archived=archived)
    return settled, waiting, unplaced


@task(name="archive-inbox-study")
def archive_inbox_study(study: InboxStudy, config: Config) -> dict:
    try:
        return archive_study(study.files, config, study_uid=study.study_uid).as_dict()
    except Exception as exc:  # one study that cannot be archived must not stop the others in this run
        return failed_outcome(study.study_uid, exc)


@flow(name="archive-inbox", log_prints=True)
def archive_inbox(config: Config) -> list[dict]:
    """Scan the inbox; archive each settled study, at most schedule.max_concurrent_studies at a time."""
    logger = get_run_logger()
    settled, waiting, unplaced = find_settled_studies(config)
    if waiting:
        logger.info("%d studies still arriving (settle time %ss): %s", len(waiting), config.schedule.settle_seconds,
                    ", ".join(waiting))
    logger.info("%d settled studies in %s", len(settled), config.paths.inbox)
    inputs = ({"study": s, "config": config} for s in settled)
    outcomes = list(bounded_map(archive_inbox_study, inputs, config.schedule.max_concurrent_studies))
    for o in outcomes:
        logger.info("study %s: %s -> %s%s", o["study_uid"], o["status"], o.get("archive"),
                    "".join(f"; {r}" for r in (o.get("reasons") or [])[:3]))
    for err in unplaced:  # left in the inbox (inputs are never deleted) and reported on every scan
        outcome = unplaced_outcome(err, config.schedule.settle_seconds)
        logger.warning("%s: %s", outcome["status"], outcome["reasons"][0])
        outcomes.append(outcome)
    return outcomes
