"""lab/noise_floor.py: the white-noise rate floor is a floor (below a coder that exists) and reads sigma right."""
from __future__ import annotations

import numpy as np
import pytest

from lab import noise_floor as nf


def test_lossless_rate_is_the_entropy_of_the_rounded_gaussian():
    for sigma in (4.0, 10.0, 40.0):  # (at sigma 2 rounding already adds 0.015 bit)
        assert nf.max_error_rate(sigma, 0) == pytest.approx(0.5 * np.log2(2 * np.pi * np.e * sigma ** 2), abs=0.01)


def test_rate_falls_with_k_and_meets_the_shannon_lower_bound_far_above_k():
    rates = [nf.max_error_rate(30.0, k) for k in (0, 1, 2, 4, 8)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    h = nf.max_error_rate(30.0, 0)
    assert rates[2] == pytest.approx(h - np.log2(5), abs=0.01)


@pytest.mark.parametrize("sigma,k", [(1.0, 1), (5.0, 2), (12.0, 4)])
def test_floor_is_below_a_real_max_error_coder(sigma, k):
    """Scalar quantisation with step 2k + 1 keeps |e| <= k; its empirical entropy may not undercut the floor."""
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(0, sigma, 400_000)).astype(np.int64)
    idx = np.floor_divide(x + k, 2 * k + 1)
    assert np.abs(x - idx * (2 * k + 1)).max() <= k
    _, counts = np.unique(idx, return_counts=True)
    p = counts / counts.sum()
    achieved = float(-(p * np.log2(p)).sum())
    assert nf.max_error_rate(sigma, k) <= achieved + 1e-3
    assert nf.max_error_rate(sigma, k) >= achieved - 0.6  # a floor, not zero


def test_tile_sigmas_reads_white_noise_and_ignores_constant_tiles():
    rng = np.random.default_rng(1)
    v = np.round(1000 + rng.normal(0, 10, (128, 128))).astype(np.int64)
    v[:32, :32] = 7  # a constant tile: no noise to code
    sig = nf.tile_sigmas(v)
    assert sig["px"].sum() == v.size
    assert sig["med"][0] == 0.0
    assert np.median(sig["med"][1:]) == pytest.approx(10.0, rel=0.1)
    assert nf.floor_bits(np.zeros(4), np.full(4, 1024.0), 2) == 0.0


def test_gate_floor_grows_with_a_stricter_psnr_and_falls_back_to_the_max_error_floor():
    sig, px = np.array([8.0, 20.0]), np.array([1024.0, 1024.0])
    plain = nf.floor_bits(sig, px, 2)
    assert nf.gate_floor_bits(sig, px, 2, 1e9) == pytest.approx(plain, rel=0.01)
    loose, strict = nf.gate_floor_bits(sig, px, 2, 1.5), nf.gate_floor_bits(sig, px, 2, 0.3)
    assert plain - 1 <= loose < strict
