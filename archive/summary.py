"""A plain-dict description of one archive, for `medzip info` (read-only; checks what it reads)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from archive.reader import ArchiveReader
from quality.summaries import worst_figures


def archive_summary(path: str | Path) -> dict[str, Any]:
    """Study, series, frames, codec, sizes and quality of the archive at `path`."""
    with ArchiveReader(path) as reader:
        info = reader.info
        quality = reader.quality()
        by_series: dict[int, list] = {}
        for row in quality:
            by_series.setdefault(row.series, []).append(row)
        series = []
        for s in reader.series():
            rows = by_series.get(s.key, [])
            series.append({
                "series_uid": s.series_instance_uid,
                "modality": s.modality,
                "instances": len(reader.instances(s.key)),
                "verbatim": len(reader.verbatim(s.key)),
                "frames": len(rows),
                **worst_figures(rows, skip_infinite=True),
                "modes": sorted({r.mode for r in rows}),
            })
        original = sum(r.original_bytes for r in quality)
        payload = sum(r.payload_bytes for r in quality)
        return {
            "archive": str(info.path),
            "format_version": info.format_version,
            "created_utc": info.created_utc,
            "study_uid": info.study_uid,
            "codec": info.codec,
            "mode": info.mode,
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
            "series": series,
        }
