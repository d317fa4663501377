"""codec.residual_raster stream version 4 (MZR4): version 3 plus exact blocks, the EXACT_BLOCK² blocks on which the
slice is constant, coded with step 1 so that they decode exactly at any k (a constant region entered from a textured
one otherwise keeps the entry's error as it is predicted from itself)."""
import numpy as np
import pytest

from codec import residual_raster as R
from codec.errors import ResidualError
from tests.helpers.slices import flat, kept_693_crop, real_slice


def collimated(seed: int = 5) -> np.ndarray:
    """A textured 12-bit field inside a constant border and with a constant patch, like a collimated radiograph."""
    rng = np.random.default_rng(seed)
    v = np.zeros((72, 90), np.int64)
    yy, xx = np.mgrid[:40, :50]
    v[16:56, 20:70] = 1500 + 8 * yy + 5 * xx + rng.integers(-6, 7, (40, 50))
    v[30:46, 36:52] = 3000
    return v


def walk_of(data: bytes) -> int:
    """The walk a new stream runs: version 5's flags name version 4's (exact block map) or version 3's."""
    assert data[:4] == R.RH.MAGIC5
    return 4 if data[4] & 2 else 3


def exact_mask(v: np.ndarray) -> np.ndarray:
    return R._expand(R.constant_blocks(v), v.shape).astype(bool)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_constant_blocks_decode_exactly_and_the_bound_holds_elsewhere(k):
    v = collimated()
    data = R.encode_residual(v, flat(v), k, 12, False)
    assert walk_of(data) == 4
    out = R.decode_residual(data, flat(v), k, 12, False)
    mask = exact_mask(v)
    assert mask.mean() > 0.5 and np.array_equal(out[mask], v[mask])
    assert np.abs(out - v).max() <= k


def test_version_3_drifts_in_a_ct_padding_where_version_4_is_exact_at_about_the_same_size():
    v, bits, signed = real_slice("693_UNCR.dcm")
    mask = exact_mask(v)
    v3 = R.encode_residual(v, flat(v), 8, bits, signed, version=3)
    v4 = R.encode_residual(v, flat(v), 8, bits, signed)
    out3 = R.decode_residual(v3, flat(v), 8, bits, signed)
    out4 = R.decode_residual(v4, flat(v), 8, bits, signed)
    assert walk_of(v4) == 4 and mask.mean() > 0.1
    assert np.count_nonzero(out3[mask] != v[mask]) > 1000  # the drift version 4 removes
    assert np.array_equal(out4[mask], v[mask])
    assert np.sum((out4 - v) ** 2) < np.sum((out3 - v) ** 2)
    assert len(v4) < 1.015 * len(v3)  # predicted from exact neighbours, a constant region costs one entry token


def test_version_3_where_no_block_is_constant_or_the_slice_is_lossless():
    v = collimated()
    assert walk_of(R.encode_residual(v, flat(v), 0, 12, False)) == 3
    noisy = v + np.random.default_rng(1).integers(0, 2, v.shape)
    assert not R.constant_blocks(noisy).any()
    assert walk_of(R.encode_residual(noisy, flat(noisy), 3, 12, False)) == 3


def test_a_broken_block_map_is_an_error():
    v = collimated()
    data = R.encode_residual(v, flat(v), 5, 12, False, version=4)
    at = R._HEAD.size + R.weight_sets(data) * R._WEIGHTS.size
    if R.weight_sets(data) == R.INTENSITY_CLASSES:
        at += R._THRESHOLDS.size
    size = int.from_bytes(data[at : at + 4], "little")
    for bad in (data[: at + 2],  # truncated length
                data[:at] + (size + 8).to_bytes(4, "little") + data[at + 4 :],  # trailing bytes inside the map
                data[: at + 4] + bytes([data[at + 4] ^ 0xFF]) + data[at + 5 :]):  # corrupted deflate data
        with pytest.raises(ResidualError, match="exact block map"):
            R.decode_residual(bad, flat(v), 5, 12, False)


def test_the_kept_version_4_stream_still_decodes():
    """A stream written when version 4 shipped: later releases must decode it to the same values."""
    values, crop, meta = kept_693_crop("ct_693_crop_k4_v4_exact", b"MZR4", R.decode_residual)
    mask = exact_mask(crop)
    assert mask.any() and np.array_equal(values[mask], crop[mask]) and np.abs(values - crop).max() <= meta["k"]


def test_version_4_on_request_also_lossless_and_without_any_constant_block():
    v = collimated()
    noisy = v + np.random.default_rng(2).integers(0, 2, v.shape)
    for values, k in ((v, 0), (noisy, 3)):
        data = R.encode_residual(values, flat(values), k, 12, False, version=4)
        assert data[:4] == R.MAGIC4
        assert np.abs(R.decode_residual(data, flat(values), k, 12, False) - values).max() <= k
