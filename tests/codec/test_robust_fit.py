"""codec.robust_fit: the L1 fit ignores a few gross outliers that pull a least-squares fit away."""
import numpy as np

from codec.robust_fit import l1_fit


def test_l1_fit_recovers_weights_despite_outliers():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 3))
    w_true = np.array([0.5, -1.25, 2.0])
    y = x @ w_true + rng.normal(scale=0.05, size=2000)
    y[:40] += 500.0  # 2 % gross outliers, all on one side
    w = l1_fit(x, y, iterations=6)
    ls = np.linalg.lstsq(x, y, rcond=None)[0]
    assert np.abs(w - w_true).max() < 0.5 < np.abs(ls - w_true).max()


def test_a_singular_system_gives_finite_weights():
    x = np.zeros((100, 2))
    assert np.all(np.isfinite(l1_fit(x, np.ones(100))))
