"""Residual layer for `near-lossless:k` and `lossless` (k = 0) on top of the lossy reconstruction.

Pixels are coded in the interleaved order of codec/residual_scan.py (a coarse grid, then per level three phases, each
one vectorised step). A pixel's prediction pred is an integer linear combination of up to 20 already decoded
neighbours and of the lossy reconstruction `recon` at the pixel and around it. Per phase the encoder picks, by an
estimate of the coded size, one of: a fixed rule (recon plus the mean of the 4 nearest neighbours' decoded-minus-recon;
the only choice for small phases), one robust least-squares (IRLS, L1) predictor, or one such predictor per tercile
of local activity; the integer weights are sent in the stream. So the layer learns per image how far to trust recon
against the decoded neighbours: recon = zeros turns it into a pure (hierarchical, interpolative) lossless coder.
The prediction error r = value - pred is quantised with
step 2k+1, q = sign(r)·floor((|r|+k)/(2k+1)), and decoded = clip(pred + q·(2k+1), valid range), so
|value - decoded| ≤ k for every pixel (the clip only moves a value towards the original: it never leaves the range).
q is coded by codec/residual_entropy.py in contexts of local activity (decoded-neighbour gradients and their
already coded |q|), i.e. the probability model is conditioned on the reconstruction and decoded neighbours.

All prediction arithmetic is int64 and every coding probability comes from integer counts, so encoder and decoder
compute identical models on any machine.

What this layer guarantees alone: the stream records shape, k, bit depth, a CRC-32 of `recon` and a CRC-32 of the
decoded values; `decode_residual` raises ResidualError when the recon differs, the stream is truncated or corrupted
such that the decoded values fail their CRC. (A CRC-32 can collide with probability 2**-32; the payload's checksum
of the original values in the bitstream is the end-to-end check for lossless.)
"""
from __future__ import annotations

import struct
import zlib

import constriction
import numpy as np

from codec import residual_entropy as ent
from codec import residual_scan as scan
from codec.errors import ResidualError
from codec.robust_fit import l1_fit
from codec.values import check_fits, value_range


_MAGIC = b"MZR1"
_HEAD = struct.Struct("<4sBIBBIIII")  # magic, version, k, bits, signed, rows, cols, recon crc, decoded crc
_VERSION = 1
_SHIFT = 12  # predictor weights are integers / 2**_SHIFT
_WMAX = 16 << _SHIFT  # |weight| clip (a sane predictor never needs more)
_CMAX = 1 << 40  # |constant| clip, keeps int64 sums far from overflow for 32-bit data
_MIN_LS = 1024  # phases with fewer pixels use the fixed rule (weights would cost more than they save)
_N_ACT = 24  # activity contexts, once for the coarse levels and once for the finest; one more for the coarse grid
_WEIGHT_BITS = 12  # rough cost of one sent weight when choosing a predictor
_BATCH = 4096  # smallest batch after which the context statistics are updated


def _check(values: np.ndarray | None, recon: np.ndarray, k: int, bits_stored: int, signed: bool):
    lo, hi = value_range(bits_stored, signed, ResidualError)
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ResidualError(f"k must be an integer >= 0, got {k!r}")
    arrays = [("recon", recon)] + ([("values", values)] if values is not None else [])
    for name, a in arrays:
        if a.ndim != 2 or a.size == 0:
            raise ResidualError(f"{name} must be a non-empty 2-D array, got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            raise ResidualError(f"{name} must hold integers, got dtype {a.dtype}")
    if values is not None:
        if values.shape != recon.shape:
            raise ResidualError(f"values shape {values.shape} differs from recon shape {recon.shape}")
        check_fits(values, bits_stored, signed, ResidualError)
    return lo, hi


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a, dtype="<i8").tobytes())


def _ilog2(x: np.ndarray) -> np.ndarray:
    """floor(log2(x)) for int64 x >= 1, exact."""
    n = np.floor(np.log2(x)).astype(np.int64)
    n -= (np.left_shift(1, n) > x).astype(np.int64)
    n += (np.left_shift(1, n + 1) <= x).astype(np.int64)
    return n


