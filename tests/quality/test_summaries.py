"""Summaries of per-slice quality: worst figures, mean PSNR, per series and per study."""
from __future__ import annotations

import math

from codec.modes import Mode
from quality import summaries
from quality.records import FrameQuality


def record(series: str, psnr: float, *, ssim: float = 0.99, max_error: int = 3, mode: Mode = Mode.lossy(2),
           escalations=(), gate_reasons=()) -> FrameQuality:
    return FrameQuality(series_uid=series, sop_uid=f"{series}.{psnr}", frame=0, modality="CT", mode=mode, codec="c",
                        psnr=psnr, ssim=ssim, max_error=max_error, payload_bytes=100, original_bytes=400, ratio=4.0,
                        gate_reasons=list(gate_reasons), escalations=list(escalations))


def test_worst_figures():
    rows = [record("a", 50.0, ssim=0.98, max_error=4), record("a", math.inf, ssim=1.0, max_error=0)]
    assert summaries.worst_figures(rows) == {"min_psnr": 50.0, "min_ssim": 0.98, "max_error": 4}
    assert summaries.worst_figures([]) == {"min_psnr": None, "min_ssim": None, "max_error": None}
    dicts = [{"psnr": -math.inf, "ssim": 0.0, "max_error": 4096}, {"psnr": 40.0, "ssim": 0.9, "max_error": 8}]
    assert summaries.worst_figures(dicts)["min_psnr"] == -math.inf
    assert summaries.worst_figures(dicts, skip_infinite=True)["min_psnr"] == 40.0
    exact = [{"psnr": math.inf, "ssim": 1.0, "max_error": 0}]
    assert summaries.worst_figures(exact, skip_infinite=True)["min_psnr"] == math.inf


def test_mean_psnr_leaves_exact_slices_out():
    assert summaries.mean_psnr([40.0, 50.0, math.inf]) == 45.0
    assert summaries.mean_psnr([math.inf, math.inf]) == math.inf
    assert summaries.mean_psnr([]) is None


def test_study_summary_per_series_and_study():
    rows = [record("a", 50.0), record("a", 60.0, mode=Mode.near_lossless(2), escalations=[Mode.lossy(2)]),
            record("b", math.inf, mode=Mode.lossless(), max_error=0, gate_reasons=["x"])]
    summary = summaries.study_summary(rows, [("a", "CT", 0), ("b", "mr", 1), ("c", "SR", 0)])
    assert summary["original_bytes"] == 1200 and summary["archived_bytes"] == 300 and summary["ratio"] == 4.0
    assert (summary["min_psnr"], summary["min_ssim"], summary["max_error"]) == (50.0, 0.99, 3)
    assert summary["modes_used"] == {"lossy:2": 1, "near-lossless:2": 1, "lossless": 1}
    assert summary["modalities"] == ["CT", "MR", "SR"]
    a, b = summary["series"]  # series c has neither frames nor verbatim objects
    assert a["modes"] == "lossy:2, near-lossless:2" and a["frames"] == 2 and a["escalated"] == 1
    assert a["mean_psnr"] == 55.0 and a["failed"] == 0 and a["ratio"] == 4.0
    assert b["modes"] == "lossless" and b["failed"] == 1 and b["verbatim"] == 1 and b["min_psnr"] == math.inf


def test_saved_vs_lossless_counts_only_frames_whose_lossless_size_is_known():
    from quality.summaries import saved_vs_lossless

    rows = [{"payload_bytes": 100, "lossless_bytes": 400}, {"payload_bytes": 50, "lossless_bytes": -1},
            {"payload_bytes": 300, "lossless_bytes": 300}]
    out = saved_vs_lossless(rows)
    assert out == {"frames_with_lossless_size": 2, "lossless_bytes": 700, "saved_vs_lossless_bytes": 300,
                   "saved_vs_lossless_share": 300 / 700}
    assert saved_vs_lossless([{"payload_bytes": 5, "lossless_bytes": -1}]) == {}
