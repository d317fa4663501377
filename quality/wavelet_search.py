"""`auto`'s wavelet candidate: the coarsest wavelet rate point q whose decode passes the slice's gate, its guard
holding the gate's max error (codec.modes: wavelet:Q/E, quantiser step D = range 2^(-q/24)).

The first q takes the gate's PSNR to stand for an error variance of D²/12 (a uniform quantiser's, an upper bound: at
low rates most coefficients quantise to zero and err by less than a step); each attempt's measured figures then steer
q, with PSNR taken to rise 20 log10(2) / 24 ≈ 0.25 dB per rate point (then as fast as the last two decodes measured)
and 1 − SSIM to fall like the error variance. Every candidate is judged on the values it decodes to, so a wrong aim
costs an encode, never a slice outside its gate.
"""
from __future__ import annotations

import math
from typing import Callable, TypeVar

from codec.modes import WAVELET_BOUND_MAX, WAVELET_Q_MAX, WAVELET_Q_PER_OCTAVE, Mode
from quality import metrics
from quality.auto import Outcome

T = TypeVar("T")

_DB_PER_Q = 20.0 * math.log10(2.0) / WAVELET_Q_PER_OCTAVE
_TRIES = 5  # encodes per slice at most


def first_q(gate, peak: float) -> int:
    """The rate point whose modelled error variance D²/12 just meets the gate's PSNR (the slice's range is
    peak + 1); without a PSNR limit, the one whose step is twice the max error (or 1/256 of the range)."""
    if gate.psnr_min is not None:
        step = math.sqrt(12.0 * metrics.mse_at(peak, gate.psnr_min))
    elif gate.max_error_max:
        step = 2.0 * gate.max_error_max
    else:
        step = (peak + 1.0) / 256.0
    q = math.ceil(WAVELET_Q_PER_OCTAVE * math.log2((peak + 1.0) / max(step, 1e-9)))
    return min(max(q, 0), WAVELET_Q_MAX)


def margin(psnr: float, ssim: float, gate) -> float:
    """By how many dB a decode clears the gate's PSNR and SSIM (negative: short of it), SSIM's share taken as the
    dB its 1 − SSIM is below the limit's (1 − SSIM scales like the error variance)."""
    m = math.inf
    if gate.psnr_min is not None:
        m = min(m, psnr - gate.psnr_min if not math.isnan(psnr) else -math.inf)
    if gate.ssim_min is not None and gate.ssim_min < 1.0:
        m = min(m, 10.0 * math.log10((1.0 - gate.ssim_min) / max(1.0 - ssim, 1e-12)) if not math.isnan(ssim)
                else -math.inf)
    return m


def _aim(q: int, m: float, db_per_q: float) -> int:
    """The rate point at which a decode with margin m at q would just meet the gate, PSNR moving db_per_q a point."""
    if math.isinf(m):
        return 0 if m > 0 else WAVELET_Q_MAX + 1
    return q + math.ceil(-m / db_per_q - 1e-9)


def steered_q(q: int, psnr: float, ssim: float, gate) -> int:
    """The rate point at which a decode that measured this PSNR and SSIM at q would just meet the gate."""
    return _aim(q, margin(psnr, ssim, gate), _DB_PER_Q)


def search(gate, peak: float, attempt: Callable[[Mode], T], outcome: Callable[[T], Outcome]) -> T | None:
    """The smallest passing wavelet attempt found in up to _TRIES encodes (None when none passed). The first retry
    is steered by the first decode's figures at the model's slope; later ones by the slope the last two decodes
    measured (at low rates PSNR moves half as fast as the model says: a GE MPRAGE 256² took five passing steps
    down); once a pass and a failure are known, by the secant between the largest q known to fail and the smallest
    known to pass (their margins), kept strictly inside that bracket. A pass larger than the finer pass before it
    ends the search: below that q the guard grows faster than the bands shrink (bytes are not monotone in q under a
    guard). An attempt with an integrity problem is returned at once: the caller must see it."""
    bound = gate.max_error_max
    if bound is not None and bound > WAVELET_BOUND_MAX:  # beyond any stored value's reach: no guard needed
        bound = None
    q = first_q(gate, peak)
    low = high = None  # (q, margin) of the largest failing and of the smallest passing rate point
    last = None  # (q, margin) of the attempt before this one
    best = None
    for _ in range(_TRIES):
        tried = attempt(Mode.wavelet(q, bound))
        result = outcome(tried)
        if result.integrity:
            return tried
        m = margin(result.psnr, result.ssim, gate)
        previous, last = last, (q, m)
        if result.passed:
            if best is not None and result.size >= outcome(best).size:
                break  # coarser and larger: the guard's corrections outgrow what the coarser step saves
            high = (q, m)
            best = tried
        else:
            low = (q, min(m, 0.0))
        if low is not None and high is not None:
            if high[0] - low[0] <= 1:
                break
            (q0, m0), (q1, m1) = low, high
            if math.isfinite(m0) and math.isfinite(m1) and m1 > m0:
                aim = q0 + math.ceil((q1 - q0) * -m0 / (m1 - m0) - 1e-9)
            else:
                aim = (q0 + q1) // 2
            q = min(max(aim, q0 + 1), q1 - 1)
        else:
            slope = _DB_PER_Q
            if previous is not None and math.isfinite(m) and math.isfinite(previous[1]) and previous[0] != q:
                measured = (m - previous[1]) / (q - previous[0])
                slope = measured if measured > 0 else slope
            aim = _aim(q, m, slope)
            if result.passed:
                if aim >= q or aim < 0:  # at the boundary by the model: a coarser point would fail
                    break
            else:
                aim = max(aim, q + 1)
                if aim > WAVELET_Q_MAX:
                    break
            q = aim
    return best
