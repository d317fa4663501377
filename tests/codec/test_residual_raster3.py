"""codec.residual_raster stream version 3 (MZR3, what new streams are): exact, bounded, smaller than version 2 on
CT, refusing corruption, kept decodable; version 2 streams keep decoding alongside."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from codec import residual_raster as R
from codec.errors import ResidualError
from lab.realdata import find

KEPT = Path(__file__).parents[1] / "data" / "payloads"


def _real(name: str):
    ds = pydicom.dcmread(find(name))
    v = ds.pixel_array.reshape((-1, ds.Rows, ds.Columns))[0].astype(np.int64)
    return v, int(ds.BitsStored), int(ds.PixelRepresentation) == 1


def _flat(v):
    return np.full(v.shape, int(v.min()), np.int64)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "693_UNCR.dcm"])
@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_round_trip_on_real_slices_keeps_the_bound(name, k):
    v, bits, signed = _real(name)
    data = R.encode_residual(v, _flat(v), k, bits, signed)
    assert data[:4] == R.MAGIC3
    err = np.abs(R.decode_residual(data, _flat(v), k, bits, signed) - v)
    assert err.max() <= k
    if k == 0:
        assert err.max() == 0


@pytest.mark.parametrize("k", [0, 2])
def test_smaller_than_version_2_on_a_ct_and_both_decode_the_same(k):
    v, bits, signed = _real("693_UNCR.dcm")
    w = R.fit_weights(v, k)
    v3 = R.encode_residual(v, _flat(v), k, bits, signed, w)
    v2 = R.encode_residual(v, _flat(v), k, bits, signed, w, version=2)
    assert v2[:4] == R.MAGIC and R.is_raster_stream(v2) and R.is_raster_stream(v3)
    assert len(v3) < 0.97 * len(v2)
    assert np.array_equal(R.decode_residual(v3, _flat(v), k, bits, signed),
                          R.decode_residual(v2, _flat(v), k, bits, signed))


def test_large_residuals_of_both_signs_and_full_range():
    """Residuals far beyond the direct tokens, where version 3's signs are coded apart from the raw bits."""
    rng = np.random.default_rng(3)
    v = rng.integers(-(1 << 15), 1 << 15, (40, 50), dtype=np.int64)
    v[::3] = -(1 << 15)
    v[:, ::4] = (1 << 15) - 1
    for k in (0, 7):
        decoded = R.decode_residual(R.encode_residual(v, _flat(v), k, 16, True), _flat(v), k, 16, True)
        assert np.abs(decoded - v).max() <= k


def test_corruption_is_an_error_never_a_silent_result():
    v, bits, signed = _real("MR_small.dcm")
    data = R.encode_residual(v, _flat(v), 2, bits, signed)
    rng = np.random.default_rng(11)
    for _ in range(20):
        bad = bytearray(data)
        pos = int(rng.integers(80, len(bad)))
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out = R.decode_residual(bytes(bad), _flat(v), 2, bits, signed)
        except ResidualError:
            continue
        assert np.abs(out - v).max() <= 2
    with pytest.raises(ResidualError):
        R.decode_residual(b"MZR4" + data[4:], _flat(v), 2, bits, signed)
    with pytest.raises(ResidualError):
        R.encode_residual(v, _flat(v), 2, bits, signed, version=4)


def test_the_kept_version_3_stream_still_decodes():
    """A stream written when version 3 shipped: later releases must decode it to the same values."""
    meta = json.loads((KEPT / "ct_small_lossless_v3.json").read_text())
    data = (KEPT / "ct_small_lossless_v3.bin").read_bytes()
    assert data[:4] == b"MZR3"
    recon = np.full(meta["shape"], meta["base"], np.int64)
    values = R.decode_residual(data, recon, 0, meta["bits"], meta["signed"])
    assert hashlib.sha256(values.astype("<i8").tobytes()).hexdigest() == meta["values_sha256"]


def test_the_kept_version_3_stream_with_intensity_class_weights_still_decodes():
    meta = json.loads((KEPT / "ct_693_crop_lossless_v3_levels.json").read_text())
    data = (KEPT / "ct_693_crop_lossless_v3_levels.bin").read_bytes()
    assert data[:4] == b"MZR3" and R.weight_sets(data) == 3
    recon = np.full(meta["shape"], meta["base"], np.int64)
    values = R.decode_residual(data, recon, 0, meta["bits"], meta["signed"])
    assert hashlib.sha256(values.astype("<i8").tobytes()).hexdigest() == meta["values_sha256"]


