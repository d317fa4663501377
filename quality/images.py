"""The pixel side of the audit's worst-slice pictures: thumbnails and the amplified difference, as arrays.

Rendering them (matplotlib, PNG, HTML) is flows.audit_report's job; the arrays and their display ranges are here.
"""
from __future__ import annotations

import math

import numpy as np

THUMB_SIZE = 256


def thumbnail(values: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """Every n-th pixel along both axes, so that the longer side is at most `size` (float64)."""
    step = max(1, math.ceil(max(values.shape) / size))
    return values[::step, ::step].astype(np.float64)


def display_range(values: np.ndarray) -> tuple[float, float]:
    """(lowest, highest) stored value: the grey scale a slice is shown with."""
    return float(np.min(values)), float(np.max(values))


def difference(original: np.ndarray, decoded: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """|original - decoded| and its display range, stretched so that the largest error is white: an error of
    2 stored values stays visible."""
    diff = np.abs(original.astype(np.int64) - decoded.astype(np.int64))
    return diff, (0, max(1, int(diff.max())))
