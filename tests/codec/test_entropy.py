"""codec/entropy.py: integer Gaussian tables, and latent tile chunks that round-trip exactly, escapes included."""
from __future__ import annotations

import numpy as np
import pytest

from codec import entropy
from codec.errors import CodecError, EntropyError


def _tables() -> entropy.Tables:
    z_lo, z_freqs = [], []
    for mean, sigma in ((0.0, 1.0), (2.0, 3.0), (-1.0, 0.5)):
        lo, hi = int(np.floor(mean - 6 * sigma)) - 1, int(np.ceil(mean + 6 * sigma)) + 1
        z_lo.append(lo)
        z_freqs.append(entropy.gaussian_table(mean, sigma, lo, hi))
    radius = [2, 4, 8, 16]
    y_freqs = [entropy.gaussian_table(0.0, r / 6, -r, r) for r in radius]
    return entropy.Tables.from_arrays(entropy.Tables.to_arrays(z_lo, z_freqs, radius, y_freqs))


@pytest.mark.parametrize("mean,sigma,lo,hi", [(0.0, 1.0, -8, 8), (3.3, 0.4, 0, 10), (0.0, 40.0, -3, 3)])
def test_gaussian_table_is_a_full_integer_table_peaked_at_the_mean(mean, sigma, lo, hi):
    f = entropy.gaussian_table(mean, sigma, lo, hi)
    assert f.dtype.kind == "i" and len(f) == hi - lo + 1
    assert f.sum() == entropy.TABLE_TOTAL and f.min() >= 1
    if sigma < (hi - lo) / 4:  # the tails do not dominate: the most likely symbol is the one nearest the mean
        assert lo + int(np.argmax(f)) == round(mean)


def test_tile_round_trip_with_values_far_beyond_the_tables():
    tables = _tables()
    rng = np.random.default_rng(0)
    z = rng.integers(-3, 4, (4, 4, 3))
    z[0, 0, 0], z[1, 2, 1] = 500, -10_000  # beyond the z tables: escapes
    y = rng.integers(-5, 6, (16, 16, 6))
    y[3, 3, 2], y[7, 1, 0] = 123_456, -70_000  # beyond every y table
    idx = rng.integers(0, 4, y.shape)
    chunk = entropy.encode_tile(z, y, idx, tables)
    z2, state = entropy.decode_z(chunk, z.shape, tables)
    assert np.array_equal(z2, z)
    assert np.array_equal(entropy.decode_y(state, idx, tables), y)


def test_typical_latents_cost_less_than_raw_bytes():
    tables = _tables()
    rng = np.random.default_rng(1)
    y = np.clip(np.round(rng.normal(0, 0.5, (16, 16, 8))), -2, 2).astype(np.int64)
    chunk = entropy.encode_tile(np.zeros((4, 4, 3), np.int64), y, np.zeros(y.shape, np.int64), tables)
    assert len(chunk) < y.size // 4  # well under 2 bits a latent for a narrow distribution


def test_damaged_chunks_raise_entropy_errors():
    tables = _tables()
    z = np.zeros((2, 2, 3), np.int64)
    y = np.zeros((8, 8, 4), np.int64)
    y[0, 0, 0] = 1000  # one escape
    idx = np.zeros(y.shape, np.int64)
    chunk = entropy.encode_tile(z, y, idx, tables)
    with pytest.raises(EntropyError, match="truncated"):
        entropy.decode_z(chunk[:3], z.shape, tables)
    with pytest.raises(EntropyError, match="trailing"):
        entropy.decode_z(chunk + b"\x00", z.shape, tables)
    assert issubclass(EntropyError, CodecError)  # callers may catch every codec error as one
