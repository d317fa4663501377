"""Compiled (numba) kernels of the raster residual layer: one wavefront at a time.

The image is decoded in raster order, parallel along wavefronts t = 2i + j: every neighbour a pixel uses lies on an
earlier wavefront (2·di + dj < 0), so each wavefront is one batch for the range coder. A pixel's prediction mixes
the fitted linear predictor with five fixed ones by their recent errors around it. All arithmetic is int64 and
every probability comes from integer counts, so encoder and decoder compute the same tables on any machine.

Decoded values live in a padded array P (PAD rows above, PAD columns on each side) so that neighbours need no bounds
checks: the top rows hold the base value, a row's left pad copies the first pixel of the row above when the row
starts, its right pad copies its last pixel when the row ends.
"""
from __future__ import annotations

import numba as nb
import numpy as np

PAD = 3
# neighbour offsets (di, dj), nearest first; all causal for t = 2i + j. Index 1 (N) is the reference of the LS fit.
OFFSETS = np.array([(0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0), (-1, -2), (-2, -1), (-2, 1), (-2, 2),
                    (0, -3), (-2, -2)], np.int64)
N_NEIGHBOURS = len(OFFSETS)
SHIFT = 12  # predictor weights are integers / 2**SHIFT
N_CTX = 24  # half-octave buckets of local activity
DIRECT = 16  # tokens 0..15 are the values themselves
MSB = 2  # bits below the leading one kept in a token; the rest are sent raw
SCALE = 16  # weight of an observed token against the prior of 1
PRIOR_MASS = 32  # the neighbouring contexts' prior weighs as much as this many observed tokens
RAW_CHUNK = 16  # constriction's Uniform model takes sizes below 2**24: raw bits go 16 at a time
N_SUB = 6  # sub-predictors mixed per pixel (predict)
MIX_ONE = 1 << 20  # weight of a sub-predictor with no recent error
LS_BONUS = 4  # the fitted predictor's weight counts this many times
ERR_CAP = 1 << 20  # sub-predictor errors are capped so the weights' arithmetic stays far inside int64


def n_tokens(max_bits: int) -> int:
    """Token alphabet size for values below 2**max_bits."""
    return DIRECT + (max(max_bits, 4) - 4 + 1) * (1 << MSB)


def n_wavefronts(rows: int, cols: int) -> int:
    return 2 * (rows - 1) + cols


