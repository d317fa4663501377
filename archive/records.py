"""The plain records an ArchiveReader hands out (archive, series, instance, frame, verbatim object, verify report),
the limits it applies to untrusted files, and the item names its errors use."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archive import layout as L
from archive.errors import DamagedArchiveError


@dataclass(frozen=True)
class Limits:
    """Bounds applied to archives from untrusted sources (checked before anything is read into memory)."""

    max_file_bytes: int = 1 << 40
    max_payload_bytes: int = 1 << 30
    max_header_bytes: int = 64 << 20
    max_verbatim_bytes: int = 4 << 30
    max_items: int = 1_000_000  # series, instances, frames, verbatim objects, quality rows each
    max_frame_pixels: int = 1 << 28  # rows x columns (the largest radiographs are ~ 1.4e7)


@dataclass(frozen=True)
class ArchiveInfo:
    path: Path
    format_version: int
    created_utc: str
    study_uid: str
    codec: str
    mode: str
    content_hash: str
    meta: dict[str, Any]
    n_series: int
    n_instances: int
    n_frames: int
    n_verbatim: int
    payload_bytes: int
    quality_recorded: bool
    file_bytes: int


@dataclass(frozen=True)
class SeriesInfo:
    key: int
    series_instance_uid: str
    modality: str
    extra: dict[str, Any]


@dataclass(frozen=True)
class InstanceInfo:
    key: L.InstanceKey
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    number_of_frames: int
    values_dtype: np.dtype
    header_format: str
    header_sha256: str
    extra: dict[str, Any]


@dataclass(frozen=True)
class FrameInfo:
    key: L.FrameKey
    sop_instance_uid: str
    codec: str
    mode: str
    payload_sha256: str
    values_sha256: str
    nbytes: int


@dataclass(frozen=True)
class VerbatimInfo:
    key: L.VerbatimKey
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    reason: str
    sha256: str
    nbytes: int
    extra: dict[str, Any]


@dataclass
class VerifyReport:
    path: Path
    frames_checked: int = 0
    headers_checked: int = 0
    verbatim_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_damaged(self) -> "VerifyReport":
        if self.problems:
            raise DamagedArchiveError(self.path, f"{len(self.problems)} damaged item(s): " + "; ".join(self.problems[:10]),
                                      self.problems[0].split(":")[0])
        return self


def describe(key: Any, uid: str | None = None) -> str:
    """Human name of an item, as used in error messages."""
    if isinstance(key, L.FrameKey):
        s = f"series {key.series} / instance {key.instance} / frame {key.frame}"
    elif isinstance(key, L.InstanceKey):
        s = f"series {key.series} / instance {key.instance}"
    elif isinstance(key, L.VerbatimKey):
        s = f"series {key.series} / verbatim {key.index}"
    else:
        s = str(key)
    return s + (f" (SOP {uid})" if uid else "")
