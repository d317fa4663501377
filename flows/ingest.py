"""The first steps of the archive flow: read and group the study's files, sort out the inputs that cannot be coded,
hash what arrived together with the policy it is archived under.

A study is archived whole or not at all (docs/design.md, "Gate"):
- an input that cannot be read *now* (no permission, an I/O error, a file changed within the settle time, so
  perhaps still being written) holds the whole study back: nothing is claimed, the outcome is `pending` and names
  each such file with its reason;
- an input whose study is known but which will never decode (damaged pixels, a header the reader refuses, a second
  different file under one SOP Instance UID) is kept verbatim, byte for byte, and listed;
- an instance that is already lossy-compressed is kept as its original file (never re-coded, no gate applied).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import task

from configs import Config
from dicom_io import DicomReadError, DuplicateInstanceError, Series, Study
from quality.metrics import PSNR_DEFINITION


class StudySelectionError(ValueError):
    """The paths given to archive_study do not hold exactly the one study asked for."""


@dataclass
class Ingested:
    """One study as read, and what became of the inputs that are not plain codable instances."""

    study: Study
    held: list[dict] = field(default_factory=list)  # {"file", "reason"}: cannot be read now, the study waits
    kept: list[dict] = field(default_factory=list)  # {"file", "reason"}: kept verbatim (undecodable, already lossy)
    not_archived: list[str] = field(default_factory=list)  # "file: reason" of inputs of no study (not DICOM, …)
    states: list = field(default_factory=list)  # archive.catalog_inputs.FileState of each file the study took in

    @property
    def input_errors(self) -> list[str]:
        """Every input that is not coded, with its reason (held, kept as received, or not archived)."""
        return ([f"{h['file']}: {h['reason']} (study held back until it can be read)" for h in self.held]
                + [f"{k['file']}: {k['reason']}" for k in self.kept] + self.not_archived)


def changed_recently(path: Path, settle_seconds: float, now: float | None = None) -> bool:
    """True when the file changed within the settle time (it may still be arriving)."""
    try:
        return (time.time() if now is None else now) - path.stat().st_mtime < settle_seconds
    except OSError:
        return True


def is_transient(error: DicomReadError, settle_seconds: float) -> bool:
    """An input error that a later run may not see: unreadable now, or a file that is still changing."""
    return error.transient or changed_recently(error.path, settle_seconds)


def _series_for(study: Study, uid: str, modality: str) -> Series:
    for s in study.series:
        if s.series_instance_uid == uid:
            return s
    study.series.append(Series(uid, modality))
    return study.series[-1]


def sort_inputs(study: Study, orphan_errors: list[DicomReadError], settle_seconds: float) -> Ingested:
    """Split the study's inputs into codable instances, objects kept as received, and inputs that hold it back."""
    from dicom_io import kept_as_received

    out = Ingested(study)
    for err in [*study.errors, *orphan_errors]:
        if is_transient(err, settle_seconds):
            out.held.append({"file": str(err.path), "reason": err.reason if err.transient
                             else f"changed less than {settle_seconds:g} s ago, may still be arriving ({err.reason})"})
            continue
        if err.study_instance_uid != study.study_instance_uid:
            out.not_archived.append(f"{err} (not archived: it belongs to no study)")
            continue
        if isinstance(err, DuplicateInstanceError) and "an identical copy" in err.reason:
            out.not_archived.append(f"{err} (not stored twice)")
            continue
        obj = kept_as_received(err)
        if obj is None:  # vanished or unreadable since it was read: the study waits for it
            out.held.append({"file": str(err.path), "reason": f"cannot be kept as received: {err.reason}"})
        else:
            _series_for(study, obj.series_instance_uid, obj.modality).verbatim.append(obj)
            out.kept.append({"file": str(err.path), "reason": obj.reason})
    for series in study.series:
        lossy = [i for i in series.instances if i.already_lossy]
        if lossy:
            series.instances = [i for i in series.instances if not i.already_lossy]
            series.verbatim += [i.as_received() for i in lossy]
            out.kept += [{"file": str(i.path), "reason": i.already_lossy} for i in lossy]
    return out


@task(name="ingest")
def ingest(paths: list[str], study_uid: str | None = None, settle_seconds: float = 0.0) -> Ingested:
    """Read the files (headers only) and group them; exactly one study (or the one named) must be there. Inputs of
    no known study among `paths` count for it: the callers pass only those beside its files."""
    from archive.catalog_inputs import FileState
    from dicom_io import read_studies
    from dicom_io.studies import iter_files

    before = {f.absolute(): FileState.of(f) for f in iter_files([Path(p) for p in paths])}  # as they were when read
    found = read_studies([Path(p) for p in paths])
    studies = found.studies if study_uid is None else [s for s in found.studies if s.study_instance_uid == study_uid]
    if len(studies) != 1:
        names = ", ".join(s.study_instance_uid for s in found.studies) or "none"
        why = f"no study {study_uid}" if study_uid else f"{len(studies)} studies"
        raise StudySelectionError(f"{why} among {len(paths)} path(s) (found: {names}; unreadable files: "
                                  f"{len(found.errors)}); archive_paths archives each study separately")
    got = sort_inputs(studies[0], found.errors, settle_seconds)
    taken = {o.path.absolute() for o in (*got.study.instances, *got.study.verbatim)}
    taken |= {e.path.absolute() for e in got.study.errors if isinstance(e, DuplicateInstanceError)}
    got.states = [before[p] for p in sorted(taken) if before.get(p) is not None]
    return got


@task(name="hash-inputs")
def hash_inputs(study: Study) -> str:
    """The study's content hash: every input object's (SOP Instance UID, file SHA-256)."""
    from archive import file_sha256, study_content_hash

    objects = [*study.instances, *study.verbatim]
    return study_content_hash((o.sop_instance_uid, file_sha256(o.path)) for o in objects)


def policy_of(config: Config, study: Study) -> dict:
    """What decides how a study is archived: the codec policy, the escalation ceiling, the gates of its
    modalities and the PSNR definition those gates are judged by."""
    modalities = sorted({s.modality.upper() for s in study.series if s.instances})
    return {"mode": str(config.codec.mode), "escalate_to": str(config.codec.escalate_to),
            "gates": {m: config.gate_for(m).model_dump() for m in modalities}, "psnr": PSNR_DEFINITION}


def claim_key(inputs_hash: str, policy: dict) -> str:
    """The catalog's key for one archive: the same inputs under the same policy are archived once; another mode or
    gate makes a new version."""
    text = json.dumps({"inputs": inputs_hash, "policy": policy}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def beside(found_errors: list[DicomReadError], files: list[Path]) -> list[Path]:
    """Inputs of no known study that lie in a folder with one of `files`: whoever archives those files must
    consider them (an unreadable one may be a missing slice)."""
    folders = {Path(f).parent for f in files}
    return [e.path for e in found_errors if e.path.parent in folders]
