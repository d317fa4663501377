"""codec/residual_header.py: raster residual stream version 5 (the compact header) decodes as versions 3 and 4 do,
costs fewer bytes, refuses what is corrupted, and its kept stream keeps decoding."""
from __future__ import annotations

import numpy as np
import pytest

from codec import residual_header as RH
from codec.bitstream import write_varints, zigzag
from codec import residual_raster as R
from codec.errors import ResidualError
from tests.helpers.slices import flat, decodes_of_bit_flips, kept_693_crop, real_slice


def test_varints_and_zigzag_round_trip_at_the_edges():
    values = [0, 1, -1, 63, -64, 64, 127, 128, 2**31 - 1, -(2**31), 2**62, -(2**62)]
    r = RH.reader(write_varints(zigzag(x) for x in values))
    assert [r.signed() for _ in values] == values and r.rest() == b""
    with pytest.raises(ResidualError, match="truncated"):
        RH.reader(b"\x80\x80").varint()
    with pytest.raises(ResidualError, match="too long"):
        RH.reader(b"\xff" * 11).varint()


@pytest.mark.parametrize("name,crop,k,walk", [
    ("MR_small.dcm", None, 2, 3), ("693_UNCR.dcm", (slice(192, 320), slice(100, 228)), 0, 3),
    ("693_UNCR.dcm", (slice(0, 128), slice(32, 160)), 4, 4)])
def test_same_walk_and_values_as_version_3_or_4_in_fewer_bytes(name, crop, k, walk):
    v, bits, signed = real_slice(name)
    v = np.ascontiguousarray(v if crop is None else v[crop]).astype(np.int64)
    new, decoded = R.encode_residual_decoded(v, flat(v), k, bits, signed, mixed=False)
    old = R.encode_residual(v, flat(v), k, bits, signed, version=walk)
    assert new[:4] == RH.MAGIC5 and bool(new[4] & 2) == (walk == 4)
    out = R.decode_residual(new, flat(v), k, bits, signed)
    np.testing.assert_array_equal(out, decoded)
    np.testing.assert_array_equal(out, R.decode_residual(old, flat(v), k, bits, signed))
    assert np.abs(out - v).max() <= k
    _, words = RH.parse(new, 12, 3)  # the range coder's words are the same; the header and weights shrink
    assert len(words) > 100 and old.endswith(words)
    assert len(old) - len(new) >= 40
    assert R.weight_sets(new) == R.weight_sets(old)


def test_every_truncation_and_header_damage_is_an_error():
    v, bits, signed = real_slice("693_UNCR.dcm")
    v = np.ascontiguousarray(v[0:128, 32:160]).astype(np.int64)
    data = R.encode_residual(v, flat(v), 4, bits, signed)
    h, body = RH.parse(data, 12, 3)
    head_len = len(data) - len(body)
    for cut in range(head_len):
        with pytest.raises(ResidualError):
            R.decode_residual(data[:cut], flat(v), 4, bits, signed)
    # an unknown flag bit; weight set code 3; mixer model 2 without the mixer
    for flags in (data[4] | 0x40, (data[4] & 0x03) | 0x0C, (data[4] & ~0x10) | 0x20):
        with pytest.raises(ResidualError, match="flags"):
            R.decode_residual(data[:4] + bytes([flags]) + data[5:], flat(v), 4, bits, signed)
    with pytest.raises(ResidualError, match="k=5"):
        R.decode_residual(data, flat(v), 5, bits, signed)
    with pytest.raises(ResidualError, match="recon"):
        R.decode_residual(data, flat(v) + 1, 4, bits, signed)


def test_swapped_thresholds_and_a_broken_block_map_are_errors():
    v, bits, signed = real_slice("693_UNCR.dcm")
    v = np.ascontiguousarray(v[0:128, 32:160]).astype(np.int64)
    data = R.encode_residual(v, flat(v), 4, bits, signed)
    h, body = RH.parse(data, 12, 3)
    assert h.thresholds.size == 2 and h.exact_map is not None
    swapped = RH.pack(RH.Compact(**{**h.__dict__, "thresholds": h.thresholds[::-1].copy()}))
    with pytest.raises(ResidualError, match="thresholds"):
        R.decode_residual(swapped + body, flat(v), 4, bits, signed)
    broken = RH.pack(RH.Compact(**{**h.__dict__, "exact_map": h.exact_map[:-3] + b"\x00\x00\x00"}))
    with pytest.raises(ResidualError, match="exact block map"):
        R.decode_residual(broken + body, flat(v), 4, bits, signed)


def test_bit_flips_in_the_body_are_an_error_or_stay_within_the_bound():
    v, bits, signed = real_slice("MR_small.dcm")
    data = R.encode_residual(v, flat(v), 2, bits, signed)
    for out in decodes_of_bit_flips(lambda bad: R.decode_residual(bad, flat(v), 2, bits, signed), data, ResidualError,
                                start=4, seed=5, flips=30):
        assert np.abs(out - v).max() <= 2  # the decoded values' CRC let it through: it must be right


def test_the_kept_version_5_stream_still_decodes():
    """A stream written when version 5 shipped: later releases must decode it to the same values."""
    values, crop, meta = kept_693_crop("ct_693_crop_k4_v5_compact", b"MZR5", R.decode_residual)
    assert np.abs(values - crop).max() <= meta["k"]
