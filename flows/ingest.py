"""The first steps of the archive flow: read and group the study's files, hash what arrived."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from dicom_io import Study


class StudySelectionError(ValueError):
    """The paths given to archive_study do not hold exactly the one study asked for."""


@task(name="ingest")
def ingest(paths: list[str], study_uid: str | None = None) -> Study:
    """Read the files (headers only), group them; exactly one study (or the one named) must be there."""
    from dicom_io import read_studies

    found = read_studies([Path(p) for p in paths])
    studies = found.studies if study_uid is None else [s for s in found.studies if s.study_instance_uid == study_uid]
    if len(studies) != 1:
        names = ", ".join(s.study_instance_uid for s in found.studies) or "none"
        why = f"no study {study_uid}" if study_uid else f"{len(studies)} studies"
        raise StudySelectionError(f"{why} among {len(paths)} path(s) (found: {names}; unreadable files: "
                                  f"{len(found.errors)}); archive_paths archives each study separately")
    return studies[0]


@task(name="hash-inputs")
def hash_inputs(study: Study) -> str:
    """The study's content hash: every input object's (SOP Instance UID, file SHA-256)."""
    from archive import file_sha256, study_content_hash

    objects = [*study.instances, *study.verbatim]
    return study_content_hash((o.sop_instance_uid, file_sha256(o.path)) for o in objects)
