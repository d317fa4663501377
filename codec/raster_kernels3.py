"""Compiled (numba) kernels that stream version 3 of the raster residual layer adds to version 2's
(codec/raster_kernels.py): the same walk, prediction and activity buckets, richer token contexts.

- Sign state: the quantised residuals of W and N (0: both zero, 2: both non-zero with the same sign, 1: otherwise).
  The residuals of neighbouring pixels lean the same way (the predictor's local bias), so q is sign-flipped when
  qW + qN < 0, and the state splits each activity bucket in three for the magnitude token.
- Back-off: an (activity, state) context's prior is version 2's table for its activity bucket (pooled over the
  states, with the neighbouring buckets' prior), weighing PRIOR2 tokens, so small slices do not pay for the split.
- The magnitude |q| is the token (hybrid-uint, as version 2) and its sign, after the flip, a binary symbol of its
  own with integer counts per (state, magnitude class, coarse activity): version 2 folded the sign into the token,
  so beyond |q| = 8 it went out raw and no context could reach it.
- A context's counts are halved when they pass HALVE, so the tables follow a slice whose statistics drift.

Measured with lab/context_models.py. Every probability still comes from integer counts.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from codec.raster_kernels import PAD, PRIOR_MASS, SCALE, _join, _split, bounds, quantised

N_STATE = 3
PRIOR2 = 64
HALVE = 8192
N_MAG = 7  # magnitude classes of the sign's context: token 1, 2, 3-4, 5-8, 9-15, 16-23, 24+
N_SIGN_CTX = N_STATE * N_MAG * 4


@nb.njit(cache=True)
def sign_state(t, SQ, rows, cols, n, state, flip):
    """Sign state and flip of every pixel on wavefront t, from the signed q of its W and N neighbours.

    SQ holds the signed q of the last three wavefronts by row: SQ[t % 3, i + 1] is row i's pixel on wavefront t,
    column 0 stays 0 (the row above the image). A pixel's W is on wavefront t - 1 in its own row, its N on t - 2
    in the row above, so the reads stay in a few cache lines instead of a rows x cols array's."""
    i0, _ = bounds(t, rows, cols)
    w_row, n_row = SQ[(t + 2) % 3], SQ[(t + 1) % 3]
    for m in range(n):
        i = i0 + m
        qw = w_row[i + 1] if t - 2 * i > 0 else 0
        qn = n_row[i]
        flip[m] = 1 if qw + qn < 0 else 0
        if qw == 0 and qn == 0:
            state[m] = 0
        elif (qw > 0 and qn > 0) or (qw < 0 and qn < 0):
            state[m] = 2
        else:
            state[m] = 1


@nb.njit(cache=True)
def quantise(t, V, rows, cols, k, step, pred, flip, fine, n, q, tokens, nraw, raw, neg):
    """Encoder: q of each pixel on wavefront t, |q| split into token and raw bits, the flipped sign in `neg`;
    returns the largest raw bit count. Pixels marked in `fine` (version 4's exact blocks) are quantised with step 1."""
    i0, _ = bounds(t, rows, cols)
    most = 0
    for m in range(n):
        i = i0 + m
        r = V[i, t - 2 * i] - pred[m]
        qq = r if fine[i, t - 2 * i] else quantised(r, k, step)
        q[m] = qq
        tk, nr, rw = _split(abs(qq))
        tokens[m], nraw[m], raw[m] = tk, nr, rw
        neg[m] = 1 if (qq < 0) != (flip[m] == 1) else 0
        most = max(most, nr)
    return most


@nb.njit(cache=True)
def unquantise(tokens, raw, neg, flip, n, q):
    for m in range(n):
        u = _join(tokens[m], raw[m])
        q[m] = -u if (neg[m] == 1) != (flip[m] == 1) else u


@nb.njit(cache=True, inline="always")
def _floordiv(num, den, inv):
    """num // den for 0 <= num < 2**52 and den > 0 (inv = 1.0 / den): the float quotient is within one of the
    floor and the integer tests put it right, so the result is the exact integer on any IEEE-754 machine (no
    fastmath). An integer division per table entry was most of probability_rows' time. Branch-free so that the
    table loops vectorise."""
    q = np.int64(num * inv)
    return q - np.int64(q * den > num) + np.int64((q + 1) * den <= num)


