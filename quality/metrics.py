"""The quality and size definitions of docs/design.md, computed in one place.

Every part of medzip (gates, bench, audit, archive quality tables) calls these; none re-derives them.
All inputs are arrays of *stored values* (never rescaled or windowed).
"""
from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity


def max_value(bits_stored: int) -> int:
    """MAX in the PSNR definition: 2**BitsStored - 1."""
    return (1 << int(bits_stored)) - 1


def mse(original: np.ndarray, decoded: np.ndarray) -> float:
    diff = original.astype(np.float64) - decoded.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(original: np.ndarray, decoded: np.ndarray, bits_stored: int) -> float:
    """10*log10(MAX^2 / MSE) over the slice; +inf when the decode is exact."""
    err = mse(original, decoded)
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(max_value(bits_stored) ** 2 / err)


def ssim(original: np.ndarray, decoded: np.ndarray) -> float:
    """scikit-image SSIM on stored values, data_range = the original slice's max - min."""
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
