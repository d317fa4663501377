"""flows.audit_flow: the audit's summary and page from catalog rows and quality tables (unit level; the flows'
own tests run it end to end)."""
from flows.audit_flow import render, summary_of


def _frame(mode: str, payload: int, lossless: int) -> dict:
    return {"study_uid": "1.2", "version": 1, "archive": "a.h5", "series_uid": "1.2.1", "series": 0, "instance": 0,
            "sop_uid": "1.2.1.1", "frame": 0, "modality": "CT", "mode": mode, "codec": "c", "psnr": 55.0,
            "ssim": 0.995, "max_error": 4, "payload_bytes": payload, "original_bytes": 512, "ratio": 512 / payload,
            "gate_passed": True, "gate_reasons": [], "escalations": [], "status": "released",
            "lossless_bytes": lossless}


def test_summary_gives_the_bytes_saved_against_lossless():
    frames = [_frame("near-lossless:8", 40, 100), _frame("near-lossless:4", 60, 90), _frame("lossless", 80, -1)]
    summary = summary_of([], frames)
    assert summary["frames_with_lossless_size"] == 2 and summary["lossless_bytes"] == 190
    assert summary["saved_vs_lossless_bytes"] == 90 and summary["archived_bytes"] == 180


def test_the_page_has_the_saved_bytes_column():
    archive = {"study_uid": "1.2", "version": 1, "status": "released", "created_utc": "2026-12-02T00:00:00",
               "modalities": ["CT"], "mode": "auto", "modes_used": {"near-lossless:8": 1}, "ratio": 5.1,
               "min_psnr": 55.0, "mean_psnr": 55.0, "min_ssim": 0.995, "max_error": 4, "n_frames": 1, "escalated": 0,
               "gate_failures": 0, "saved_vs_lossless_bytes": 60, "kept_as_received": [], "path": "a.h5",
               "reasons": []}
    frames = [_frame("near-lossless:8", 40, 100)]
    page = render([archive], frames, summary_of([archive], frames), [], {}, images=False)
    assert "bytes saved vs lossless" in page and "saved_vs_lossless_bytes" in page
