"""codec/residual_mixed.py: raster residual stream version 5 coded by the context mixer (flag bit 4) decodes to the
range-coded walk's values in fewer bytes, refuses what is corrupted, is chosen by slice size, and its kept stream
keeps decoding."""
from __future__ import annotations

import numpy as np
import pytest

from codec import residual_header as RH
from codec import residual_mixed as RM
from codec import residual_raster as R
from codec.errors import ResidualError
from tests.helpers.slices import KEPT, decodes_of_bit_flips, flat, kept_693_crop, real_slice


@pytest.mark.parametrize("name,crop,k,gain", [
    ("693_UNCR.dcm", None, 0, 0.97),  # measured 0.949
    ("693_UNCR.dcm", None, 8, 0.92),  # 0.887
    ("693_UNCR.dcm", (slice(0, 128), slice(32, 160)), 4, 0.85),  # air and exact blocks: 394 against 505 bytes
    ("MR_small.dcm", None, 2, 0.995)])  # 0.984
def test_same_values_as_the_range_coded_walk_in_fewer_bytes(name, crop, k, gain):
    v, bits, signed = real_slice(name)
    v = np.ascontiguousarray(v if crop is None else v[crop]).astype(np.int64)
    mixed, decoded = R.encode_residual_decoded(v, flat(v), k, bits, signed)
    ranged, decoded_ranged = R.encode_residual_decoded(v, flat(v), k, bits, signed, mixed=False)
    assert mixed[:4] == RH.MAGIC5 and mixed[4] & 16 and not ranged[4] & 16
    np.testing.assert_array_equal(decoded, decoded_ranged)  # the walk is the same; only the coder differs
    np.testing.assert_array_equal(R.decode_residual(mixed, flat(v), k, bits, signed), decoded)
    assert np.abs(decoded - v).max() <= k
    assert len(mixed) < gain * len(ranged)


def test_lossless_16_bit_extremes_round_trip():
    """Full-range noise puts |q| at its largest exponent class; a constant slice codes nothing but zeros."""
    rng = np.random.default_rng(1)
    for v, signed in ((rng.integers(-32768, 32768, (40, 50)), True), (np.full((33, 17), 65535), False),
                      (rng.integers(0, 2, (64, 64)) * 65535, False)):
        v = v.astype(np.int64)
        data = R.encode_residual(v, flat(v), 0, 16, signed, mixed=True)
        np.testing.assert_array_equal(R.decode_residual(data, flat(v), 0, 16, signed), v)


def test_slices_over_the_size_limit_keep_the_range_coder():
    small = np.zeros((8, 8), np.int64)
    assert R.encode_residual(small, flat(small), 0, 12, False)[4] & 16
    big = np.zeros((1, RM.MAX_PIXELS + 1), np.int64)
    assert not R.encode_residual(big, flat(big), 0, 12, False)[4] & 16
    with pytest.raises(ResidualError, match="version 5"):
        R.encode_residual(small, flat(small), 0, 12, False, version=3, mixed=True)


@pytest.mark.parametrize("model", RM.MODELS)
def test_truncation_and_bit_flips_are_errors_or_stay_within_the_bound(model):
    v, bits, signed = real_slice("MR_small.dcm")
    data = R.encode_residual(v, flat(v), 2, bits, signed, mixer=model)
    assert data[4] & 0x30 == (0x10 if model == 1 else 0x30)
    _, body = RH.parse(data, 12, 3)
    for cut in (1, len(body) // 2, len(body) - 1):
        with pytest.raises(ResidualError):
            R.decode_residual(data[: len(data) - cut], flat(v), 2, bits, signed)
    outs = list(decodes_of_bit_flips(lambda bad: R.decode_residual(bad, flat(v), 2, bits, signed), data,
                                     ResidualError, start=len(data) - len(body), seed=7, flips=40))
    for out in outs:
        assert np.abs(out - v).max() <= 2  # the decoded values' CRC let it through: it must be right
    unflagged = data[:4] + bytes([data[4] & ~16]) + data[5:]  # the same bytes read as range-coder words
    other_model = data[:4] + bytes([data[4] ^ 0x20]) + data[5:]  # ... or by the other mixer model
    for bad in (unflagged, other_model):
        with pytest.raises(ResidualError):
            R.decode_residual(bad, flat(v), 2, bits, signed)


@pytest.mark.parametrize("stem,model", [("ct_693_crop_k4_v5_mixed", 1), ("ct_693_crop_k4_v5_mixer2", 2)])
def test_the_kept_context_mixed_streams_still_decode_and_re_encode(stem, model):
    """Streams written when each mixer model shipped: later releases must decode them to the same values, and
    the model still codes those values to the same bytes (its probabilities are unchanged)."""
    values, crop, meta = kept_693_crop(stem, b"MZR5", R.decode_residual)
    assert np.abs(values - crop).max() <= meta["k"]
    kept = (KEPT / f"{stem}.bin").read_bytes()
    assert kept[4] & 0x30 == (0x10 if model == 1 else 0x30)
    assert R.encode_residual(crop, flat(crop), meta["k"], meta["bits"], meta["signed"], mixer=model) == kept


@pytest.mark.parametrize("k,gain", [(0, 0.985), (2, 0.97)])  # measured 0.972, 0.950
def test_mixer_model_2_codes_ct_in_fewer_bytes_than_model_1(k, gain):
    """The texture model and the fast counters pay on a 512² CT; both models decode to the walk's values."""
    v, bits, signed = real_slice("693_UNCR.dcm")
    v = np.ascontiguousarray(v).astype(np.int64)
    one, decoded = R.encode_residual_decoded(v, flat(v), k, bits, signed, mixer=1)
    two = R.encode_residual(v, flat(v), k, bits, signed)
    assert two[4] & 0x30 == 0x30 and one[4] & 0x30 == 0x10
    for data in (one, two):
        np.testing.assert_array_equal(R.decode_residual(data, flat(v), k, bits, signed), decoded)
    assert len(two) < gain * len(one)


def test_an_unknown_mixer_model_is_refused():
    small = np.zeros((8, 8), np.int64)
    with pytest.raises(ResidualError, match="model"):
        R.encode_residual(small, flat(small), 0, 12, False, mixer=3)
