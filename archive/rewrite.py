"""Produce a new version of a finished archive (replaced frames, a quality table) without loading it whole.

The verify step of the flow reads the written archive back, measures every frame, re-encodes the frames that
failed their gate and records the quality table. This copies the archive frame by frame through the checked
reader into a new ArchiveWriter (so every copied byte is verified on the way), substituting what changed, and
publishes it atomically — over the source itself when no destination is given.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive import layout as L
from archive.reader import ArchiveReader, Limits
from archive.writer import ArchiveWriter


@dataclass(frozen=True)
class NewPayload:
    """A re-encoded frame. values_sha256 stays that of the original stored values unless given."""

    payload: bytes
    codec: str
    mode: str
    values_sha256: str | None = None


def rewrite_archive(
    src: str | Path,
    dst: str | Path | None = None,
    *,
    frames: Mapping[L.FrameKey, NewPayload] | None = None,
    quality: Iterable[L.QualityRow | Mapping[str, Any]] | None = None,
    codec: str | None = None,
    mode: str | None = None,
    meta: Mapping[str, Any] | None = None,
    limits: Limits = Limits(),
) -> Path:
    """Write a copy of `src` with `frames` replaced, the quality table set (kept when None) and file-level
    codec/mode/meta updated (kept when None). Returns the path written (`dst`, or `src` replaced in place)."""
    src = Path(src)
    target = Path(dst) if dst is not None else src
    replace = {L.FrameKey(*k): v for k, v in (frames or {}).items()}
    with ArchiveReader(src, limits=limits) as r:
        info = r.info
        w = ArchiveWriter(
            target,
            study_uid=info.study_uid,
            codec=info.codec if codec is None else codec,
            mode=info.mode if mode is None else mode,
            content_hash=info.content_hash,
            meta=info.meta if meta is None else meta,
            overwrite=dst is None,
            created_utc=info.created_utc,
        ).open()
        try:
            used = set()
            for s in r.series():
                ws = w.add_series(s.series_instance_uid, s.modality, extra=s.extra)
                for inst in r.instances(s.key):
                    wi = w.add_instance(
                        ws, sop_instance_uid=inst.sop_instance_uid, sop_class_uid=inst.sop_class_uid,
                        modality=inst.modality, rows=inst.rows, columns=inst.columns,
                        bits_allocated=inst.bits_allocated, bits_stored=inst.bits_stored, signed=inst.signed,
                        number_of_frames=inst.number_of_frames, header=r.header(inst.key),
                        header_format=inst.header_format, extra=inst.extra,
                    )
                    for fr in r.frames(inst.key):
                        new = replace.get(fr.key)
                        if new is None:
                            w.add_frame(wi, fr.key.frame, r.payload(fr), codec=fr.codec, mode=fr.mode,
                                        values_sha256=fr.values_sha256)
                        else:
                            used.add(fr.key)
                            w.add_frame(wi, fr.key.frame, new.payload, codec=new.codec, mode=new.mode,
                                        values_sha256=new.values_sha256 or fr.values_sha256)
                for v in r.verbatim(s.key):
                    w.add_verbatim(ws, r.verbatim_bytes(v), sop_instance_uid=v.sop_instance_uid,
                                   sop_class_uid=v.sop_class_uid, modality=v.modality, reason=v.reason, extra=v.extra)
            unknown = set(replace) - used
            if unknown:
                raise KeyError(f"{src}: frames to replace are not in the archive: {sorted(tuple(k) for k in unknown)}")
            if quality is not None:
                w.set_quality(quality)
            elif info.quality_recorded:
                w.set_quality(r.quality())
        except BaseException:
            w.abort()
            raise
    return w.commit()


def set_quality(path: str | Path, rows: Iterable[L.QualityRow | Mapping[str, Any]]) -> Path:
    """Record (replace) the quality table of a finished archive, atomically."""
    return rewrite_archive(path, quality=rows)
