"""codec/mixer_kernels.py: the integer tables every coding probability comes from, and the binary arithmetic coder."""
from __future__ import annotations

import hashlib

import numba as nb
import numpy as np

from codec import mixer_kernels as MK


def test_squash_and_stretch_are_fixed_integer_tables():
    """A stream's probabilities come from these tables: any change to them breaks every kept context-mixed stream,
    so their content is pinned (and they must stay monotone inverses)."""
    assert MK.SQUASH.dtype == np.int64 and MK.STRETCH.dtype == np.int64
    assert np.all(np.diff(MK.SQUASH) >= 0) and MK.SQUASH[0] == 1 and MK.SQUASH[-1] == 4094
    assert np.all(np.diff(MK.STRETCH) >= 0)
    for p in (1, 100, 2047, 2048, 3000, 4094):  # stretch(p) is the smallest d with squash(d) >= p
        d = MK.STRETCH[p]
        assert MK.SQUASH[d + 2048] >= p and (d == -2047 or MK.SQUASH[d - 1 + 2048] < p)
    digest = hashlib.sha256(MK.SQUASH.astype("<i8").tobytes() + MK.STRETCH.astype("<i8").tobytes()).hexdigest()
    assert digest[:16] == "e7f55d5c333aca72"


def test_the_counters_layout_is_a_permutation_of_the_bins():
    """BIN_SLOT only places the counters (a pixel's bins side by side); two bins in one slot would merge them."""
    assert sorted(MK.BIN_SLOT.tolist()) == list(range(MK.N_BIN))
    for e in (0, 5, 12):  # one class's decisions lie within one short stretch of the row
        slots = MK.BIN_SLOT[[MK.FIRST + e, MK.UP + e, MK.DOWN + e, MK.MANT + e * 8 + 1, MK.MANT + e * 8 + 7]]
        assert slots.max() - slots.min() < 16


@nb.njit(cache=True)
def _run(enc, bits, probs, cs, buf):
    for i in range(len(bits)):
        bits[i] = MK._code(enc, bits[i], probs[i], cs, buf)


def test_the_arithmetic_coder_round_trips_at_every_probability():
    rng = np.random.default_rng(3)
    probs = rng.integers(1, 4096, 20000).astype(np.int64)
    probs[:50] = 1  # the extremes, against the odds
    probs[50:100] = 4095
    bits = (rng.integers(0, 4096, len(probs)) < probs).astype(np.int64)
    bits[:50], bits[50:100] = 1, 0
    cs, buf = MK.encoder_state(), np.zeros(len(bits) * 2 + 64, np.uint8)
    _run(1, bits.copy(), probs, cs, buf)
    data = buf[: MK.flush(cs, buf)].copy()
    ideal = -np.sum(np.log2(np.where(bits == 1, probs, 4096 - probs) / 4096)) / 8
    assert 0.99 * ideal <= len(data) <= 1.01 * ideal + 8
    out = np.zeros_like(bits)
    _run(0, out, probs, MK.decoder_state(data), data)
    np.testing.assert_array_equal(out, bits)


def test_one_half_costs_one_bit():
    bits = np.random.default_rng(0).integers(0, 2, 8000).astype(np.int64)
    cs, buf = MK.encoder_state(), np.zeros(2000, np.uint8)
    _run(1, bits.copy(), np.full(len(bits), 2048, np.int64), cs, buf)
    assert MK.flush(cs, buf) <= 1001
