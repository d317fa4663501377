"""What archiving one study came to, as the archive flow, the inbox flow and `medzip archive` report it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ArchiveOutcome:
    study_uid: str
    status: str  # released | quarantined | pending (held back) | failed | already-archived | in-progress
    archive: str | None
    version: int | None = None
    catalog_id: int | None = None
    content_hash: str = ""  # the catalog's key: the inputs' hash together with the policy
    mode_asked: str = ""  # the policy asked for; what each frame was stored in is modes_used
    modes_used: dict[str, int] = field(default_factory=dict)  # final mode -> frames
    frames: int = 0
    verbatim: int = 0
    escalated: int = 0  # frames re-encoded at a stricter mode
    ratio: float | None = None
    min_psnr: float | None = None  # the worst figures (quality.metrics.Metric.worst_key), as the catalog keeps them
    min_ssim: float | None = None
    max_error: int | None = None
    max_error_hu: float | None = None  # CT: the worst max error in Hounsfield units
    reasons: list[str] = field(default_factory=list)  # why quarantined, pending, failed or not archived again
    held: list[dict] = field(default_factory=list)  # {"file", "reason"}: inputs that cannot be read now
    kept_as_received: list[dict] = field(default_factory=list)  # {"file", "reason"}: kept verbatim, not coded
    input_errors: list[str] = field(default_factory=list)  # every input not coded, "file: reason"
    series: list[dict] = field(default_factory=list)  # per-series quality
    frame_quality: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def failed_outcome(study_uid: str | None, exc: BaseException) -> dict:
    """The outcome of a study whose archive run raised (archive_study gave its catalog claim back, so a later run
    tries again)."""
    from dicom_io import DicomReadError

    reason = f"{type(exc).__name__}: {exc}"
    return {"study_uid": study_uid, "status": "failed", "archive": None, "reasons": [reason],
            "input_errors": [str(exc)] if isinstance(exc, DicomReadError) else []}


def unplaced_outcome(error, settle_seconds: float) -> dict:
    """An input no study could be told for and that lies beside no study's files: `pending` when it cannot be read
    now (a later run may place it), else `not-archived`; its file and reason either way."""
    from flows.ingest import is_transient

    pending = is_transient(error, settle_seconds)
    why = f"{error.reason} ({'may be readable later' if pending else 'not DICOM of any study: not archived'})"
    return {"study_uid": None, "status": "pending" if pending else "not-archived", "archive": None,
            "file": str(error.path), "reasons": [f"{error.path}: {why}"], "input_errors": [str(error)],
            "held": [{"file": str(error.path), "reason": error.reason}] if pending else []}
