"""The raster residual layer's predictor, fitted by the encoder and sent in the stream (codec/residual_raster.py).

One set of 12 integer weights for the slice; or one per pixel parity class (row, column parity) on interleaved or
upsampled images; or (stream version 3) one per intensity class of the pixel's (W + N) / 2 split at two thresholds,
where noise-dominated regions (air, background) want a smoothing predictor and structured ones an extrapolating one.
Each layout is kept only when a proxy of the coded size says it pays for its extra weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from codec import raster_kernels as K
from codec.robust_fit import l1_fit

_WEIGHT_BITS = 16  # rough cost of one sent weight when choosing between layouts
_PARITY_GAIN = 0.95  # four parity sets only when the proxy says they save at least 5 %
# three intensity sets only when the proxy saves 2 %: on 693 / J2K_pixelrep / wg04 CT2 / a petct CT (proxy 0.88 /
# 0.80 / 0.97 / 0.94) they save 2.2 / 4.3 / 1.4 / 0.8 % of the version 3 stream; on CT_small and MR_small (0.99)
# they would cost 0.7 / 2.7 %
_INTENSITY_GAIN = 0.98
INTENSITY_CLASSES = 3
# where the class bounds may fall, as quantiles of the sampled (W + N) / 2: the coded size is sensitive to them (on
# 693 the 1/3, 2/3 split at 26 / 367 saved 0.4 %, at 25 / 518 2.2 %), so the encoder tries these and keeps the one
# the proxy likes best (it picked the best or near-best split on five CT/MR slices); ~25 ms on a 512² slice
_SPLITS = ((1 / 3, 2 / 3), (1 / 4, 1 / 2), (1 / 2, 3 / 4), (1 / 5, 3 / 5), (2 / 5, 4 / 5))
_SAMPLE = 6000  # pixels each weight set is fitted on


@dataclass(frozen=True)
class Predictor:
    weights: np.ndarray  # (sets, N_NEIGHBOURS) int64: 1, 4 (parity) or INTENSITY_CLASSES sets
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # intensity class bounds

    @property
    def by_parity(self) -> bool:
        return len(self.weights) == 4 and not self.thresholds.size


def neighbours(padded: np.ndarray, ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
    """The causal neighbours of pixels (ii, jj), by flat index (twice as fast as a 2-D fancy index)."""
    width = padded.shape[1]
    at = (ii + K.PAD) * width + (jj + K.PAD)
    return padded.ravel()[at[:, None] + (K.OFFSETS[:, 0] * width + K.OFFSETS[:, 1])].astype(np.float64)


def positions(shape: tuple[int, int], parity: tuple[int, int] | None, rng, n: int = _SAMPLE
              ) -> tuple[np.ndarray, np.ndarray]:
    """n random pixel positions (rows, columns) of one (row, column) parity class, or of all pixels."""
    rows, cols = shape
    if parity is None:
        return rng.integers(0, rows, n), rng.integers(0, cols, n)
    return (parity[0] + 2 * rng.integers(0, (rows - parity[0] + 1) // 2, n),
            parity[1] + 2 * rng.integers(0, (cols - parity[1] + 1) // 2, n))


def _samples(values: np.ndarray, padded: np.ndarray, k: int, parity: tuple[int, int] | None, rng, n: int = _SAMPLE
             ) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours (with the decoder's error for k > 0) and targets at n pixels, of one parity class or all.
    `padded` is `values` edge-padded by K.PAD above and on both sides."""
    ii, jj = positions(values.shape, parity, rng, n)
    near = neighbours(padded, ii, jj)
    if k:  # for k > 0 the neighbours carry the decoder's error, so the fit does not lean on what it blurs
        near += rng.integers(-k, k, near.shape, endpoint=True)
    return near, values[ii, jj].astype(np.float64)


