"""The quality and size definitions of docs/design.md, computed in one place, and the gate metrics by name.

Every part of medzip (gates, bench, audit, archive quality tables) calls these; none re-derives them.
All inputs are arrays of *stored values* (never rescaled or windowed).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


# What the PSNR of gates, quality tables and the audit means (docs/design.md, "PSNR"); archives record it, and an
# archive without it was measured with FULL_SCALE_PSNR.
PSNR_DEFINITION = "peak = original slice max - min (at least 1)"
FULL_SCALE_PSNR = "peak = 2**BitsStored - 1"


def max_value(bits_stored: int) -> int:
    """2**BitsStored - 1: the peak of the literature's full-scale PSNR (psnr_full_scale), not of the gates'."""
    return (1 << int(bits_stored)) - 1


def psnr_peak(original: np.ndarray) -> float:
    """The gates' PSNR peak: the original slice's max - min stored value, at least 1. It does not depend on the
    container: 12-bit CT in 16-bit words and in 12 bits get the same figure."""
    original = np.asarray(original)
    if original.size == 0:
        return 1.0
    return float(max(1, int(original.max()) - int(original.min())))


def mse(original: np.ndarray, decoded: np.ndarray) -> float:
    diff = original.astype(np.float64) - decoded.astype(np.float64)
    return float(np.mean(diff * diff))


def _psnr(peak: float, err: float) -> float:
    return math.inf if err == 0.0 else 10.0 * math.log10(peak * peak / err)


def mse_at(peak: float, psnr_db: float) -> float:
    """The MSE a PSNR figure stands for at this peak (0 for an exact decode's +inf, inf for -inf or NaN: an
    unmeasured decode)."""
    if math.isnan(psnr_db) or psnr_db == -math.inf:
        return math.inf
    return 0.0 if psnr_db == math.inf else peak * peak / 10.0 ** (psnr_db / 10.0)


def psnr(original: np.ndarray, decoded: np.ndarray, bits_stored: int | None = None) -> float:
    """10*log10(R^2 / MSE) with R = psnr_peak(original); +inf when the decode is exact. `bits_stored` is not used
    (kept so every metric takes the same arguments)."""
    return _psnr(psnr_peak(original), mse(original, decoded))


def psnr_full_scale(original: np.ndarray, decoded: np.ndarray, bits_stored: int) -> float:
    """The literature's variant, peak 2**BitsStored - 1 (FULL_SCALE_PSNR): for benchmarks, labelled as such."""
    return _psnr(max_value(bits_stored), mse(original, decoded))


def ssim(original: np.ndarray, decoded: np.ndarray) -> float:
    """scikit-image SSIM on stored values, data_range = the original slice's max - min."""
    from skimage.metrics import structural_similarity  # imported when used: the archive package reads METRICS

    a = original.astype(np.float64)
    b = decoded.astype(np.float64)
    data_range = float(a.max() - a.min())
    if data_range == 0.0:
        return 1.0 if np.array_equal(a, b) else 0.0
    # skimage needs a window no larger than the image; 7 is its default.
    win = min(7, min(a.shape[-2:]))
    if win % 2 == 0:
        win -= 1
    if win < 3:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(structural_similarity(a, b, data_range=data_range, win_size=win))


def max_error(original: np.ndarray, decoded: np.ndarray) -> int:
    """max |original - decoded| in stored values."""
    if original.size == 0:
        return 0
    return int(np.max(np.abs(original.astype(np.int64) - decoded.astype(np.int64))))


def uncompressed_bytes(rows: int, columns: int, frames: int, bits_allocated: int) -> int:
    return rows * columns * frames * bits_allocated // 8


def ratio(uncompressed: int, payload_bytes: int) -> float:
    """Uncompressed size over compressed payload bytes."""
    return uncompressed / payload_bytes if payload_bytes else math.inf


def bpp(payload_bytes: int, pixels: int) -> float:
    return 8.0 * payload_bytes / pixels if pixels else 0.0


def max_error_hu(max_error_stored: int, rescale_slope: float, modality: str) -> float | None:
    """A CT slice's max error in Hounsfield units (stored values times |RescaleSlope|); None for other modalities."""
    return float(max_error_stored * abs(rescale_slope)) if modality.upper() == "CT" else None


# ---- the metrics by name ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """One gate metric: how it is computed, its column in the archive's quality table, and which way passes.

    Adding a metric is one entry in METRICS plus its column: a field of the same name in
    archive.QualityRow and quality.records.FrameQuality, and its threshold field (`threshold`) in configs.Gate.
    """

    name: str  # the column and record field
    label: str  # how people read it: "PSNR"
    compute: Callable[[np.ndarray, np.ndarray, int], float]  # (original, decoded, bits_stored) -> figure
    dtype: str  # numpy dtype of its quality-table column
    higher_is_better: bool  # True: passes at or above the gate's minimum; False: at or below its maximum
    figure: str  # format of the figure in a gate reason
    worst_key: str  # summary key of the worst figure over many slices: min_psnr, max_error
    worst_label: str  # its table heading: "min PSNR"
    no_decode: Callable[[int], float]  # bits_stored -> the figure recorded for a slice with no decode to measure
    exact: float  # the figure of a bit-exact decode, by definition (nothing to compute)
    unit: str = ""

    @property
    def threshold(self) -> str:
        """The Gate field that holds this metric's limit: psnr_min, max_error_max."""
        return f"{self.name}_{'min' if self.higher_is_better else 'max'}"

    def fails(self, value: float, limit: float) -> bool:
        return value < limit if self.higher_is_better else value > limit

    def reason(self, value: float, limit: float) -> str:
        """Why `value` fails `limit`, with both figures: 'PSNR 41.20 dB < 45.0'."""
        shown = self.figure.format(value) + (f" {self.unit}" if self.unit else "")
        return f"{self.label} {shown} {'<' if self.higher_is_better else '>'} {limit}"

    def worst(self, values: Iterable[float]) -> float | None:
        """The worst of many slices' figures (None for none)."""
        values = list(values)
        if not values:
            return None
        return min(values) if self.higher_is_better else max(values)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("psnr", "PSNR", psnr, "<f8", higher_is_better=True, figure="{:.2f}", worst_key="min_psnr",
           worst_label="min PSNR", no_decode=lambda bits_stored: -math.inf, exact=math.inf, unit="dB"),
    Metric("ssim", "SSIM", lambda original, decoded, bits_stored: ssim(original, decoded), "<f8",
           higher_is_better=True, figure="{:.4f}", worst_key="min_ssim", worst_label="min SSIM",
           no_decode=lambda bits_stored: 0.0, exact=1.0),
    Metric("max_error", "max error", lambda original, decoded, bits_stored: max_error(original, decoded), "<i8",
           higher_is_better=False, figure="{}", worst_key="max_error", worst_label="max error",
           no_decode=lambda bits_stored: 1 << bits_stored, exact=0),
)}


def figures(original: np.ndarray, decoded: np.ndarray, bits_stored: int) -> dict[str, float]:
    """Every metric of one decoded slice against its original: {name: figure}. A bit-exact decode (every lossless
    frame) gets the exact figures without computing them: SSIM alone was a quarter of a lossless archive's verify."""
    if original.shape == decoded.shape and np.array_equal(original, decoded):
        return {m.name: m.exact for m in METRICS.values()}
    return {m.name: m.compute(original, decoded, bits_stored) for m in METRICS.values()}


def figures_of(record: Any) -> dict[str, float]:
    """The figures a record (quality-table row, FrameQuality) holds, one attribute per metric."""
    return {name: getattr(record, name) for name in METRICS}
