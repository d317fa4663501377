"""What archiving one study came to, as the archive flow, the inbox flow and `medzip archive` report it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ArchiveOutcome:
    study_uid: str
    status: str  # released | quarantined | already-archived | in-progress
    archive: str | None
    version: int | None = None
    catalog_id: int | None = None
    content_hash: str = ""
    mode: str = ""  # the mode asked for
    modes_used: dict[str, int] = field(default_factory=dict)  # final mode -> frames
    frames: int = 0
    verbatim: int = 0
    escalated: int = 0  # frames re-encoded at a stricter mode
    ratio: float | None = None
    min_psnr: float | None = None  # the worst figures (quality.metrics.Metric.worst_key), as the catalog keeps them
    min_ssim: float | None = None
    max_error: int | None = None
    reasons: list[str] = field(default_factory=list)  # why quarantined
    input_errors: list[str] = field(default_factory=list)  # files of the study that could not be read
    series: list[dict] = field(default_factory=list)  # per-series quality
    frame_quality: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def failed_outcome(study_uid: str | None, exc: BaseException) -> dict:
    """The outcome of a study whose archive run raised (archive_study has quarantined its catalog claim)."""
    from dicom_io import DicomReadError

    reason = f"{type(exc).__name__}: {exc}"
    return {"study_uid": study_uid, "status": "failed", "archive": None, "reasons": [reason],
            "input_errors": [str(exc)] if isinstance(exc, DicomReadError) else []}
