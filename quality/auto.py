"""The `auto` policy: for one slice under its gate, which near-lossless k to try first, and what follows it.

A near-lossless decode errs by at most k everywhere, so the max-error threshold bounds k directly. For PSNR and SSIM
the error is modelled as independent noise of variance k(k+1)/3 (uniform on -k..k), an upper bound in practice: the
residual layer reproduces flat and predictable regions exactly, so measured errors are smaller (on a 512² CT, MSE
≈ 0.45 of the bound). With SSIM's own 7×7 windows and constants, that noise turns each window's structure term into
(2σ² + C2) / (2σ² + e² + C2), so SSIM is predicted from the slice's local variances alone. The prediction only
orders the first try; each attempt's measured figures then steer k (search), and the written file decides (confirm,
then the escalation ladder).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

from codec.modes import NEAR_LOSSLESS_K_MAX, Mode
from quality import metrics

K_LIMIT = NEAR_LOSSLESS_K_MAX  # never try a larger k, whatever the gate allows (a payload records k in one byte)
_WIN = 7  # scikit-image's default SSIM window
_K2 = 0.03  # scikit-image's SSIM constant K2
# a looser k is aimed 6 % (0.27 dB) past the measured prediction, a stricter one 6 % short of it: the ratio of
# measured to modelled MSE tends to fall as k grows (MR 1024²: 0.86 at k = 3, 0.82 at k = 4, which passes at 48.1 dB
# where the unscaled prediction said 47.9)
_LEAN = 1.06
_PROBES = 3  # tries after the first pass: each aimed by the last attempt's figures, between the known pass and fail
# tries after a failure, each at the smaller k the last failure's figures predict, before the ladder halves k: on a
# Philips DWI 128² the first retry missed SSIM by 0.0002 (k = 12) and halving stored k = 6, 1.3x the bytes of k = 11
_RETRIES = 2

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """What `search` needs to know of one attempt: its mode, did its decode pass, its PSNR and SSIM, its size in
    bytes, and whether it has an integrity problem (a broken bound, a failed decode: never steered or escalated
    away)."""

    mode: Mode
    passed: bool
    psnr: float
    ssim: float
    size: int
    integrity: bool = False


def noise_variance(k: int) -> float:
    """Variance of an error uniform on -k..k: the model's bound on a near-lossless:k decode's MSE."""
    return k * (k + 1) / 3.0


def _k_within(variance: float) -> int:
    """The largest k whose k(k+1)/3 stays within `variance` (0 when none does)."""
    k = int((math.sqrt(1.0 + 12.0 * max(variance, 0.0)) - 1.0) / 2.0)
    while k > 0 and noise_variance(k) > variance:
        k -= 1
    return k


def psnr_k_bound(psnr_min: float | None, peak: float) -> int:
    """The largest k whose modelled MSE keeps PSNR (with this peak) at or above psnr_min."""
    if psnr_min is None:
        return K_LIMIT
    return min(_k_within(metrics.mse_at(peak, psnr_min)), K_LIMIT)


def local_variances(original: np.ndarray) -> np.ndarray:
    """Sample variance in every full 7×7 window, as scikit-image's SSIM computes it."""
    from scipy.ndimage import uniform_filter  # imported when used: configs import this module for `auto`

    x = original.astype(np.float64)
    mean = uniform_filter(x, _WIN)
    n = _WIN * _WIN
    var = (uniform_filter(x * x, _WIN) - mean * mean) * n / (n - 1)
    pad = _WIN // 2
    return np.maximum(var[pad:-pad, pad:-pad], 0.0)


def predicted_ssim(variances: np.ndarray, data_range: float, k: int) -> float:
    """SSIM of the slice against itself plus the k-noise model (a lower bound in practice)."""
    if k == 0 or variances.size == 0:
        return 1.0
    c2 = (_K2 * max(data_range, 1.0)) ** 2
    return float(np.mean((2.0 * variances + c2) / (2.0 * variances + noise_variance(k) + c2)))


def first_k(original: np.ndarray, psnr_min: float | None, ssim_min: float | None, max_error_max: int | None,
            peak: float) -> int:
    """The largest k the gate admits by the model: 0 means lossless."""
    k = min(K_LIMIT, max_error_max if max_error_max is not None else K_LIMIT, psnr_k_bound(psnr_min, peak))
    if k <= 0 or ssim_min is None or min(original.shape) < _WIN:
        return max(k, 0)
    variances = local_variances(original)
    data_range = float(original.max()) - float(original.min())
    if predicted_ssim(variances, data_range, k) >= ssim_min:
        return k
    lo, hi = 0, k  # predicted SSIM falls as k grows: bisect for the last k that passes
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if predicted_ssim(variances, data_range, mid) >= ssim_min:
            lo = mid
        else:
            hi = mid
    return lo