class _State:
    """What encoder and decoder both hold while walking the phases: decoded values, |q| so far, statistics."""

    def __init__(self, recon: np.ndarray, k: int, bits_stored: int, signed: bool):
        self.lo, self.hi = value_range(bits_stored, signed, ResidualError)
        self.rec = np.clip(recon.astype(np.int64), self.lo, self.hi)
        self.step = 2 * k + 1
        self.dec = np.zeros(recon.shape, dtype=np.int64)
        self.err = np.zeros(recon.shape, dtype=np.int64)
        self.coder = ent.ContextCoder(2 * _N_ACT + 1, bits_stored + 1)
        self.weight_coder = ent.ContextCoder(1, 64)

    def inputs(self, phase: scan.Phase):
        """(regressor columns or None for the fixed rule, contexts) of one phase."""
        if not phase.offsets:
            return None, np.full(phase.view(self.dec).size, 2 * _N_ACT, dtype=np.int64)
        near = [scan.gather(self.dec, phase, o) for o in phase.offsets]
        near_rec = [scan.gather(self.rec, phase, o) for o in phase.offsets[:4]]
        ctx = self._contexts(near, phase)
        cols = near + [phase.view(self.rec)] + near_rec
        if near[0].size < _MIN_LS:
            return _fixed_rule(cols), ctx
        return cols, ctx

    def _contexts(self, near: list[np.ndarray], phase: scan.Phase) -> np.ndarray:
        """Half-octave buckets of local activity: decoded-neighbour gradients and their |q| (in quantiser steps)."""
        grad = np.abs(near[0] - near[3]) + np.abs(near[1] - near[2])
        e = 2 * sum(scan.gather(self.err, phase, o) for o in phase.offsets[:4])
        e += sum(scan.gather(self.err, phase, o) for o in phase.offsets[4:8])
        x = grad // self.step + e + 1
        lg = _ilog2(x)
        half = (x >= np.left_shift(3, np.maximum(lg - 1, 0))) & (lg >= 1)
        kind = 0 if phase.step > 2 else 1
        return (np.minimum(2 * lg + half, _N_ACT - 1) + kind * _N_ACT).ravel()

    def store(self, phase: scan.Phase, pred: np.ndarray, q: np.ndarray) -> None:
        phase.view(self.dec)[...] = np.clip(pred + q * self.step, self.lo, self.hi)
        phase.view(self.err)[...] = np.abs(q)


def _fixed_rule(cols: list[np.ndarray]) -> np.ndarray:
    """recon plus the mean of (decoded - recon) over the 4 nearest decoded neighbours."""
    n = len(cols) - 5  # cols = decoded neighbours, recon here, recon at the 4 nearest
    diff = sum(a - b for a, b in zip(cols[:4], cols[n + 1 :]))
    return cols[n] + np.right_shift(diff + 2, 2)


