"""The scheduled inbox flow: archive every study whose files have stopped arriving.

A study is settled when none of its files changed for `schedule.settle_seconds` and no unreadable file (possibly a
file still being written, whose study cannot be told yet) is younger than that. Inputs are never moved or deleted;
rescanning a study that was archived already is a no-op (archive_study is idempotent on the content hash).
"""

import time
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task

from configs import Config
from flows.archive_flow import archive_study
from flows.outcomes import failed_outcome
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


def scan_inbox(inbox: Path, settle_seconds: float, now: float | None = None,
               unreadable: list[str] | None = None) -> tuple[list[InboxStudy], list[str]]:
    """(settled studies, UIDs of studies still arriving) in `inbox`. Settled files that belong to no archivable
    study (not DICOM, no StudyInstanceUID, a study of unreadable files only) have their errors added to
    `unreadable`, so the flow reports them instead of passing over them in silence."""
    from dicom_io.studies import read_studies

    if not inbox.is_dir():
        return [], []
    now = time.time() if now is None else now
    found = read_studies([inbox])
    in_flight = any(now - _mtime(e.path) < settle_seconds for e in found.errors)
    if unreadable is not None and not in_flight:
        unreadable += [str(e) for e in found.errors]
    settled, waiting = [], []
    for study in found.studies:
        files = sorted({i.path for i in study.instances} | {v.path for v in study.verbatim}
                       | {e.path for e in study.errors})
        newest = max((_mtime(f) for f in files), default=now)
        if in_flight or now - newest < settle_seconds:
            waiting.append(study.study_instance_uid)
        elif study.instances or study.verbatim:
            settled.append(InboxStudy(study.study_instance_uid, files, newest))
        elif unreadable is not None:
            unreadable += [str(e) for e in study.errors]
    return settled, waiting


@task(name="scan-inbox")
def find_settled_studies(config: Config) -> tuple[list[InboxStudy], list[str], list[str]]:
    """(settled studies, UIDs still arriving, errors of settled files that belong to no archivable study)."""
    unreadable: list[str] = []
    settled, waiting = scan_inbox(config.paths.inbox, config.schedule.settle_seconds, unreadable=unreadable)
    return settled, waiting, unreadable


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
    settled, waiting, unreadable = find_settled_studies(config)
    if waiting:
        logger.info("%d studies still arriving (settle time %ss): %s", len(waiting), config.schedule.settle_seconds,
                    ", ".join(waiting))
    logger.info("%d settled studies in %s", len(settled), config.paths.inbox)
    inputs = ({"study": s, "config": config} for s in settled)
    outcomes = list(bounded_map(archive_inbox_study, inputs, config.schedule.max_concurrent_studies))
    for o in outcomes:
        logger.info("study %s: %s -> %s", o["study_uid"], o["status"], o.get("archive"))
    for err in unreadable:  # left in the inbox (inputs are never deleted) and reported on every scan
        logger.warning("unreadable, not archived: %s", err)
        outcomes.append({"study_uid": None, "status": "unreadable", "archive": None, "input_errors": [err]})
    return outcomes
