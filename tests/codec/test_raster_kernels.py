"""codec.raster_kernels: the wavefront order visits every pixel once, after all of its neighbours."""
import numpy as np
import pytest

from codec import raster_kernels as K


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2), (5, 3), (3, 8), (64, 37)])
def test_wavefronts_cover_every_pixel_once_after_its_neighbours(shape):
    rows, cols = shape
    order = np.full(shape, -1)
    for t in range(K.n_wavefronts(rows, cols)):
        i0, i1 = K.bounds(t, rows, cols)
        for i in range(i0, i1 + 1):
            j = t - 2 * i
            assert 0 <= j < cols and order[i, j] == -1
            order[i, j] = t
    assert (order >= 0).all()
    for di, dj in K.OFFSETS:
        for i in range(rows):
            for j in range(cols):
                if 0 <= i + di < rows and 0 <= j + dj < cols:
                    assert order[i + di, j + dj] < order[i, j]


def test_offsets_stay_inside_the_padding():
    assert (np.abs(K.OFFSETS) <= K.PAD).all() and (K.OFFSETS[:, 0] <= 0).all()
    assert tuple(K.OFFSETS[1]) == (-1, 0)  # N: the reference the fitted weights are relative to


def test_token_split_and_join_are_inverse():
    for u in list(range(0, 300)) + [2**15 - 1, 2**16, 2**31 + 5, 2**33 - 1]:
        token, nraw, raw = K._split(u)
        assert K.raw_bits(token) == nraw and 0 <= raw < max(1, 1 << nraw)
        assert token < K.n_tokens(34) and K._join(token, raw) == u
