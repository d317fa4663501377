"""The residual layers' predictor fit: L1 regression by iteratively reweighted least squares.

L1 rather than L2 so a few strong edges cannot pull a predictor away from the bulk of the pixels (synthetic images
and sharp borders otherwise ruin it). Encoder side only: the integer weights it leads to travel in the stream, so
the fit may change between releases without breaking a stream; it must give the same weights on every machine,
hence fixed-order sums (a compiled loop, not BLAS, whose summation order depends on the CPU and its threads).
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _normal_equations(x, sw, y):
    """(x' diag(sw) x, x' diag(sw) y), summed in row order."""
    n, m = x.shape
    gram = np.zeros((m, m))
    rhs = np.zeros(m)
    for r in range(n):
        s = sw[r]
        for i in range(m):
            a = x[r, i] * s
            rhs[i] += a * y[r]
            for j in range(i + 1):
                gram[i, j] += a * x[r, j]
    for i in range(m):
        for j in range(i):
            gram[j, i] = gram[i, j]
    return gram, rhs


@nb.njit(cache=True)
def _reweight(x, y, w, sw):
    """sw = 1 / max(|y - x w|, 1), the IRLS weights of an L1 fit."""
    n, m = x.shape
    for r in range(n):
        p = 0.0
        for i in range(m):
            p += x[r, i] * w[i]
        sw[r] = 1.0 / max(abs(y[r] - p), 1.0)


def l1_fit(x: np.ndarray, y: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Float weights w that make x @ w close to y in the L1 sense (zeros if the first solve already fails)."""
    x, y = np.ascontiguousarray(x, np.float64), np.ascontiguousarray(y, np.float64)
    sw, w = np.ones(y.size), np.zeros(x.shape[1])
    for _ in range(iterations):
        gram, rhs = _normal_equations(x, sw, y)
        gram[np.diag_indices_from(gram)] += 1e-6 * (np.trace(gram) / len(gram) + 1.0)
        try:
            w_new = np.linalg.solve(gram, rhs)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(w_new)):
            break
        w = w_new
        _reweight(x, y, w, sw)
    return w
