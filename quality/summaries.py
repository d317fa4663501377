"""Summaries of per-slice quality: the worst figure of each metric, mean PSNR, ratios, per series and per study.

Rows are records with one attribute per metric (quality.records.FrameQuality, archive.QualityRow) or plain dicts
with those keys (the audit's rows).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from quality.metrics import METRICS

if TYPE_CHECKING:
    from quality.records import FrameQuality


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def worst_figures(rows: Iterable[Any], *, skip_infinite: bool = False) -> dict[str, float | None]:
    """{min_psnr, min_ssim, max_error, ...}: each metric's worst figure over `rows` (None for no rows).
    skip_infinite: leave out infinite figures unless every figure is infinite (an exact slice's PSNR)."""
    rows = list(rows)
    out = {}
    for name, metric in METRICS.items():
        values = [_get(r, name) for r in rows]
        finite = [v for v in values if math.isfinite(v)] if skip_infinite else values
        out[metric.worst_key] = metric.worst(finite) if finite else (math.inf if values else None)
    return out


def mean_psnr(values: Iterable[float]) -> float | None:
    """Mean over the slices that are not exact; +inf when every slice is exact; None for no slice."""
    values = list(values)
    if not values:
        return None
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.inf


def mode_counts(rows: Iterable[Any]) -> dict[str, int]:
    """{mode name: slices}, in the order the modes first appear."""
    counts: dict[str, int] = {}
    for r in rows:
        mode = str(_get(r, "mode"))
        counts[mode] = counts.get(mode, 0) + 1
    return counts


def series_summary(series_uid: str, modality: str, verbatim: int, rows: list[FrameQuality]) -> dict:
    """One series' line: its frames' modes, worst figures, mean PSNR, ratio, escalated and failed frames."""
    return {
        "series_uid": series_uid, "modality": modality, "frames": len(rows), "verbatim": verbatim,
        "modes": ", ".join(sorted({str(q.mode) for q in rows})) or "verbatim",
        **worst_figures(rows),
        "mean_psnr": mean_psnr(q.psnr for q in rows),
        "ratio": (sum(q.original_bytes for q in rows) / max(1, sum(q.payload_bytes for q in rows))) if rows else None,
        "escalated": sum(1 for q in rows if q.escalations),
        "failed": sum(1 for q in rows if not q.passed),
    }


def study_summary(rows: list[FrameQuality], series: Iterable[tuple[str, str, int]]) -> dict:
    """A study's sizes, ratio, worst figures, modes used, and one line per series ((uid, modality, verbatim
    objects) in study order; a series with neither frames nor verbatim objects is left out)."""
    original = sum(q.original_bytes for q in rows)
    payload = sum(q.payload_bytes for q in rows)
    lines, modalities = [], set()
    for uid, modality, verbatim in series:
        if modality:
            modalities.add(modality.upper())
        mine = [q for q in rows if q.series_uid == uid]
        if mine or verbatim:
            lines.append(series_summary(uid, modality, verbatim, mine))
    return {
        "original_bytes": original, "archived_bytes": payload, "ratio": original / payload if payload else None,
        **worst_figures(rows), "modes_used": mode_counts(rows), "series": lines, "modalities": sorted(modalities),
    }


def saved_vs_lossless(rows: Iterable[Any]) -> dict[str, Any]:
    """Bytes stored against the same frames coded lossless, over the frames whose lossless size is known (`auto`
    measures it at encode; -1 or None: not measured): {} when no frame's is."""
    measured = [(_get(r, "payload_bytes"), _get(r, "lossless_bytes")) for r in rows]
    measured = [(p, n) for p, n in measured if n is not None and n >= 0]
    if not measured:
        return {}
    stored, lossless = sum(p for p, _ in measured), sum(n for _, n in measured)
    return {"frames_with_lossless_size": len(measured), "lossless_bytes": lossless,
            "saved_vs_lossless_bytes": lossless - stored,
            "saved_vs_lossless_share": (lossless - stored) / lossless if lossless else None}
