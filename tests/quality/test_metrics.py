"""The metrics by name: every registry entry has its column in the archive's quality table and in the records."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pydicom

from archive.layout import QualityRow, quality_to_array
from configs import Gate
from quality import metrics
from quality.metrics import METRICS
from quality.records import FrameQuality


def test_each_metric_has_its_column_record_field_and_gate_threshold():
    row_fields = {f.name for f in dataclasses.fields(QualityRow)}
    record_fields = {f.name for f in dataclasses.fields(FrameQuality)}
    for name, metric in METRICS.items():
        assert metric.name == name
        assert name in row_fields and name in record_fields
        assert metric.threshold in Gate.model_fields


def test_quality_table_column_dtypes_come_from_the_registry():
    row = QualityRow(series=0, instance=0, frame=0, sop_instance_uid="1.2", modality="CT", mode="lossless",
                     codec="c", psnr=math.inf, ssim=1.0, max_error=0, payload_bytes=1, original_bytes=2, ratio=2.0,
                     gate_passed=True)
    table = quality_to_array([row])
    for name, metric in METRICS.items():
        assert table.dtype[name] == np.dtype(metric.dtype)
    # the format-1 layout, column for column: archives written before the registry read the same
    assert table.dtype.names[:11] == ("series", "instance", "frame", "psnr", "ssim", "max_error", "payload_bytes",
                                      "original_bytes", "ratio", "gate_passed", "attempts")


def test_direction_thresholds_and_worst():
    psnr, max_error = METRICS["psnr"], METRICS["max_error"]
    assert psnr.threshold == "psnr_min" and max_error.threshold == "max_error_max"
    assert psnr.fails(44.9, 45.0) and not psnr.fails(45.0, 45.0)
    assert max_error.fails(3, 2) and not max_error.fails(2, 2)
    assert psnr.worst([50.0, math.inf, 41.0]) == 41.0 and max_error.worst([1, 7, 3]) == 7
    assert psnr.worst([]) is None
    assert psnr.reason(41.234, 45.0) == "PSNR 41.23 dB < 45.0"
    assert max_error.reason(7, 2) == "max error 7 > 2"


def test_figures_compute_every_metric():
    a = np.arange(64, dtype=np.uint16).reshape(8, 8) * 16
    b = a.copy()
    b[2, 2] += 2
    got = metrics.figures(a, b, 12)
    assert list(got) == list(METRICS)
    assert got == {"psnr": metrics.psnr(a, b, 12), "ssim": metrics.ssim(a, b), "max_error": 2}


def test_max_error_hu_only_for_ct():
    assert metrics.max_error_hu(4, -0.5, "CT") == 2.0
    assert metrics.max_error_hu(4, 1.0, "MR") is None


def test_psnr_does_not_depend_on_the_container():
    """12-bit CT in 16-bit words and in 12 bits: the same figure (peak = the slice's max - min, at least 1)."""
    from tests.realdata import find

    ct = pydicom.dcmread(find("CT_small.dcm")).pixel_array.astype(np.int32)
    noisy = ct + np.random.default_rng(0).integers(-3, 4, ct.shape)
    assert metrics.psnr(ct, noisy, 12) == metrics.psnr(ct, noisy, 16) == metrics.psnr(ct, noisy)
    assert metrics.psnr_peak(ct) == ct.max() - ct.min()
    expected = 10 * math.log10(float(ct.max() - ct.min()) ** 2 / metrics.mse(ct, noisy))
    assert math.isclose(metrics.psnr(ct, noisy), expected)
    assert metrics.psnr_full_scale(ct, noisy, 16) > metrics.psnr(ct, noisy) + 20, "full scale is ~25 dB looser"
    flat = np.full((8, 8), 7)
    assert metrics.psnr_peak(flat) == 1.0 and math.isclose(metrics.psnr(flat, flat + 1), 0.0)


def test_an_exact_decode_gets_the_exact_figures_and_a_one_value_change_is_measured():
    from quality.metrics import figures

    rng = np.random.default_rng(5)
    original = rng.integers(0, 4096, (64, 64))
    assert figures(original, original.copy(), 12) == {"psnr": math.inf, "ssim": 1.0, "max_error": 0}
    changed = original.copy()
    changed[10, 10] += 1
    f = figures(original, changed, 12)
    assert f["max_error"] == 1 and math.isfinite(f["psnr"]) and f["ssim"] < 1.0
