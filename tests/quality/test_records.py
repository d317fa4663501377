"""Per-slice quality records: modes as values inside, names outside; the archive table row."""
from __future__ import annotations

import math

from archive.layout import QualityRow
from codec.modes import Mode
from quality.records import FrameQuality


def record(**kw) -> FrameQuality:
    base = dict(series_uid="1.2.3", sop_uid="1.2.3.4", frame=2, modality="CT", mode=Mode.near_lossless(2),
                codec="medzip-learned:ab", psnr=61.5, ssim=0.999, max_error=2, payload_bytes=100,
                original_bytes=800, ratio=8.0)
    return FrameQuality(**{**base, **kw})


def test_passed_and_reasons():
    assert record().passed and record().reasons == []
    q = record(gate_reasons=["PSNR 40.00 dB < 45.0"], integrity=["decode failed: x"])
    assert not q.passed and q.reasons == ["PSNR 40.00 dB < 45.0", "decode failed: x"]
    assert not record(integrity=["lossless decode does not reproduce the original values_sha256"]).passed


def test_as_dict_writes_modes_as_their_names():
    d = record(escalations=[Mode.lossy(0)]).as_dict()
    assert d["mode"] == "near-lossless:2" and d["escalations"] == ["lossy:0"]
    assert d["psnr"] == 61.5 and d["max_error_hu"] is None


def test_table_row_is_a_quality_row():
    q = record(escalations=[Mode.lossy(0)], psnr=math.inf, gate_reasons=["x"])
    row = QualityRow.from_mapping(q.table_row(1, 4))
    assert (row.series, row.instance, row.frame, row.sop_instance_uid) == (1, 4, 2, "1.2.3.4")
    assert row.mode == "near-lossless:2" and row.escalations == ("lossy:0",) and row.attempts == 2
    assert math.isinf(row.psnr) and row.ssim == 0.999 and row.max_error == 2
    assert row.gate_passed is False and row.gate_reasons == ("x",)
