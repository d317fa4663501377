"""Per-slice quality records: what the verify step measured for one frame, and its row of the archive's table."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from codec.modes import Mode
from quality.metrics import METRICS

FrameId = tuple[str, int]  # (SOP Instance UID, frame index)


@dataclass
class FrameQuality:
    series_uid: str
    sop_uid: str
    frame: int
    modality: str
    mode: Mode
    codec: str
    psnr: float
    ssim: float
    max_error: int
    payload_bytes: int
    original_bytes: int
    ratio: float
    gate_reasons: list[str] = field(default_factory=list)  # the gate's reasons (empty: passed)
    integrity: list[str] = field(default_factory=list)  # checksum, bound or decode problems: never escalated away
    escalations: list[Mode] = field(default_factory=list)  # modes tried before this one
    max_error_hu: float | None = None
    history: list[str] = field(default_factory=list)  # why each earlier mode failed: "lossy:2: PSNR 41.20 dB < 50.0"
    lossless_bytes: int | None = None  # this frame coded lossless (measured by `auto`; a lossless frame's own size)

    @property
    def key(self) -> FrameId:
        return (self.sop_uid, self.frame)

    @property
    def passed(self) -> bool:
        return not self.gate_reasons and not self.integrity

    @property
    def reasons(self) -> list[str]:
        """Every reason this frame fails: its gate's, then its integrity problems."""
        return self.gate_reasons + self.integrity

    def failed_attempt(self) -> str:
        """This attempt's failure as a line of the frame's history: 'lossy:2: PSNR 41.20 dB < 50.0; SSIM …'."""
        return f"{self.mode}: " + "; ".join(self.reasons)

    def after(self, earlier: "FrameQuality") -> "FrameQuality":
        """This measurement as the next attempt after `earlier` failed (its modes and reasons kept)."""
        self.escalations = earlier.escalations + [earlier.mode]
        self.history = earlier.history + [earlier.failed_attempt()]
        return self

    def as_dict(self) -> dict:
        """Plain data (modes as their names), for outcomes and JSON."""
        d = asdict(self)
        d["mode"] = str(self.mode)
        d["escalations"] = [str(m) for m in self.escalations]
        return d

    def table_row(self, series: int, instance: int) -> dict:
        """This frame's row of the archive's quality table (archive.QualityRow fields)."""
        return dict(series=series, instance=instance, frame=self.frame, sop_instance_uid=self.sop_uid,
                    modality=self.modality, mode=str(self.mode), codec=self.codec,
                    **{name: getattr(self, name) for name in METRICS},
                    payload_bytes=self.payload_bytes, original_bytes=self.original_bytes, ratio=self.ratio,
                    # a passing frame's reasons are those of the modes it was escalated from (gate_passed tells)
                    gate_passed=self.passed, gate_reasons=tuple(self.reasons + self.history),
                    attempts=len(self.escalations) + 1, escalations=tuple(str(m) for m in self.escalations),
                    lossless_bytes=self.lossless_size if self.lossless_size is not None else -1)

    @property
    def lossless_size(self) -> int | None:
        """Bytes of this frame coded lossless: its own payload when stored lossless, else what `auto` measured."""
        return self.payload_bytes if self.mode.is_lossless else self.lossless_bytes
