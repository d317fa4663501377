"""BD-rate and BD-PSNR (lab/bench_bd.py): a known shift of a curve comes back as that shift."""
from __future__ import annotations

import pytest

from lab import bench_bd

REF_BPP = [0.3, 0.6, 1.0, 1.6, 2.5]
REF_PSNR = [38.0, 42.5, 45.8, 48.9, 52.0]


@pytest.mark.parametrize("shift", [-0.10, -0.25, 0.15])
def test_bd_rate_of_a_rate_shifted_curve_is_the_shift(shift):
    test_bpp = [b * (1 + shift) for b in REF_BPP]
    assert bench_bd.bd_rate(REF_BPP, REF_PSNR, test_bpp, REF_PSNR) == pytest.approx(100 * shift, abs=1e-6)


def test_bd_rate_of_identical_curves_is_zero_and_psnr_shift_shows_in_bd_psnr():
    assert bench_bd.bd_rate(REF_BPP, REF_PSNR, REF_BPP, REF_PSNR) == pytest.approx(0.0, abs=1e-9)
    better = [p + 1.5 for p in REF_PSNR]
    assert bench_bd.bd_psnr(REF_BPP, REF_PSNR, REF_BPP, better) == pytest.approx(1.5, abs=1e-9)
    # a better curve needs fewer bits
    assert bench_bd.bd_rate(REF_BPP, REF_PSNR, REF_BPP, better) < 0


def test_bd_rate_without_overlap_is_an_error():
    with pytest.raises(bench_bd.BdRateError):
        bench_bd.bd_rate([3, 4, 5, 6], [50, 52, 54, 56], [3, 4, 5, 6], [50, 52, 54, 56])  # all above 2 bpp
    with pytest.raises(bench_bd.BdRateError):
        bench_bd.bd_rate([1.0], [40.0], [1.0, 2.0], [40.0, 44.0])