@nb.njit(cache=True)
def bounds(t, rows, cols):
    """First and last row of wavefront t (pixel (i, t - 2i))."""
    return max(0, (t - cols + 2) // 2), min(rows - 1, t // 2)


@nb.njit(cache=True)
def _ilog2(x):
    n = 0
    while x > 1:
        x >>= 1
        n += 1
    return n


@nb.njit(cache=True)
def _split(u):
    """u >= 0 -> (token, raw bit count, raw bits)."""
    if u < DIRECT:
        return u, 0, 0
    nbits = _ilog2(u)
    nraw = nbits - MSB
    mant = (u >> nraw) & ((1 << MSB) - 1)
    return DIRECT + (nbits - 4) * (1 << MSB) + mant, nraw, u & ((1 << nraw) - 1)


@nb.njit(cache=True)
def raw_bits(token):
    if token < DIRECT:
        return 0
    return (token - DIRECT) // (1 << MSB) + 4 - MSB


@nb.njit(cache=True)
def _join(token, raw):
    if token < DIRECT:
        return token
    nbits = (token - DIRECT) // (1 << MSB) + 4
    mant = (token - DIRECT) % (1 << MSB)
    return (((1 << MSB) | mant) << (nbits - MSB)) + raw


@nb.njit(cache=True)
def start(t, P, rows, base):
    """Before wavefront t: the left pad of the row that starts on it."""
    if t % 2 == 0 and t // 2 < rows:
        i = t // 2
        v = P[i - 1 + PAD, PAD] if i > 0 else base
        for c in range(PAD):
            P[i + PAD, c] = v


@nb.njit(cache=True)
def finish(t, P, rows, cols):
    """After wavefront t: the right pad of the row that ended on it."""
    x = t - cols + 1
    if x >= 0 and x % 2 == 0 and x // 2 < rows:
        r = x // 2
        for c in range(PAD):
            P[r + PAD, cols + PAD + c] = P[r + PAD, cols + PAD - 1]


# MIX_ONE // (1 + e)**2 for every error sum e where it is not 0 (it is 0 from (1 + e)**2 > MIX_ONE on): a table
# lookup instead of six integer divisions a pixel, with the same integers
_INV_SQ = np.array([MIX_ONE // ((1 + e) * (1 + e)) for e in range(1 << 10)], np.int64)
assert _INV_SQ[-1] > 0 and MIX_ONE // ((1 + len(_INV_SQ)) ** 2) == 0


@nb.njit(cache=True)
def _mix(pi, pj, ES, sub):
    """Weighted mean of the sub-predictions, each weighted by the inverse square of its recent error around the
    pixel (the idea of JPEG XL's self-correcting predictor); the fitted predictor's weight counts LS_BONUS times."""
    num = np.int64(0)
    den = np.int64(0)
    for s in range(N_SUB):
        e = ES[pi, pj - 1, s] + ES[pi - 1, pj, s] + ES[pi - 1, pj - 1, s] + ES[pi - 1, pj + 1, s] \
            + (ES[pi, pj - 2, s] + ES[pi - 2, pj, s]) // 2
        w = ((_INV_SQ[e] if e < len(_INV_SQ) else 0) + 1) * (LS_BONUS if s == 0 else 1)
        num += w * sub[s]
        den += w
    return (2 * num + den) // (2 * den)  # rounded: a floored mean drifts near-lossless decodes downwards


@nb.njit(cache=True)
def predict(t, P, E, ES, rows, cols, step, weights, thresholds, lo, hi, pred, sub, ctx):
    """Prediction and context of every pixel on wavefront t (its sub-predictions in `sub`); returns how many.
    `weights` holds one set; or four indexed by the pixel's (row, column) parity; or, with `thresholds`, one per
    intensity class: how many thresholds the decoded (W + N) / 2 reaches (codec/raster_fit.py)."""
    i0, i1 = bounds(t, rows, cols)
    by_parity = weights.shape[0] == 4 and thresholds.shape[0] == 0
    by_level = thresholds.shape[0] > 0
    n = 0
    for i in range(i0, i1 + 1):
        pi, pj = i + PAD, t - 2 * i + PAD
        w_, n_, nw_, ne_ = P[pi, pj - 1], P[pi - 1, pj], P[pi - 1, pj - 1], P[pi - 1, pj + 1]
        if by_level:
            level = (w_ + n_) >> 1
            c = 0
            while c < thresholds.shape[0] and level >= thresholds[c]:
                c += 1
            w = weights[c]
        elif by_parity:
            w = weights[((i & 1) << 1) | ((t - 2 * i) & 1)]
        else:
            w = weights[0]
        acc = np.int64(1 << (SHIFT - 1))
        for m in range(N_NEIGHBOURS):
            acc += w[m] * P[pi + OFFSETS[m, 0], pj + OFFSETS[m, 1]]
        sub[n, 0] = acc >> SHIFT  # the fitted linear predictor
        sub[n, 1] = w_ + n_ - nw_  # plane
        sub[n, 2] = n_ + ne_ - P[pi - 2, pj + 1]  # north, with the slope of the row above
        sub[n, 3] = w_ + ne_ - n_  # west, with the slope towards north-east
        sub[n, 4] = n_
        sub[n, 5] = w_
        act = 2 * (E[pi, pj - 1] + E[pi - 1, pj]) + E[pi - 1, pj - 1] + E[pi - 1, pj + 1] + E[pi, pj - 2] \
            + E[pi - 2, pj] + (abs(w_ - nw_) + abs(n_ - nw_) + abs(n_ - ne_)) // step
        x = act + 1
        lg = _ilog2(x)
        half = 1 if (lg >= 1 and x >= (3 << (lg - 1))) else 0
        pred[n] = min(max(_mix(pi, pj, ES, sub[n]), lo), hi)
        ctx[n] = min(2 * lg + half, N_CTX - 1)
        n += 1
    return n


@nb.njit(cache=True)
def probability_rows(counts, table, dirty, ctx, n, out):
    """The coding distribution of each pixel on the wavefront (row m of `out`), from its context's integer table:
    observed token counts, plus a bounded prior from the neighbouring contexts, plus one. Integers below 2**53, so
    the float64 rows are exact. Only the tables whose counts (or their neighbours') changed are rebuilt."""
    rebuild(counts, table, dirty, np.zeros(counts.shape[0], np.bool_))
    for m in range(n):
        c = ctx[m]
        for a in range(counts.shape[1]):
            out[m, a] = table[c, a]


@nb.njit(cache=True)
def rebuild(counts, table, dirty, rebuilt):
    """probability_rows' tables: those whose counts (or their neighbours') changed are rebuilt (marked in
    `rebuilt`); `dirty` is cleared."""
    C, A = counts.shape
    for c in range(C):
        a0, a1 = max(c - 1, 0), min(c + 2, C)
        stale = False
        for cc in range(a0, a1):
            stale = stale or dirty[cc]
        if not stale:
            continue
        rebuilt[c] = True
        total = 0
        for cc in range(a0, a1):
            for a in range(A):
                total += counts[cc, a]
        total = max(total, 1)
        for a in range(A):
            near = 0
            for cc in range(a0, a1):
                near += counts[cc, a]
            table[c, a] = counts[c, a] * SCALE + near * (PRIOR_MASS * SCALE) // total + 1
    dirty[:] = False


@nb.njit(cache=True)
def raw_chunk(nraw, raw, n, lo, sizes, values):
    """Encoder: raw bits lo..lo+RAW_CHUNK of the pixels that have them, with their Uniform sizes; returns how many."""
    m = 0
    for i in range(n):
        width = min(nraw[i] - lo, RAW_CHUNK)
        if width > 0:
            sizes[m] = 1 << width
            values[m] = (raw[i] >> lo) & ((1 << width) - 1)
            m += 1
    return m


@nb.njit(cache=True)
def raw_chunk_sizes(nraw, n, lo, sizes):
    """Decoder: the Uniform sizes of raw bits lo..lo+RAW_CHUNK, in pixel order; returns how many."""
    m = 0
    for i in range(n):
        width = min(nraw[i] - lo, RAW_CHUNK)
        if width > 0:
            sizes[m] = 1 << width
            m += 1
    return m


@nb.njit(cache=True)
def raw_chunk_put(nraw, n, lo, values, raw):
    m = 0
    for i in range(n):
        if nraw[i] - lo > 0:
            raw[i] |= np.int64(values[m]) << lo
            m += 1


@nb.njit(cache=True, inline="always")
def quantised(r, k, step):
    """The residual r quantised with step 2k + 1: |r - q * step| <= k."""
    qq = (abs(r) + k) // step
    return -qq if r < 0 else qq


@nb.njit(cache=True)
def quantise(t, V, rows, cols, k, step, pred, n, q, tokens, nraw, raw):
    """Encoder: the quantised residual of each pixel on wavefront t, split into token and raw bits; returns the
    largest raw bit count."""
    i0, _ = bounds(t, rows, cols)
    most = 0
    for m in range(n):
        i = i0 + m
        qq = quantised(V[i, t - 2 * i] - pred[m], k, step)
        q[m] = qq
        tk, nr, rw = _split(2 * qq if qq >= 0 else -2 * qq - 1)
        tokens[m], nraw[m], raw[m] = tk, nr, rw
        most = max(most, nr)
    return most


@nb.njit(cache=True)
def raw_sizes(tokens, n, nraw):
    """Decoder: raw bit counts of decoded tokens (raw bits reset to 0); returns the largest count."""
    most = 0
    for m in range(n):
        nraw[m] = raw_bits(tokens[m])
        most = max(most, nraw[m])
    return most


@nb.njit(cache=True)
def unquantise(tokens, raw, n, q):
    for m in range(n):
        u = _join(tokens[m], raw[m])
        q[m] = -(u + 1) // 2 if u & 1 else u // 2


@nb.njit(cache=True)
def commit(t, P, E, ES, rows, cols, step, lo, hi, q, pred, sub, ctx, counts, dirty, tokens, fine):
    """Both sides, after wavefront t is coded: decoded values, |q| for the next contexts, each sub-predictor's
    error for the next mixes, token counts. Pixels marked in `fine` (stream version 4's exact blocks; all 0 before)
    were quantised with step 1."""
    i0, i1 = bounds(t, rows, cols)
    for m in range(i1 - i0 + 1):
        i = i0 + m
        pi, pj = i + PAD, t - 2 * i + PAD
        d = min(max(pred[m] + q[m] * (1 if fine[i, t - 2 * i] else step), lo), hi)
        P[pi, pj] = d
        E[pi, pj] = abs(q[m])
        for s in range(N_SUB):
            ES[pi, pj, s] = min(abs(d - sub[m, s]), ERR_CAP)
        counts[ctx[m], tokens[m]] += 1
        dirty[ctx[m]] = True
