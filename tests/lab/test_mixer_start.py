"""lab.mixer_start: a mixer state learned by coding slices, and real streams started from it, leaving the product's
fresh start untouched."""
import numpy as np

from codec import mixer_kernels as MK
from codec import residual_mixed as RM
from codec import residual_raster as R
from lab import mixer_start
from lab.realdata import find
from tests.helpers.slices import flat, real_slice


def test_a_learned_state_changes_the_stream_and_the_product_still_starts_fresh():
    real_start = MK.new_state
    state = mixer_start.learn([find("CT_small.dcm")], ks=(0,))
    fresh = MK.new_state(RM.MODEL)
    assert not np.array_equal(state[2], fresh[2]) and state[1].max() > 0  # weights moved, counters counted
    v, bits, signed = real_slice("MR_small.dcm")
    v = v.astype(np.int64)
    product = len(R.encode_residual(v, np.full(v.shape, int(v.min()), np.int64), 2, bits, signed, mixed=True))
    assert mixer_start.coded_bytes(v, bits, signed, 2) == product
    assert mixer_start.coded_bytes(v, bits, signed, 2, state) != product
    assert mixer_start.coded_bytes(v, bits, signed, 2, mixer_start.capped(state, 0)) != product
    assert MK.new_state is real_start
    data = R.encode_residual(v, flat(v), 2, bits, signed)  # the product's fresh start, so its decoder reads it
    assert np.abs(R.decode_residual(data, flat(v), 2, bits, signed) - v).max() <= 2