def first_mode(original: np.ndarray, gate, peak: float) -> Mode:
    """What `auto` encodes a slice at first: near-lossless at the model's k, or lossless."""
    k = first_k(np.asarray(original), gate.psnr_min, gate.ssim_min, gate.max_error_max, peak)
    return Mode.near_lossless(k) if k > 0 else Mode.lossless()


def steered_k(k: int, psnr: float, ssim: float, gate, peak: float, lean: float = 1.0) -> int:
    """The k at which a near-lossless:k decode that measured this PSNR and SSIM would just meet the gate, taking the
    error variance to scale like k(k+1)/3 and 1 − SSIM like the error variance (small errors against the local
    variances), both from the measured point; `lean` > 1 aims past that point, < 1 short of it. Capped by the gate's
    max error and K_LIMIT."""
    ratio = math.inf
    mse = metrics.mse_at(peak, psnr)
    if gate.psnr_min is not None and mse > 0:
        ratio = min(ratio, metrics.mse_at(peak, gate.psnr_min) / mse)
    if gate.ssim_min is not None and ssim < 1.0:
        ratio = min(ratio, (1.0 - gate.ssim_min) / (1.0 - ssim))
    cap = min(K_LIMIT, gate.max_error_max if gate.max_error_max is not None else K_LIMIT)
    if math.isinf(ratio):
        return cap
    return min(_k_within(noise_variance(k) * ratio * lean), cap)


def search(original: np.ndarray, gate, peak: float, ceiling: Mode, attempt: Callable[[Mode], T],
           outcome: Callable[[T], Outcome]) -> tuple[T, list[T]]:
    """`auto` for one slice: (the smallest passing attempt found, or the last failure; the failed attempts before
    it, in order).

    The model's first k is tried; the measured figures then steer k (steered_k): after a failure, up to _RETRIES
    tries, each at the smaller k the last failure predicts (aiming 6 % short), while the `ceiling` (the strictest
    mode allowed) permits it; after a pass, up to _PROBES tries, each aimed by the last attempt's figures (6 % past a
    pass, 6 % short of a failure) and kept between the largest k known to pass and the smallest known to fail (PSNR
    and SSIM are not quite monotone in k: the residual layer's choices change with it). Every candidate is judged on
    the values it decodes to, so a wrong prediction costs an encode, never a slice outside its gate. An attempt with
    an integrity problem ends the search at once. With no pass the caller's escalation ladder takes over from the returned failure's mode."""
    mode = first_mode(np.asarray(original), gate, peak)
    first = attempt(mode)
    result = outcome(first)
    if mode.is_lossless or result.integrity:
        return first, []
    failed: list[T] = []
    high = None  # the smallest k known to fail
    for _ in range(_RETRIES):
        if result.passed:
            break
        high = result.mode.level
        k = min(steered_k(high, result.psnr, result.ssim, gate, peak, 1 / _LEAN), high - 1)
        if k < 1 or Mode.near_lossless(k) > ceiling:
            return first, failed
        failed.append(first)
        first = attempt(Mode.near_lossless(k))
        result = outcome(first)
        if result.integrity:
            return first, failed
    if not result.passed:
        return first, failed
    best, low = first, result.mode.level
    last, last_k = first, low  # the attempt whose figures aim the next probe
    for _ in range(_PROBES):
        figures = outcome(last)
        aim = steered_k(last_k, figures.psnr, figures.ssim, gate, peak, _LEAN if figures.passed else 1 / _LEAN)
        if high is not None:
            aim = min(aim, high - 1)
        if aim <= low:
            break
        last, last_k = attempt(Mode.near_lossless(aim)), aim
        checked = outcome(last)
        if checked.integrity:
            return last, failed
        if checked.passed:
            low = aim
            if checked.size < outcome(best).size:
                best = last
        else:
            high = aim
    return best, failed


def next_stricter(mode: Mode, floor_k: int = 0) -> Mode | None:
    """After a confirmed failure: halve k, but go no lower than floor_k before lossless; None after lossless."""
    if mode.is_lossless:
        return None
    if mode.is_transform:
        raise ValueError(f"{mode} is not a near-lossless mode: its next stricter mode is escalation.next_mode's")
    k = max(mode.level // 2, floor_k)
    return Mode.near_lossless(k) if 0 < k < mode.level else Mode.lossless()


class Auto:
    """The `auto` policy as a value: per slice, the cheapest mode whose decode passes the slice's gate."""

    _instance: "Auto | None" = None

    def __new__(cls) -> "Auto":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __str__(self) -> str:
        return "auto"

    def __repr__(self) -> str:
        return "Auto()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Auto)

    def __hash__(self) -> int:
        return hash("auto")


AUTO = Auto()


def parse_policy(text: "str | Mode | Auto") -> "Mode | Auto":
    """`auto` or a codec mode (codec.modes.Mode.parse): the one parser of the edge for the archive policy."""
    if isinstance(text, (Mode, Auto)):
        return text
    if str(text).strip().lower() == "auto":
        return AUTO
    return Mode.parse(text)