@nb.njit(cache=True)
def probability_rows(counts, pooled, tab_a, tab_sum, table, dirty, dirty_a, rebuilt, ctx, state, n, out):
    """The token distribution of each pixel on the wavefront: its (activity, state) context's counts plus, as a
    prior of PRIOR2 tokens, version 2's table built on the activity bucket's pooled counts. Contexts past HALVE
    tokens are halved first (and the pooled counts with them). Integers below 2**53: the float64 rows are exact.

    Version 2's table of bucket a (raster_kernels.rebuild on `pooled`) is rebuilt when a bucket within one of a
    changed; what the (a, state) tables use of it, its prior term tab[a, x] * PRIOR2 * SCALE // sum(tab[a]), is
    kept in `tab_a` (computed once per bucket, not once per state) and its sum in `tab_sum`; a context's table is
    then counts * SCALE + that + 1, with no division."""
    NA, A = pooled.shape
    for c in range(NA * N_STATE):
        if not dirty[c]:
            continue
        tot = 0
        for x in range(A):
            tot += counts[c, x]
        if tot > HALVE:
            a = c // N_STATE
            for x in range(A):
                half = (counts[c, x] + 1) // 2
                pooled[a, x] -= counts[c, x] - half
                counts[c, x] = half
            dirty_a[a] = True
    # the pooled buckets' token totals, where a rebuild needs them
    rowsum = np.zeros(NA, np.int64)
    for a in range(NA):
        need = False
        for aa in range(max(a - 2, 0), min(a + 3, NA)):
            need = need or dirty_a[aa]
        if need:
            s = 0
            for x in range(A):
                s += pooled[a, x]
            rowsum[a] = s
    tab = np.empty(A, np.int64)
    for a in range(NA):
        lo, hi = max(a - 1, 0), min(a + 1, NA - 1)
        stale = dirty_a[lo] or dirty_a[a] or dirty_a[hi]
        rebuilt[a] = stale
        if not stale:
            continue
        mid = 1 if lo < a < hi else 0  # the neighbourhood is lo..hi: a counted once at the ends
        total = max(rowsum[lo] + rowsum[hi] + mid * rowsum[a], 1)
        inv = 1.0 / total
        p_lo, p_a, p_hi = pooled[lo], pooled[a], pooled[hi]
        for x in range(A):
            near = p_lo[x] + p_hi[x] + mid * p_a[x]
            tab[x] = p_a[x] * SCALE + _floordiv(near * (PRIOR_MASS * SCALE), total, inv) + 1
        s = 0
        for x in range(A):
            s += tab[x]
        tab_sum[a] = s
        inv = 1.0 / s
        prior = tab_a[a]
        for x in range(A):
            prior[x] = _floordiv(tab[x] * (PRIOR2 * SCALE), s, inv)
    dirty_a[:] = False
    for c in range(NA * N_STATE):
        a = c // N_STATE
        if dirty[c] or rebuilt[a]:
            for x in range(A):
                table[c, x] = counts[c, x] * SCALE + tab_a[a, x] + 1
    dirty[:] = False
    for m in range(n):
        c = ctx[m] * N_STATE + state[m]
        for x in range(A):
            out[m, x] = table[c, x]


@nb.njit(cache=True)
def sign_rows(tokens, state, ctx, n, scounts, sctx, srows):
    """The binary distributions of the signs of the non-zero values on the wavefront, in pixel order; returns
    how many."""
    k = 0
    for m in range(n):
        t = tokens[m]
        if t == 0:
            continue
        mc = 0 if t == 1 else (1 if t == 2 else (2 if t <= 4 else (3 if t <= 8 else (4 if t <= 15 else
                                                                                 (5 if t <= 23 else 6)))))
        c = (state[m] * N_MAG + mc) * 4 + min(ctx[m] // 6, 3)
        sctx[k] = c
        srows[k, 0] = 2 * scounts[c, 0] + 1
        srows[k, 1] = 2 * scounts[c, 1] + 1
        k += 1
    return k


@nb.njit(cache=True)
def signs_out(tokens, neg, n, symbols):
    """Encoder: the sign symbols of the non-zero values, in pixel order."""
    k = 0
    for m in range(n):
        if tokens[m] != 0:
            symbols[k] = neg[m]
            k += 1


@nb.njit(cache=True)
def signs_in(tokens, symbols, n, neg):
    """Decoder: the decoded sign symbols back to their pixels."""
    k = 0
    for m in range(n):
        neg[m] = 0
        if tokens[m] != 0:
            neg[m] = symbols[k]
            k += 1


@nb.njit(cache=True)
def commit(t, SQ, rows, cols, q, ctx, state, tokens, counts, dirty, sctx, symbols, ns, scounts):
    """Both sides, after version 2's commit of wavefront t: signed q for the next sign states, the token counts
    of the (activity, state) contexts, the sign counts. SQ: see sign_state."""
    i0, i1 = bounds(t, rows, cols)
    row = SQ[t % 3]
    for m in range(i1 - i0 + 1):
        i = i0 + m
        row[i + 1] = q[m]
        c = ctx[m] * N_STATE + state[m]
        counts[c, tokens[m]] += 1
        dirty[c] = True
    for j in range(ns):
        scounts[sctx[j], symbols[j]] += 1


@nb.njit(cache=True)
def exact_prediction(t, P, fine, rows, cols, n, pred):
    """Version 4: a pixel of an exact (constant) block is predicted by a decoded neighbour of an exact block (N, W or
    NW, the first there is), which holds the block's value, so only a constant region's first pixel costs more than
    a zero token. (NE adds nothing on aligned blocks: where it is exact and N is not, W is in the pixel's own block.)
    P as raster_kernels (padded by PAD above and on both sides)."""
    i0, _ = bounds(t, rows, cols)
    for m in range(n):
        i = i0 + m
        j = t - 2 * i
        if not fine[i, j]:
            continue
        pi, pj = i + PAD, j + PAD
        if i > 0 and fine[i - 1, j]:
            pred[m] = P[pi - 1, pj]
        elif j > 0 and fine[i, j - 1]:
            pred[m] = P[pi, pj - 1]
        elif i > 0 and j > 0 and fine[i - 1, j - 1]:
            pred[m] = P[pi - 1, pj - 1]
