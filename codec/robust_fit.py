"""The residual layers' predictor fit: L1 regression by iteratively reweighted least squares.

L1 rather than L2 so a few strong edges cannot pull a predictor away from the bulk of the pixels (synthetic images
and sharp borders otherwise ruin it). Encoder side only: the integer weights it leads to travel in the stream.
"""
from __future__ import annotations

import numpy as np


def l1_fit(x: np.ndarray, y: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Float weights w that make x @ w close to y in the L1 sense (zeros if the first solve already fails)."""
    sw, w = np.ones(y.size), np.zeros(x.shape[1])
    for _ in range(iterations):
        # einsum, not BLAS: multi-threaded BLAS on a loaded 2-core machine is 100x slower for these sizes
        xw = x * sw[:, None]
        gram = np.einsum("ni,nj->ij", xw, x, optimize=False)
        gram[np.diag_indices_from(gram)] += 1e-6 * (np.trace(gram) / len(gram) + 1.0)
        try:
            w_new = np.linalg.solve(gram, np.einsum("ni,n->i", xw, y, optimize=False))
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(w_new)):
            break
        w = w_new
        sw = 1.0 / np.maximum(np.abs(y - np.einsum("ni,i->n", x, w, optimize=False)), 1.0)
    return w
