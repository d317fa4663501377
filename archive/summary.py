"""A plain-dict description of one archive, for `medzip info` (read-only; checks what it reads).

The modes are those the frames are stored in, counted from the frames themselves (the archive's `mode` attribute is
only the policy that was asked for); the codec is the archive's recorded identity and each frame's coder with counts.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from archive.reader import ArchiveReader
from quality.metrics import FULL_SCALE_PSNR
from quality.summaries import saved_vs_lossless, worst_figures


def archive_summary(path: str | Path) -> dict[str, Any]:
    """Study, series, frames, the modes frames are stored in, codec, sizes and quality of the archive at `path`."""
    with ArchiveReader(path) as reader:
        info = reader.info
        quality = reader.quality()
        by_series: dict[int, list] = {}
        for row in quality:
            by_series.setdefault(row.series, []).append(row)
        stored: dict[int, Counter] = {}
        codecs: Counter = Counter()
        for _, fr in reader.iter_frames():
            stored.setdefault(fr.key.series, Counter())[fr.mode] += 1
            codecs[fr.codec] += 1
        series, kept = [], []
        for s in reader.series():
            rows = by_series.get(s.key, [])
            verbatim = reader.verbatim(s.key)
            kept += [{"sop_instance_uid": v.sop_instance_uid, "series_uid": s.series_instance_uid,
                      "reason": v.reason} for v in verbatim]
            series.append({
                "series_uid": s.series_instance_uid,
                "modality": s.modality,
                "instances": len(reader.instances(s.key)),
                "verbatim": len(verbatim),
                "frames": sum(stored.get(s.key, Counter()).values()),
                "modes_stored": dict(stored.get(s.key, Counter()).most_common()),
                **worst_figures(rows, skip_infinite=True),
            })
        total: Counter = Counter()
        for counts in stored.values():
            total.update(counts)
        original = sum(r.original_bytes for r in quality)
        payload = sum(r.payload_bytes for r in quality)
        return {
            "archive": str(info.path),
            "format_version": info.format_version,
            "created_utc": info.created_utc,
            "study_uid": info.study_uid,
            "codec": info.codec or "(not recorded)",
            "frame_codecs": dict(codecs.most_common()),
            "mode_asked": info.meta.get("requested_mode") or info.mode or "(not recorded)",
            "modes_stored": dict(total.most_common()),
            "psnr_definition": info.meta.get("psnr_definition") or FULL_SCALE_PSNR,
            "series_count": info.n_series,
            "instances": info.n_instances,
            "frames": info.n_frames,
            "verbatim_objects": info.n_verbatim,
            "file_bytes": info.file_bytes,
            "payload_bytes": info.payload_bytes,
            "original_pixel_bytes": original,
            "ratio": (original / payload) if payload else None,
            "quality_recorded": info.quality_recorded,
            "gates_passed": all(r.gate_passed for r in quality) if quality else None,
            "escalated_frames": sum(1 for r in quality if r.escalations),
            **saved_vs_lossless(quality),
            "series": series,
            "kept_as_received": kept,
        }