def test_intensity_class_weights_only_in_version_3_and_their_thresholds_are_checked():
    v, bits, signed = _real("693_UNCR.dcm")
    crop = np.ascontiguousarray(v[192:320, 100:228])
    predictor = R.fit_predictor(crop, 0)
    assert len(predictor.weights) == 3
    with pytest.raises(ResidualError):
        R.encode_residual(crop, _flat(crop), 0, bits, signed, predictor, version=2)
    data = bytearray(R.encode_residual(crop, _flat(crop), 0, bits, signed, predictor))
    at = R._HEAD.size + 3 * R._WEIGHTS.size  # the two thresholds: swap them
    data[at : at + 16] = data[at + 8 : at + 16] + data[at : at + 8]
    with pytest.raises(ResidualError, match="thresholds"):
        R.decode_residual(bytes(data), _flat(crop), 0, bits, signed)


def test_exact_floor_division_of_the_table_kernels():
    """raster_kernels3's float-reciprocal division is the integer floor, also next to exact multiples."""
    from codec.raster_kernels3 import _floordiv

    rng = np.random.default_rng(5)
    for _ in range(20000):
        den = int(rng.integers(1, 1 << int(rng.integers(1, 41))))
        q = int(rng.integers(0, ((1 << 52) - 1) // den + 1))
        for num in (q * den - 1, q * den, q * den + den - 1, int(rng.integers(0, 1 << 52))):
            if 0 <= num < 1 << 52:
                assert _floordiv(num, den, 1.0 / den) == num // den, (num, den)


def test_probability_rows_are_the_back_off_tables_of_the_current_counts():
    """Whatever the kernel caches and rebuilds, each row is the table of the counts as they stand (after halving):
    context counts * SCALE + the PRIOR2 share of version 2's table of the pooled bucket + 1."""
    from codec import raster_kernels as K
    from codec import raster_kernels3 as K3

    rng = np.random.default_rng(9)
    NA, A, C = K.N_CTX, 68, K.N_CTX * K3.N_STATE
    counts, pooled = np.zeros((C, A), np.int64), np.zeros((NA, A), np.int64)
    tab_a, tab_sum, table = np.zeros((NA, A), np.int64), np.ones(NA, np.int64), np.zeros((C, A), np.int64)
    dirty, dirty_a, rebuilt = np.ones(C, np.bool_), np.ones(NA, np.bool_), np.zeros(NA, np.bool_)
    out = np.zeros((300, A))
    halved = False
    for step in range(150):
        n = int(rng.integers(0, 300))
        ctx, state = rng.integers(0, NA, n), rng.integers(0, K3.N_STATE, n)
        if step % 2:  # a busy context, so that its counts pass HALVE
            ctx, state = ctx * 0, state * 0
        before = counts.sum()
        K3.probability_rows(counts, pooled, tab_a, tab_sum, table, dirty, dirty_a, rebuilt, ctx, state, n, out)
        halved = halved or counts.sum() < before
        assert np.array_equal(pooled, counts.reshape(NA, K3.N_STATE, A).sum(1))
        near = np.array([pooled[max(a - 1, 0) : a + 2].sum(0) for a in range(NA)])
        tab = pooled * K.SCALE + near * (K.PRIOR_MASS * K.SCALE) // np.maximum(near.sum(1), 1)[:, None] + 1
        prior = tab * (K3.PRIOR2 * K.SCALE) // tab.sum(1)[:, None]
        want = counts * K.SCALE + np.repeat(prior, K3.N_STATE, axis=0) + 1
        assert np.array_equal(out[:n], want[ctx * K3.N_STATE + state].astype(np.float64))
        tok = np.minimum(rng.geometric(0.2, n) - 1, A - 1)
        np.add.at(counts, (ctx * K3.N_STATE + state, tok), 1)
        np.add.at(pooled, (ctx, tok), 1)
        dirty[ctx * K3.N_STATE + state] = True
        dirty_a[ctx] = True
    assert halved
