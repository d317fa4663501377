"""Compiled (numba) kernels of the wavelet codec: the integer CDF 9/7 lifting, the band contexts and tokens one
wavefront at a time (the raw token bits through codec/wavelet_bits.py).

Everything the decoder runs is int64 arithmetic (the float lifting below serves the encoder's band gains only), so a
stream decodes to the same values on any CPU. Decoder kernels index only arrays whose shapes the caller validated,
with symbols the range coder can return (tokens below the alphabet size, signs 0/1) and bit reads that stop at the
end of their buffer and flag it.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from codec import raster_kernels as K
from codec.raster_kernels import _join, _split, bounds
from codec.wavelet_bits import get_bits, put_bits

LIFT = np.array([-1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971])
LIFT_Q = np.array([int(round(c * (1 << 16))) for c in LIFT], np.int64)  # the lifting steps in 1/65536
MAX_LEVELS, MIN_SIDE = 5, 16
NB, NCLASS = 12, 7  # neighbourhood buckets, band classes
NP = 4  # parent classes
NCTX = NCLASS * NB * NP
N_SIGN_CTX = NCLASS * 9
INC, LIMIT = 32, 1 << 14  # count increment; halve a context's counts past LIMIT
PRIOR = 16  # observations the pooled prior weighs


# ---------------------------------------------------------------------------------------------- transform
@nb.njit(cache=True)
def _lift(x, n, inv):
    """Integer CDF 9/7 lifting on x[:n] in place (interleaved: even = low, odd = high), whole-sample symmetric
    extension; no scaling step, so forward and inverse are exact inverses."""
    if n < 2:
        return
    for s in range(4):
        k = 3 - s if inv else s
        c = LIFT_Q[k]
        for i in range(1 - k % 2, n, 2):
            left = x[i - 1] if i > 0 else x[i + 1]
            right = x[i + 1] if i + 1 < n else x[i - 1]
            d = (c * (left + right) + (1 << 15)) >> 16
            x[i] += -d if inv else d


@nb.njit(cache=True)
def _lift_float(x, n, inv):
    """_lift without the rounding: the linear transform the band gains are measured on."""
    if n < 2:
        return
    for s in range(4):
        k = 3 - s if inv else s
        c = -LIFT[k] if inv else LIFT[k]
        for i in range(1 - k % 2, n, 2):
            left = x[i - 1] if i > 0 else x[i + 1]
            right = x[i + 1] if i + 1 < n else x[i - 1]
            x[i] += c * (left + right)


@nb.njit(cache=True)
def _pass(a, h, w, inv, along_rows):
    """One 1-D pass over the h x w corner: lows to the first ceil(n/2) places, highs after them."""
    n, m = (w, h) if along_rows else (h, w)
    buf = np.empty(n, np.int64)
    half = (n + 1) // 2
    for r in range(m):
        if inv:
            for j in range(n):
                v = a[r, j] if along_rows else a[j, r]
                buf[2 * j if j < half else 2 * (j - half) + 1] = v
            _lift(buf, n, True)
            for j in range(n):
                if along_rows:
                    a[r, j] = buf[j]
                else:
                    a[j, r] = buf[j]
        else:
            for j in range(n):
                buf[j] = a[r, j] if along_rows else a[j, r]
            _lift(buf, n, False)
            for j in range(n):
                v = buf[2 * j] if j < half else buf[2 * (j - half) + 1]
                if along_rows:
                    a[r, j] = v
                else:
                    a[j, r] = v


@nb.njit(cache=True)
def dwt(a, hs, ws, inv):
    """The multi-level transform of the int64 array a in place (inv: its inverse); hs, ws from sizes()."""
    L = len(hs) - 1
    for s in range(L):
        lev = L - 1 - s if inv else s
        h, w = hs[lev], ws[lev]
        if inv:
            _pass(a, h, w, True, False)
            _pass(a, h, w, True, True)
        else:
            _pass(a, h, w, False, True)
            _pass(a, h, w, False, False)


@nb.njit(cache=True)
def synthesis_energy(ns, lev, high):
    """Energy of the 1-D signal of length ns[0] that one unit coefficient at the centre of level lev's low (or high)
    band inverts to through levels lev..1. The 2-D transform is separable, so a band's gain is the product of its
    row and column energies."""
    a = np.zeros(ns[0])
    a[(ns[lev] + ns[lev - 1]) // 2 if high else ns[lev] // 2] = 1.0
    for l in range(lev, 0, -1):
        n = ns[l - 1]
        half = (n + 1) // 2
        buf = np.empty(n)
        for j in range(n):
            buf[2 * j if j < half else 2 * (j - half) + 1] = a[j]
        _lift_float(buf, n, True)
        a[:n] = buf
    return (a * a).sum()


def sizes(shape) -> tuple[np.ndarray, np.ndarray]:
    """Band corner sizes per level: up to MAX_LEVELS while both sides of the low band are >= MIN_SIDE."""
    hs, ws = [int(shape[0])], [int(shape[1])]
    while len(hs) <= MAX_LEVELS and min(hs[-1], ws[-1]) >= MIN_SIDE:
        hs.append((hs[-1] + 1) // 2)
        ws.append((ws[-1] + 1) // 2)
    return np.array(hs, np.int64), np.array(ws, np.int64)


def bands(shape) -> list[tuple[int, int, int, int, int, int]]:
    """(r0, r1, c0, c1, orientation 0 LL 1 HL 2 LH 3 HH, level), coarse to fine."""
    hs, ws = sizes(shape)
    L = len(hs) - 1
    out = [(0, hs[L], 0, ws[L], 0, L)]
    for lev in range(L, 0, -1):
        h, w, H, W = hs[lev], ws[lev], hs[lev - 1], ws[lev - 1]
        out += [(0, h, w, W, 1, lev), (h, H, 0, w, 2, lev), (h, H, w, W, 3, lev)]
    return [tuple(int(v) for v in b) for b in out]


def band_class(orient: int, level: int) -> int:
    return 0 if orient == 0 else 1 + 2 * min(level - 1, 2) + (orient == 3)


# ---------------------------------------------------------------------------------------------- contexts
@nb.njit(cache=True)
def _bucket(v):
    if v == 0:
        return 0
    lg = K._ilog2(v)
    half = (v >> (lg - 1)) & 1 if lg > 0 else 0
    return min(1 + 2 * lg + half, NB - 1)


@nb.njit(cache=True)
def _rows(t, M, PM, has_parent, cls, counts, pooled, ptot, prior, valid, ctx, rows):
    """Context of every coefficient on wavefront t (class x activity of W, N, NW, NE x parent class) and its coding
    distribution: the context's counts plus its activity bucket's pooled counts as a prior worth PRIOR tokens (kept in
`prior` while `valid`: a bucket's pooled counts change only in commit)."""
    h, w = M.shape
    i0, i1 = bounds(t, h, w)
    n = 0
    for i in range(i0, i1 + 1):
        j = t - 2 * i
        a = 2 * M[i, j - 1] if j > 0 else 0
        if i > 0:
            a += 2 * M[i - 1, j] + (M[i - 1, j - 1] if j > 0 else 0) + (M[i - 1, j + 1] if j + 1 < w else 0)
        p = 0
        if has_parent:
            ph, pw = PM.shape
            pi, pj = min(i // 2, ph - 1), min(j // 2, pw - 1)
            p = 4 * PM[pi, pj] + PM[max(pi - 1, 0), pj] + PM[min(pi + 1, ph - 1), pj] + PM[pi, max(pj - 1, 0)] \
                + PM[pi, min(pj + 1, pw - 1)]
            p = 0 if p == 0 else (1 if p < 6 else (2 if p < 20 else 3))
        b = _bucket(a)
        c = (cls * NB + b) * NP + p
        ctx[n] = c
        if not valid[b]:
            for x in range(counts.shape[1]):
                prior[b, x] = pooled[b, x] * (PRIOR * INC) // ptot[b] + 1
            valid[b] = True
        for x in range(counts.shape[1]):
            rows[n, x] = counts[c, x] + prior[b, x]
        n += 1
    return n


@nb.njit(cache=True)
def _sgn(v):
    return 0 if v == 0 else (1 if v > 0 else 2)


@nb.njit(cache=True)
def _sign_rows(t, S, M, cls, scounts, sctx, srows, ssym, decoding):
    """Sign contexts (class x sign W x sign N) and distributions of the nonzero coefficients on wavefront t; the
    encoder's symbols (1 = negative) too."""
    h, w = M.shape
    i0, i1 = bounds(t, h, w)
    ns = 0
    for i in range(i0, i1 + 1):
        j = t - 2 * i
        if M[i, j] == 0:
            continue
        c = (cls * 3 + (_sgn(S[i, j - 1]) if j > 0 else 0)) * 3 + (_sgn(S[i - 1, j]) if i > 0 else 0)
        sctx[ns] = c
        srows[ns, 0], srows[ns, 1] = scounts[c, 0], scounts[c, 1]
        if not decoding:
            ssym[ns] = 1 if S[i, j] < 0 else 0
        ns += 1
    return ns


@nb.njit(cache=True)
def encode_rows(t, S, M, PM, has_parent, cls, counts, pooled, ptot, prior, valid, scounts, ctx, rows, tok, rbuf,
                rst, sctx, srows, ssym):
    """Encoder, wavefront t: token distributions and tokens (their raw bits appended to rbuf), then the signs'
    distributions and symbols; returns (tokens, signs)."""
    h, w = M.shape
    n = _rows(t, M, PM, has_parent, cls, counts, pooled, ptot, prior, valid, ctx, rows)
    i0, _ = bounds(t, h, w)
    for m in range(n):
        i = i0 + m
        tk, nr, rw = _split(M[i, t - 2 * i])
        tok[m] = tk
        put_bits(rbuf, rst, rw, nr)
    return n, _sign_rows(t, S, M, cls, scounts, sctx, srows, ssym, False)


@nb.njit(cache=True)
def decode_rows(t, M, PM, has_parent, cls, counts, pooled, ptot, prior, valid, ctx, rows):
    """Decoder, wavefront t: the token distributions; returns how many."""
    return _rows(t, M, PM, has_parent, cls, counts, pooled, ptot, prior, valid, ctx, rows)


@nb.njit(cache=True)
def decode_magnitudes(t, S, M, cls, tok, n, rbuf, rst, scounts, sctx, srows, ssym):
    """Decoder, after wavefront t's tokens: |q| from token and raw bits into M, then the signs' distributions;
    returns how many signs follow."""
    h, w = M.shape
    i0, _ = bounds(t, h, w)
    for m in range(n):
        i = i0 + m
        M[i, t - 2 * i] = _join(tok[m], get_bits(rbuf, rst, K.raw_bits(tok[m])))
    return _sign_rows(t, S, M, cls, scounts, sctx, srows, ssym, True)


@nb.njit(cache=True)
def _commit(counts, totals, c, sym):
    counts[c, sym] += INC
    totals[c] += INC
    if totals[c] > LIMIT:
        totals[c] = 0
        for x in range(counts.shape[1]):
            counts[c, x] = (counts[c, x] + 1) // 2
            totals[c] += counts[c, x]


@nb.njit(cache=True)
def commit(t, S, M, ssym, decoding, ctx, tok, n, sctx, ns, counts, totals, pooled, ptot, valid, scounts, stotals):
    """Both sides, after wavefront t: (decoder) the signed values into S; every count update."""
    if decoding:
        h, w = M.shape
        i0, i1 = bounds(t, h, w)
        k = 0
        for i in range(i0, i1 + 1):
            j = t - 2 * i
            S[i, j] = M[i, j]
            if M[i, j]:
                if ssym[k]:
                    S[i, j] = -M[i, j]
                k += 1
    for m in range(n):
        _commit(counts, totals, ctx[m], tok[m])
        _commit(pooled, ptot, (ctx[m] // NP) % NB, tok[m])
        valid[(ctx[m] // NP) % NB] = False
    for m in range(ns):
        _commit(scounts, stotals, sctx[m], ssym[m])


@nb.njit(cache=True)
def med_residual(Q, S, inverse):
    """LL band: S = Q - MED(W, N, NW) (inverse: Q from S, in raster order)."""
    h, w = Q.shape
    for i in range(h):
        for j in range(w):
            if i == 0 and j == 0:
                p = 0
            elif i == 0:
                p = Q[i, j - 1]
            elif j == 0:
                p = Q[i - 1, j]
            else:
                a, b, c = Q[i, j - 1], Q[i - 1, j], Q[i - 1, j - 1]
                p = min(a, b) if c >= max(a, b) else (max(a, b) if c <= min(a, b) else a + b - c)
            if inverse:
                Q[i, j] = S[i, j] + p
            else:
                S[i, j] = Q[i, j] - p
