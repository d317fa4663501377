"""Per-pixel record of the version 2 residual coder on one slice: what a learned residual model would see and beat.

Runs the unchanged version 2 walk (codec/residual_raster.py) and keeps, for every pixel, the prediction, the
activity context, the sub-predictions, the quantised residual q and the bits the adaptive coder spent on it
(-log2 of its token's probability + its raw bits). Causal features for a learned model are computed from these.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codec import raster_kernels as K
from codec.raster_fit import fit_predictor
from codec.residual_raster import _Walk


@dataclass
class Record:
    values: np.ndarray  # the slice (int64)
    decoded: np.ndarray  # what the decoder reproduces (|values - decoded| <= k)
    pred: np.ndarray
    ctx: np.ndarray
    sub: np.ndarray  # (rows, cols, N_SUB)
    q: np.ndarray
    bits: np.ndarray  # adaptive coder's code length per pixel (ideal, from its integer tables)
    k: int
    bits_stored: int


def record(values: np.ndarray, k: int, bits_stored: int, signed: bool) -> Record:
    v = np.ascontiguousarray(values, dtype=np.int64)
    rows, cols = v.shape
    predictor = fit_predictor(v, k, intensity=False)
    st = _Walk(v.shape, k, bits_stored, signed, int(v[0, 0]))
    out = {name: np.zeros((rows, cols), np.int64) for name in ("pred", "ctx", "q")}
    sub = np.zeros((rows, cols, K.N_SUB), np.int64)
    bits = np.zeros((rows, cols), np.float64)
    for t in st.wavefronts():
        n = st.predict(t, predictor)
        K.quantise(t, v, st.rows, st.cols, k, st.step, st.pred, n, st.q, st.tok, st.nraw, st.raw)
        probs = st.probabilities(n)
        i0, _ = K.bounds(t, rows, cols)
        ii = np.arange(i0, i0 + n)
        jj = t - 2 * ii
        p_tok = probs[np.arange(n), st.tok[:n]] / probs.sum(axis=1)
        bits[ii, jj] = -np.log2(p_tok) + st.nraw[:n]
        out["pred"][ii, jj], out["ctx"][ii, jj], out["q"][ii, jj] = st.pred[:n], st.ctx[:n], st.q[:n]
        sub[ii, jj] = st.sub[:n]
        st.commit(t)
    return Record(v, st.decoded().copy(), out["pred"], out["ctx"], sub, out["q"], bits, k, bits_stored)


_NEAR = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0))  # W, N, NW, NE, WW, NN


def _slog(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log2(1.0 + np.abs(x))


def features(rec: Record) -> np.ndarray:
    """Causal per-pixel features (rows*cols, F) as float32: what the decoder knows before the pixel."""
    rows, cols = rec.values.shape
    step = 2 * rec.k + 1
    pad = 2
    D = np.pad(rec.decoded, pad, mode="edge").astype(np.float64)
    Q = np.pad(rec.q, pad).astype(np.float64)
    D[:pad] = rec.decoded[0, 0]

    def at(A, di, dj):
        return A[pad + di : pad + di + rows, pad + dj : pad + dj + cols]

    w, n, nw, ne = (at(D, *o) for o in _NEAR[:4])
    qn = [at(Q, *o) for o in _NEAR]
    e = [np.abs(x) for x in qn]
    act = 2 * (e[0] + e[1]) + e[2] + e[3] + e[4] + e[5] + (np.abs(w - nw) + np.abs(n - nw) + np.abs(n - ne)) // step
    pred = rec.pred.astype(np.float64)
    lo, hi = rec.values.min(), rec.values.max()
    cols_ = [np.log2(1.0 + act)]
    cols_ += [_slog(x) for x in qn]
    cols_ += [_slog((rec.sub[..., s] - pred) / step) for s in range(rec.sub.shape[-1])]
    cols_ += [_slog((w - nw) / step), _slog((n - nw) / step), _slog((ne - n) / step)]
    cols_ += [(pred - lo) / max(hi - lo, 1), np.full_like(pred, np.log2(step)), np.full_like(pred, rec.bits_stored / 16)]
    return np.stack([c.ravel() for c in cols_], axis=1).astype(np.float32)
