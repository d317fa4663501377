"""Thumbnails and the amplified difference of the audit's worst slices."""
import numpy as np

from quality import images


def test_thumbnail_keeps_the_longer_side_within_the_size():
    values = np.arange(600 * 300, dtype=np.uint16).reshape(600, 300)
    small = images.thumbnail(values, size=256)
    assert small.shape == (200, 100) and small.dtype == np.float64
    assert small[1, 1] == values[3, 3]
    assert images.thumbnail(values[:100, :100]).shape == (100, 100)


def test_difference_is_absolute_and_stretched_to_its_largest_error():
    original = np.array([[10, 20], [30, 40]], dtype=np.int16)
    decoded = np.array([[12, 20], [29, 40]], dtype=np.int16)
    diff, (lo, hi) = images.difference(original, decoded)
    assert diff.tolist() == [[2, 0], [1, 0]] and (lo, hi) == (0, 2)
    _, exact_range = images.difference(original, original)
    assert exact_range == (0, 1)
    assert images.display_range(original) == (10.0, 40.0)
