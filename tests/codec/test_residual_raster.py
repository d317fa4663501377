"""codec.residual_raster (residual stream version 2): exact, bounded, refusing, and kept decodable."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from codec import residual, residual_raster as R2
from codec.errors import ResidualError
from tests.helpers.slices import flat, real_slice

KEPT = Path(__file__).parents[1] / "data" / "payloads"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_lossless_is_exact_and_smaller_than_version_1(name):
    v, bits, signed = real_slice(name)
    data = R2.encode_residual(v, flat(v), 0, bits, signed)
    assert R2.is_raster_stream(data)
    assert np.array_equal(R2.decode_residual(data, flat(v), 0, bits, signed), v)
    assert len(data) < len(residual.encode_residual(v, flat(v), 0, bits, signed))


@pytest.mark.parametrize("k", [1, 2, 4, 8, 16])
def test_near_lossless_keeps_its_bound_on_a_real_ct(k):
    v, bits, signed = real_slice("CT_small.dcm")
    decoded = R2.decode_residual(R2.encode_residual(v, flat(v), k, bits, signed), flat(v), k, bits, signed)
    err = np.abs(decoded - v)
    assert err.max() <= k and err.max() > 0


@pytest.mark.parametrize("shape,bits,signed", [((1, 1), 8, False), ((1, 9), 12, False), ((9, 1), 16, True),
                                                ((2, 2), 1, False), ((5, 3), 32, True), ((33, 70), 16, True)])
@pytest.mark.parametrize("k", [0, 3])
def test_odd_shapes_and_full_range_values(shape, bits, signed, k):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    v = np.random.default_rng(sum(shape) + bits).integers(lo, hi, shape, endpoint=True, dtype=np.int64)
    v.flat[0], v.flat[-1] = lo, hi
    base = np.full(shape, lo, np.int64)
    decoded = R2.decode_residual(R2.encode_residual(v, base, k, bits, signed), base, k, bits, signed)
    assert np.abs(decoded - v).max() <= k


def test_a_constant_slice_costs_almost_nothing():
    v = np.full((256, 256), 1234, np.int64)
    data = R2.encode_residual(v, np.full(v.shape, 1000, np.int64), 0, 12, False)
    assert len(data) < 200


def test_refuses_what_it_was_not_coded_with():
    v, bits, signed = real_slice("MR_small.dcm")
    data = R2.encode_residual(v, flat(v), 2, bits, signed)
    for args in [(flat(v), 1, bits, signed), (flat(v), 2, bits + 1, signed), (flat(v)[:-1], 2, bits, signed),
                 (flat(v) + 1, 2, bits, signed)]:
        with pytest.raises(ResidualError):
            R2.decode_residual(data, *args)
    with pytest.raises(ResidualError, match="flat"):
        R2.encode_residual(v, v, 0, bits, signed)


def test_corruption_is_an_error_never_a_silent_result():
    v, bits, signed = real_slice("CT_small.dcm")
    data = bytearray(R2.encode_residual(v, flat(v), 0, bits, signed))
    rng = np.random.default_rng(7)
    for _ in range(20):
        bad = bytearray(data)
        pos = int(rng.integers(80, len(bad)))
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out = R2.decode_residual(bytes(bad), flat(v), 0, bits, signed)
        except ResidualError:
            continue
        assert np.array_equal(out, v)  # a flip the coder absorbed must still give the exact values
    with pytest.raises(ResidualError):
        R2.decode_residual(bytes(data[:60]), flat(v), 0, bits, signed)


def test_the_kept_version_2_stream_still_decodes():
    """A stream written when version 2 shipped: later releases must decode it to the same values."""
    meta = json.loads((KEPT / "ct_small_lossless_v2.json").read_text())
    data = (KEPT / "ct_small_lossless_v2.bin").read_bytes()
    recon = np.full(meta["shape"], meta["base"], np.int64)
    values = R2.decode_residual(data, recon, 0, meta["bits"], meta["signed"])
    assert hashlib.sha256(values.astype("<i8").tobytes()).hexdigest() == meta["values_sha256"]


def test_a_parity_structured_slice_gets_one_weight_set_per_parity():
    """An upsampled slice (every other row repeated) is predicted per (row, column) parity."""
    v, bits, signed = real_slice("CT_small.dcm")
    up = np.repeat(v, 2, axis=0)
    data = R2.encode_residual(up, flat(up), 0, bits, signed)
    assert R2.weight_sets(data) == 4 and R2.weight_sets(R2.encode_residual(v, flat(v), 0, bits, signed)) == 1
    assert np.array_equal(R2.decode_residual(data, flat(up), 0, bits, signed), up)