def _fit(near: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Robust (L1 by reweighted least squares) integer weights summing to exactly 2**SHIFT, no constant."""
    ref = near[:, 1:2]  # N: the weights of the others act on differences from it
    x = np.delete(near - ref, 1, axis=1)
    y = target - ref[:, 0]
    w = l1_fit(x, y)
    wi = np.clip(np.round(w * (1 << K.SHIFT)), -(16 << K.SHIFT), 16 << K.SHIFT).astype(np.int64)
    return np.insert(wi, 1, (1 << K.SHIFT) - int(wi.sum()))


def _cost(near: np.ndarray, target: np.ndarray, weights: np.ndarray, step: int) -> float:
    """Proxy for the coded size of a fit's residuals: sum of log2(1 + |q|)."""
    # einsum, not BLAS (see codec/robust_fit.py)
    pred = np.floor((np.einsum("ni,i->n", near, weights.astype(np.float64), optimize=False) + (1 << (K.SHIFT - 1)))
                    / (1 << K.SHIFT))
    return float(np.log2(1.0 + np.abs(target - pred) / step).sum())


def intensity_class(w: np.ndarray, n: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The class of pixels whose decoded W and N are w and n, as raster_kernels.predict computes it."""
    return np.searchsorted(thresholds, (w.astype(np.int64) + n.astype(np.int64)) >> 1, side="right")


def fit_weights(values: np.ndarray, k: int = 0) -> np.ndarray:
    """Version 2's layouts: one weight set, or one per pixel parity class when the proxy says it is cheaper."""
    return fit_predictor(values, k, intensity=False).weights


def fit_predictor(values: np.ndarray, k: int = 0, intensity: bool = True) -> Predictor:
    """The cheapest layout by the proxy: one set, parity sets, or (when `intensity`) intensity class sets."""
    rng = np.random.default_rng(0)
    step = 2 * k + 1
    padded = np.pad(values, ((K.PAD, 0), (K.PAD, K.PAD)), mode="edge")
    near, target = _samples(values, padded, k, None, rng)
    one = Predictor(_fit(near, target)[None, :])
    if min(values.shape) < 8:
        return one
    classes = [_samples(values, padded, k, (a, b), rng) for a in (0, 1) for b in (0, 1)]
    four = np.stack([_fit(n, t) for n, t in classes])
    cost_one = sum(_cost(n, t, one.weights[0], step) for n, t in classes)
    cost_four = sum(_cost(n, t, w, step) for (n, t), w in zip(classes, four)) + _WEIGHT_BITS * 3 * K.N_NEIGHBOURS
    if cost_four < _PARITY_GAIN * cost_one:
        return Predictor(four)
    by_level = _by_intensity(values, padded, k, rng) if intensity else None
    return one if by_level is None else by_level


def _by_intensity(values: np.ndarray, padded: np.ndarray, k: int, rng) -> Predictor | None:
    """Intensity class sets at the candidate split the proxy likes best, or None where none pays for its weights."""
    near, target = _samples(values, padded, k, None, rng, _SAMPLE * INTENSITY_CLASSES)
    level = (near[:, 0].astype(np.int64) + near[:, 1].astype(np.int64)) >> 1  # W, N as the walk decodes them
    step = 2 * k + 1
    best, best_cost = None, _INTENSITY_GAIN * _cost(near, target, _fit(near, target), step) \
        - _WEIGHT_BITS * (INTENSITY_CLASSES - 1) * (K.N_NEIGHBOURS + 4)
    for split in _SPLITS:
        thresholds = np.unique(np.quantile(level, split).astype(np.int64))
        cls = intensity_class(near[:, 0], near[:, 1], thresholds)
        if len(thresholds) != INTENSITY_CLASSES - 1 or np.bincount(cls, minlength=INTENSITY_CLASSES).min() < 20 * K.N_NEIGHBOURS:
            continue
        sets = np.stack([_fit(near[cls == c], target[cls == c]) for c in range(INTENSITY_CLASSES)])
        cost = sum(_cost(near[cls == c], target[cls == c], sets[c], step) for c in range(INTENSITY_CLASSES))
        if cost < best_cost:
            best, best_cost = Predictor(sets, thresholds), cost
    return best