def _fit(cols: list[np.ndarray], target: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Robust (L1, codec/robust_fit.py) weights on a subsample, as integers at scale 2**_SHIFT; the last weight is
    the constant."""
    pick = idx[:: max(1, idx.size // 8000)]
    x = np.stack([c.ravel()[pick].astype(np.float64) for c in cols] + [np.ones(pick.size)], axis=1)
    y = target.ravel()[pick].astype(np.float64)
    w = l1_fit(x, y)
    wi = np.clip(np.round(w[:-1] * (1 << _SHIFT)), -_WMAX, _WMAX)
    const = np.clip(np.round(w[-1] * (1 << _SHIFT)), -_CMAX, _CMAX)
    return np.append(wi, const).astype(np.int64)


def _cost(target: np.ndarray, pred: np.ndarray, step: int) -> float:
    """Proxy for the coded size of a prediction: sum of log2(1 + |q|)."""
    return float(np.log2(1.0 + np.abs(target - pred) / step).sum())


def _apply(cols: list[np.ndarray], weights: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    take = (lambda c: c.ravel()[idx]) if idx is not None else (lambda c: c)
    acc = np.full(take(cols[0]).shape, int(weights[-1]) + (1 << (_SHIFT - 1)), dtype=np.int64)
    for c, w in zip(cols, weights[:-1]):
        if w:
            acc += take(c) * int(w)
    return np.right_shift(acc, _SHIFT)


def _apply_groups(cols, weights: list[np.ndarray], groups: np.ndarray) -> np.ndarray:
    pred = np.empty(groups.size, dtype=np.int64)
    for g, w in enumerate(weights):
        idx = np.flatnonzero(groups == g)
        if idx.size:
            pred[idx] = _apply(cols, w, idx)
    return pred.reshape(cols[0].shape)


def _groups(ctx: np.ndarray, thresholds: list[int]) -> np.ndarray:
    return np.searchsorted(np.asarray(thresholds, dtype=np.int64), ctx % _N_ACT, side="right")


def _zigzag(q: np.ndarray) -> np.ndarray:
    return np.where(q >= 0, 2 * q, -2 * q - 1)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return np.where(u & 1, -(u + 1) // 2, u // 2)


def _batches(n: int) -> list[slice]:
    """Batches growing geometrically from 64 symbols, so fresh statistics adapt quickly, up to n/8."""
    out, a, size = [], 0, 64
    cap = max(_BATCH, -(-n // 8))
    while a < n:
        out.append(slice(a, min(a + size, n)))
        a += size
        size = min(2 * size, cap)
    return out


def _choose_predictor(st: "_State", enc, cols, ctx: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pick the cheapest of: the fixed rule, one LS predictor, one LS predictor per activity tercile; send it."""
    fixed = np.clip(_fixed_rule(cols), st.lo, st.hi)
    best = (_cost(target, fixed, st.step), [], [], fixed)
    splits = [[]]
    if ctx.size >= 3 * _MIN_LS:
        t1, t2 = (int(x) for x in np.quantile(ctx % _N_ACT, [1 / 3, 2 / 3], method="lower"))
        splits.append(sorted({t1, t2}))
    for thresholds in splits:
        groups = _groups(ctx, thresholds)
        ws = [_fit(cols, target, np.flatnonzero(groups == g)) for g in range(len(thresholds) + 1)]
        pred = np.clip(_apply_groups(cols, ws, groups), st.lo, st.hi)
        cost = _cost(target, pred, st.step) + _WEIGHT_BITS * len(ws) * ws[0].size
        if cost < best[0]:
            best = (cost, thresholds, ws, pred)
    _, thresholds, ws, pred = best
    # one coder call per item, exactly as _read_predictor decodes them (the statistics update per call)
    for item in ([len(ws), len(thresholds)], thresholds, *ws):
        item = np.asarray(item, dtype=np.int64)
        st.weight_coder.encode(enc, np.zeros(item.size, dtype=np.int64), _zigzag(item))
    return pred


def _read_predictor(st: "_State", stream, cols, ctx: np.ndarray) -> np.ndarray:
    def read(n: int) -> np.ndarray:
        return _unzigzag(st.weight_coder.decode(stream, np.zeros(n, dtype=np.int64)))

    n_groups, n_thresholds = (int(x) for x in read(2))
    if n_groups == 0 and n_thresholds == 0:
        return _fixed_rule(cols)
    if n_groups != n_thresholds + 1 or n_groups > 3:
        raise ResidualError("residual stream corrupted: bad predictor description")
    thresholds = read(n_thresholds).tolist()
    ws = [read(len(cols) + 1) for _ in range(n_groups)]
    return _apply_groups(cols, ws, _groups(ctx, thresholds))


def encode_residual(values: np.ndarray, recon: np.ndarray, k: int, bits_stored: int, signed: bool) -> bytes:
    """Code `values` given the decoder-side `recon` so that decoding keeps |values - decoded| <= k everywhere."""
    return encode_residual_decoded(values, recon, k, bits_stored, signed)[0]


def encode_residual_decoded(values: np.ndarray, recon: np.ndarray, k: int, bits_stored: int, signed: bool
                            ) -> tuple[bytes, np.ndarray]:
    """encode_residual's stream and the values it decodes to (the scan's own reconstruction)."""
    _check(values, recon, k, bits_stored, signed)
    v = values.astype(np.int64)
    st = _State(recon, k, bits_stored, signed)
    enc = constriction.stream.queue.RangeEncoder()
    for phase in scan.phases(v.shape):
        target = phase.view(v)
        cols, ctx = st.inputs(phase)
        if cols is None:
            pred = phase.view(st.rec)
        elif isinstance(cols, np.ndarray):
            pred = cols
        else:
            pred = _choose_predictor(st, enc, cols, ctx, target)
        pred = np.clip(pred, st.lo, st.hi)
        r = target - pred
        q = np.sign(r) * ((np.abs(r) + k) // st.step)
        u = _zigzag(q).ravel()
        for b in _batches(u.size):
            st.coder.encode(enc, ctx[b], u[b])
        st.store(phase, pred, q)
    bound = int(np.abs(st.dec - v).max())
    if bound > k:  # cannot happen by construction; refuse rather than return a stream that breaks the bound
        raise AssertionError(f"residual layer broke its bound: max error {bound} > k={k}")
    head = _HEAD.pack(_MAGIC, _VERSION, k, bits_stored, int(signed), *v.shape, _crc(st.rec), _crc(st.dec))
    return head + enc.get_compressed().astype("<u4").tobytes(), st.dec.copy()


def decode_residual(data: bytes, recon: np.ndarray, k: int, bits_stored: int, signed: bool) -> np.ndarray:
    """Inverse of encode_residual given the same recon, k, bits_stored and signed (int64 array)."""
    _check(None, recon, k, bits_stored, signed)
    if len(data) < _HEAD.size:
        raise ResidualError(f"residual stream truncated: {len(data)} bytes, header needs {_HEAD.size}")
    magic, version, k_s, bits_s, signed_s, rows, cols_, crc_rec, crc_dec = _HEAD.unpack_from(data)
    if magic != _MAGIC or version != _VERSION:
        raise ResidualError(f"not a residual stream of version {_VERSION} (magic {magic!r}, version {version})")
    if (k_s, bits_s, bool(signed_s), (rows, cols_)) != (k, bits_stored, bool(signed), recon.shape):
        raise ResidualError(
            f"stream was coded with k={k_s}, bits={bits_s}, signed={bool(signed_s)}, shape={(rows, cols_)}; "
            f"decoder was given k={k}, bits={bits_stored}, signed={signed}, shape={recon.shape}"
        )
    st = _State(recon, k, bits_stored, signed)
    if _crc(st.rec) != crc_rec:
        raise ResidualError("recon differs from the one the residual was coded against (CRC mismatch)")
    body = data[_HEAD.size :]
    if len(body) % 4:
        raise ResidualError("residual stream truncated or corrupted (length not a whole number of words)")
    stream = constriction.stream.queue.RangeDecoder(np.frombuffer(body, dtype="<u4").astype(np.uint32))
    try:
        for phase in scan.phases(st.dec.shape):
            cols, ctx = st.inputs(phase)
            if cols is None:
                pred = phase.view(st.rec)
            elif isinstance(cols, np.ndarray):
                pred = cols
            else:
                pred = _read_predictor(st, stream, cols, ctx)
            pred = np.clip(pred, st.lo, st.hi)
            u = np.concatenate([st.coder.decode(stream, ctx[b]) for b in _batches(ctx.size)])
            st.store(phase, pred, _unzigzag(u).reshape(pred.shape))
    except ResidualError:
        raise
    except Exception as exc:  # the range decoder or the arithmetic tripping over corrupted data
        raise ResidualError(f"residual stream corrupted: {exc}") from None
    if _crc(st.dec) != crc_dec:
        raise ResidualError("residual stream corrupted or decoded with another recon: decoded values fail their CRC")
    return st.dec
