"""codec.residual_raster stream version 3 (MZR3; new streams are version 5 over this walk or version 4's): exact, bounded, smaller than version 2 on
CT, refusing corruption, kept decodable; version 2 streams keep decoding alongside."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from codec import residual_raster as R
from codec.errors import ResidualError
from tests.helpers.slices import flat, real_slice

KEPT = Path(__file__).parents[1] / "data" / "payloads"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "693_UNCR.dcm"])
@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_round_trip_on_real_slices_keeps_the_bound(name, k):
    v, bits, signed = real_slice(name)
    data = R.encode_residual(v, flat(v), k, bits, signed, version=3)
    assert data[:4] == R.MAGIC3
    err = np.abs(R.decode_residual(data, flat(v), k, bits, signed) - v)
    assert err.max() <= k
    if k == 0:
        assert err.max() == 0


@pytest.mark.parametrize("k", [0, 2])
def test_smaller_than_version_2_on_a_ct_and_both_decode_the_same(k):
    v, bits, signed = real_slice("693_UNCR.dcm")
    w = R.fit_weights(v, k)
    v3 = R.encode_residual(v, flat(v), k, bits, signed, w, version=3)
    v2 = R.encode_residual(v, flat(v), k, bits, signed, w, version=2)
    assert v2[:4] == R.MAGIC and R.is_raster_stream(v2) and R.is_raster_stream(v3)
    assert len(v3) < 0.97 * len(v2)
    assert np.array_equal(R.decode_residual(v3, flat(v), k, bits, signed),
                          R.decode_residual(v2, flat(v), k, bits, signed))


def test_large_residuals_of_both_signs_and_full_range():
    """Residuals far beyond the direct tokens, where version 3's signs are coded apart from the raw bits."""
    rng = np.random.default_rng(3)
    v = rng.integers(-(1 << 15), 1 << 15, (40, 50), dtype=np.int64)
    v[::3] = -(1 << 15)
    v[:, ::4] = (1 << 15) - 1
    for k in (0, 7):
        decoded = R.decode_residual(R.encode_residual(v, flat(v), k, 16, True), flat(v), k, 16, True)
        assert np.abs(decoded - v).max() <= k


def test_corruption_is_an_error_never_a_silent_result():
    v, bits, signed = real_slice("MR_small.dcm")
    data = R.encode_residual(v, flat(v), 2, bits, signed, version=3)
    rng = np.random.default_rng(11)
    for _ in range(20):
        bad = bytearray(data)
        pos = int(rng.integers(80, len(bad)))
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out = R.decode_residual(bytes(bad), flat(v), 2, bits, signed)
        except ResidualError:
            continue
        assert np.abs(out - v).max() <= 2
    with pytest.raises(ResidualError):
        R.decode_residual(b"MZR6" + data[4:], flat(v), 2, bits, signed)
    with pytest.raises(ResidualError):
        R.encode_residual(v, flat(v), 2, bits, signed, version=6)


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
    v, bits, signed = real_slice("693_UNCR.dcm")
    crop = np.ascontiguousarray(v[192:320, 100:228])
    predictor = R.fit_predictor(crop, 0)
    assert len(predictor.weights) == 3
    with pytest.raises(ResidualError):
        R.encode_residual(crop, flat(crop), 0, bits, signed, predictor, version=2)
    data = bytearray(R.encode_residual(crop, flat(crop), 0, bits, signed, predictor, version=3))
    at = R._HEAD.size + 3 * R._WEIGHTS.size  # the two thresholds: swap them
    data[at : at + 16] = data[at + 8 : at + 16] + data[at : at + 8]
    with pytest.raises(ResidualError, match="thresholds"):
        R.decode_residual(bytes(data), flat(crop), 0, bits, signed)
