"""lab.residual_table: ratios computed from payloads that really round-trip."""
from lab import residual_table
from lab.realdata import find


def test_row_reports_our_bytes_against_both_anchors():
    r = residual_table.row(find("CT_small.dcm"), (0, 4))
    assert r["modality"] == "CT" and r["shape"] == [128, 128]
    assert r["k0"]["bytes"] > r["k4"]["bytes"] > 0
    assert 0.3 < r["k0"]["per_jpegxl"] < 3 and 0.3 < r["k4"]["per_jpegls"] < 3
