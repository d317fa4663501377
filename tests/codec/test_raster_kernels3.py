"""codec.raster_kernels3: version 3's table kernels give exact integers, the tables of the counts as they stand."""
import numpy as np


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
