"""The `auto` policy: for one slice under its gate, which near-lossless k to try first, and what follows it.

A near-lossless decode errs by at most k everywhere, so the max-error threshold bounds k directly. For PSNR and SSIM
the error is modelled as independent noise of variance k(k+1)/3 (uniform on -k..k), an upper bound in practice: the
residual layer reproduces flat and predictable regions exactly, so measured errors are smaller (on a 512² CT, MSE
≈ 0.45 of the bound). With SSIM's own 7×7 windows and constants, that noise turns each window's structure term into
(2σ² + C2) / (2σ² + e² + C2), so SSIM is predicted from the slice's local variances alone. The prediction only
orders the first try; the written file decides (confirm, then the escalation ladder).
"""
from __future__ import annotations

import math

import numpy as np

from codec.modes import Mode

K_LIMIT = 255  # never try a larger k, whatever the gate allows
_WIN = 7  # scikit-image's default SSIM window
_K2 = 0.03  # scikit-image's SSIM constant K2
_SCALE_FLOOR = 0.1  # a decode that measured (almost) no error still has its k grow by at most ~3×
# the looser k is predicted as if the error were 6 % (0.27 dB) smaller than measured: the ratio of measured to
# modelled MSE tends to fall as k grows (MR 1024²: 0.86 at k = 3, 0.82 at k = 4, which passes at 48.1 dB where the
# unscaled prediction said 47.9), and the candidate is confirmed by its own decode anyway
_OPTIMISM = 0.94


def noise_variance(k: int) -> float:
    """Variance of an error uniform on -k..k: the model's bound on a near-lossless:k decode's MSE."""
    return k * (k + 1) / 3.0


def psnr_k_bound(psnr_min: float | None, peak: float, scale: float = 1.0) -> int:
    """The largest k whose modelled MSE (scale × the uniform bound) keeps PSNR (with this peak) at or above psnr_min."""
    if psnr_min is None:
        return K_LIMIT
    mse_max = peak * peak / 10.0 ** (psnr_min / 10.0) / scale
    k = int((math.sqrt(1.0 + 12.0 * mse_max) - 1.0) / 2.0)  # k(k+1)/3 <= mse_max
    while k > 0 and noise_variance(k) > mse_max:
        k -= 1
    return max(0, min(k, K_LIMIT))


def local_variances(original: np.ndarray) -> np.ndarray:
    """Sample variance in every full 7×7 window, as scikit-image's SSIM computes it."""
    from scipy.ndimage import uniform_filter  # imported when used: configs import this module for `auto`

    x = original.astype(np.float64)
    mean = uniform_filter(x, _WIN)
    n = _WIN * _WIN
    var = (uniform_filter(x * x, _WIN) - mean * mean) * n / (n - 1)
    pad = _WIN // 2
    return np.maximum(var[pad:-pad, pad:-pad], 0.0)


def predicted_ssim(variances: np.ndarray, data_range: float, k: int, scale: float = 1.0) -> float:
    """SSIM of the slice against itself plus the k-noise model of variance scale × k(k+1)/3 (a lower bound in
    practice at scale 1)."""
    if k == 0 or variances.size == 0:
        return 1.0
    c2 = (_K2 * max(data_range, 1.0)) ** 2
    return float(np.mean((2.0 * variances + c2) / (2.0 * variances + scale * noise_variance(k) + c2)))


def first_k(original: np.ndarray, psnr_min: float | None, ssim_min: float | None, max_error_max: int | None,
            peak: float, scale: float = 1.0) -> int:
    """The largest k the gate admits by the model (error variance scale × k(k+1)/3): 0 means lossless."""
    k = min(K_LIMIT, max_error_max if max_error_max is not None else K_LIMIT, psnr_k_bound(psnr_min, peak, scale))
    if k <= 0 or ssim_min is None or min(original.shape) < _WIN:
        return max(k, 0)
    variances = local_variances(original)
    data_range = float(original.max()) - float(original.min())
    if predicted_ssim(variances, data_range, k, scale) >= ssim_min:
        return k
    lo, hi = 0, k  # predicted SSIM falls as k grows: bisect for the last k that passes
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if predicted_ssim(variances, data_range, mid, scale) >= ssim_min:
            lo = mid
        else:
            hi = mid
    return lo


def first_mode(original: np.ndarray, gate, peak: float) -> Mode:
    """What `auto` encodes a slice at first: near-lossless at the model's k, or lossless."""
    k = first_k(np.asarray(original), gate.psnr_min, gate.ssim_min, gate.max_error_max, peak)
    return Mode.near_lossless(k) if k > 0 else Mode.lossless()


def looser_mode(original: np.ndarray, passed: Mode, measured_mse: float, gate, peak: float) -> Mode | None:
    """After near-lossless:k passed its gate with this measured MSE: a larger k to try once, or None.

    The uniform-error model overstates a near-lossless decode's error where the residual layer reproduces pixels
    exactly (on a 512² CT the MSE is ~0.45 of k(k+1)/3; on noisy MR ~0.8), so the first k is conservative. Scaling
    the model by what this decode measured predicts the larger k; the caller keeps it only if its own decode passes
    and it is smaller (the looser payload is not always smaller: the residual layer's choice can change with k)."""
    if passed.kind != "near-lossless":
        return None
    scale = min(max(_OPTIMISM * measured_mse / noise_variance(passed.level), _SCALE_FLOOR), 1.0)
    k = first_k(np.asarray(original), gate.psnr_min, gate.ssim_min, gate.max_error_max, peak, scale)
    return Mode.near_lossless(k) if k > passed.level else None


def next_stricter(mode: Mode, floor_k: int = 0) -> Mode | None:
    """After a confirmed failure: halve k, but go no lower than floor_k before lossless; None after lossless."""
    if mode.is_lossless:
        return None
    if mode.is_lossy:
        raise ValueError("auto never starts at a lossy mode")
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
