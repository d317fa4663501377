"""Bjontegaard deltas between two rate-distortion curves (bpp, PSNR), restricted to a rate range.

BD-rate: each curve's log-rate is fitted as a cubic in PSNR (lower degree with fewer than 4 points) and the
difference is averaged over the PSNR interval both curves cover inside the range. BD-PSNR: the same with PSNR fitted
as a cubic in log-rate, averaged over the common log-rate interval.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

BD_RANGE = (0.5, 2.0)


class BdRateError(ValueError):
    """Two rate-distortion curves that cannot be compared (too few points, no overlap in the range)."""


def _curve(bpp: Sequence[float], psnr: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    pts = sorted({(float(b), float(p)) for b, p in zip(bpp, psnr) if b > 0 and p is not None and math.isfinite(p)})
    if len(pts) < 2:
        raise BdRateError(f"a curve needs at least 2 finite points, got {len(pts)}")
    r = np.log(np.array([b for b, _ in pts]))
    q = np.array([p for _, p in pts])
    return r, q


def _psnr_span(r: np.ndarray, q: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """PSNR interval this curve covers within log-rate [lo, hi] (linear interpolation between its points)."""
    a, b = max(lo, r.min()), min(hi, r.max())
    if a > b:
        raise BdRateError("curve has no point within the rate range")
    ya, yb = np.interp([a, b], r, q)
    return float(min(ya, yb)), float(max(ya, yb))


def _fit(x: np.ndarray, y: np.ndarray) -> np.poly1d:
    return np.poly1d(np.polyfit(x, y, min(3, len(x) - 1)))


def _mean_gap(f_ref: np.poly1d, f_test: np.poly1d, lo: float, hi: float) -> float:
    i_ref, i_test = np.polyint(f_ref), np.polyint(f_test)
    return float(((i_test(hi) - i_test(lo)) - (i_ref(hi) - i_ref(lo))) / (hi - lo))


def bd_rate(ref_bpp: Sequence[float], ref_psnr: Sequence[float], test_bpp: Sequence[float],
            test_psnr: Sequence[float], *, bpp_range: tuple[float, float] = BD_RANGE) -> float:
    """Bjontegaard delta rate in percent of `test` against `ref` (negative: test needs fewer bits).

    Each curve's log-rate is fitted as a cubic in PSNR (lower degree with fewer than 4 points); the difference is
    averaged over the PSNR interval both curves cover while within `bpp_range`.
    """
    r1, q1 = _curve(ref_bpp, ref_psnr)
    r2, q2 = _curve(test_bpp, test_psnr)
    lo_r, hi_r = math.log(bpp_range[0]), math.log(bpp_range[1])
    s1, s2 = _psnr_span(r1, q1, lo_r, hi_r), _psnr_span(r2, q2, lo_r, hi_r)
    lo, hi = max(s1[0], s2[0]), min(s1[1], s2[1])
    if hi - lo < 1e-6:
        raise BdRateError(
            f"no PSNR overlap within {bpp_range[0]}-{bpp_range[1]} bpp: anchor {s1[0]:.1f}-{s1[1]:.1f} dB, "
            f"test {s2[0]:.1f}-{s2[1]:.1f} dB"
        )
    gap = _mean_gap(_fit(q1, r1), _fit(q2, r2), lo, hi)
    return 100.0 * (math.exp(gap) - 1.0)


def bd_psnr(ref_bpp: Sequence[float], ref_psnr: Sequence[float], test_bpp: Sequence[float],
            test_psnr: Sequence[float], *, bpp_range: tuple[float, float] = BD_RANGE) -> float:
    """Bjontegaard delta PSNR in dB of `test` against `ref` over the log-rate overlap within `bpp_range`."""
    r1, q1 = _curve(ref_bpp, ref_psnr)
    r2, q2 = _curve(test_bpp, test_psnr)
    lo = max(r1.min(), r2.min(), math.log(bpp_range[0]))
    hi = min(r1.max(), r2.max(), math.log(bpp_range[1]))
    if hi - lo < 1e-6:
        raise BdRateError(f"no rate overlap within {bpp_range[0]}-{bpp_range[1]} bpp")
    return _mean_gap(_fit(r1, q1), _fit(r2, q2), lo, hi)
