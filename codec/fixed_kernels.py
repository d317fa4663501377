"""Compiled (numba) element-wise stages of the exact synthesis (codec/fixed.py): each reads a convolution's
accumulator once and writes the next stage's zero-padded input, so rescaling, IGDN and depth-to-space cost one pass.

Exactness: the same float64 operations as the numpy formulas they replace (a floor of a product by a power of two,
min/max, products of integers below 2**53), compiled without fastmath, so every value is the same integer.
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def rescale(acc, bias, inv_w, act_max, out, out_abs, r0, r1):
    """Rows r0:r1: out = clip(floor((acc + bias) * inv_w), +-act_max) on the valid columns of acc (h, w + 2, C)
    (out (h, w, C)), and out_abs = |out|."""
    w, c = out.shape[1], out.shape[2]
    for i in range(r0, r1):
        for j in range(w):
            for k in range(c):
                v = min(max(np.floor((acc[i, j, k] + bias[k]) * inv_w), -act_max), act_max)
                out[i, j, k] = v
                out_abs[i, j, k] = abs(v)


@nb.njit(cache=True, nogil=True)
def igdn_to_space(x, norm, beta, inv_a, inv_g, norm_max, act_max, xp, planar, r0, r1):
    """Rows r0:r1 of the IGDN of x (h, w, 4, C) given norm = |x| @ gamma (same shape), written depth-to-space into
    the padded next input: xp[1 + 2i + dy, 1 + 2j + dx, c] (planar=False) or xp[c, 1 + 2i + dy, 1 + 2j + dx]."""
    w, c = x.shape[1], x.shape[3]
    for i in range(r0, r1):
        for j in range(w):
            for s in range(4):
                r, q = 1 + 2 * i + s // 2, 1 + 2 * j + s % 2
                for k in range(c):
                    n = min(np.floor((norm[i, j, s, k] + beta[k]) * inv_a), norm_max)
                    v = np.floor(x[i, j, s, k] * n * inv_g)
                    v = min(max(v, -act_max), act_max)
                    if planar:
                        xp[k, r, q] = v
                    else:
                        xp[r, q, k] = v


@nb.njit(cache=True, nogil=True)
def conv_to_pixels(xp, wt, bias, inv_w, act_max, out, r0, r1):
    """The last stage for rows r0:r1: 3x3 'same' conv of the planar padded input xp (C, h + 2, w + 2) to 4 channels
    (wt (3, 3, C, 4)), rescaled, depth-to-space into out (2h, 2w). Vectorised along a row; exact in any order."""
    c, w = xp.shape[0], xp.shape[2] - 2
    acc = np.empty((4, w))
    for i in range(r0, r1):
        a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
        acc[:] = 0.0
        for dy in range(3):
            for dx in range(3):
                for k in range(c):
                    row = xp[k, i + dy, dx : dx + w]
                    w0, w1, w2, w3 = wt[dy, dx, k, 0], wt[dy, dx, k, 1], wt[dy, dx, k, 2], wt[dy, dx, k, 3]
                    for j in range(w):
                        v = row[j]
                        a0[j] += w0 * v
                        a1[j] += w1 * v
                        a2[j] += w2 * v
                        a3[j] += w3 * v
        for o in range(4):
            dy, dx = o // 2, o % 2
            for j in range(w):
                v = np.floor((acc[o, j] + bias[o]) * inv_w)
                out[2 * i + dy, 2 * j + dx] = min(max(v, -act_max), act_max)


@nb.njit(cache=True, nogil=True)
def winograd_in(xp, t0, t1, tw, v, s):
    """Winograd F(2x2, 3x3) input transform B^T d B of the 4x4 windows xp[2ti : 2ti + 4, 2tj : 2tj + 4, :] of tile
    rows t0:t1 (tw tiles a row) into v (16, tiles, C); s is (4, 4, C) scratch. Sums of 4 inputs: |v| <= 4 act_max."""
    c = xp.shape[2]
    for ti in range(t0, t1):
        r = 2 * ti
        for tj in range(tw):
            q, t = 2 * tj, (ti - t0) * tw + tj
            for b in range(4):
                for k in range(c):
                    d0, d1, d2, d3 = xp[r, q + b, k], xp[r + 1, q + b, k], xp[r + 2, q + b, k], xp[r + 3, q + b, k]
                    s[0, b, k] = d0 - d2
                    s[1, b, k] = d1 + d2
                    s[2, b, k] = d2 - d1
                    s[3, b, k] = d1 - d3
            for a in range(4):
                for k in range(c):
                    e0, e1, e2, e3 = s[a, 0, k], s[a, 1, k], s[a, 2, k], s[a, 3, k]
                    v[4 * a, t, k] = e0 - e2
                    v[4 * a + 1, t, k] = e1 + e2
                    v[4 * a + 2, t, k] = e2 - e1
                    v[4 * a + 3, t, k] = e1 - e3


@nb.njit(cache=True, nogil=True)
def winograd_out(m, t0, t1, tw, bias, inv_w, act_max, out, out_abs, y):
    """Output transform A^T m A of tile rows t0:t1 (m (16, tiles, C): (4 G g G^T) (.) (B^T d B) summed over the
    input channels, which is 4x the integer convolution), then as rescale(): out = clip(floor((conv + bias) *
    inv_w), +-act_max) and out_abs = |out|, for the pixels inside out (h, w, C). Each output sums 9 terms of m.
    y is (4, C) scratch."""
    h, w, c = out.shape[0], out.shape[1], out.shape[2]
    for ti in range(t0, t1):
        for tj in range(tw):
            t = (ti - t0) * tw + tj
            for k in range(c):
                u00 = m[0, t, k] + m[4, t, k] + m[8, t, k]
                u01 = m[1, t, k] + m[5, t, k] + m[9, t, k]
                u02 = m[2, t, k] + m[6, t, k] + m[10, t, k]
                u03 = m[3, t, k] + m[7, t, k] + m[11, t, k]
                u10 = m[4, t, k] - m[8, t, k] - m[12, t, k]
                u11 = m[5, t, k] - m[9, t, k] - m[13, t, k]
                u12 = m[6, t, k] - m[10, t, k] - m[14, t, k]
                u13 = m[7, t, k] - m[11, t, k] - m[15, t, k]
                y[0, k] = u00 + u01 + u02
                y[1, k] = u01 - u02 - u03
                y[2, k] = u10 + u11 + u12
                y[3, k] = u11 - u12 - u13
            for s in range(4):
                i, j = 2 * ti + s // 2, 2 * tj + s % 2
                if i < h and j < w:
                    for k in range(c):
                        v = min(max(np.floor((y[s, k] * 0.25 + bias[k]) * inv_w), -act_max), act_max)
                        out[i, j, k] = v
                        out_abs[i, j, k] = abs(v)


@nb.njit(cache=True, nogil=True)
def winograd_stage(xp, u, bias, gamma, beta, t0, t1, chunk, consts, x, ax, norm, nxt, planar, vbuf, mbuf, s, y):
    """Tile rows t0:t1 of one synthesis stage, chunk tile rows at a time: Winograd input transform, 16 GEMMs
    (numba's np.dot: the BLAS with the GIL released, so bands run in parallel), output transform + rescale, the IGDN
    norm GEMM and IGDN + depth-to-space into nxt. consts = (1/2**FW, 1/2**FA, 1/2**FG, norm max, ACT_MAX);
    vbuf, mbuf: flat scratch of 16 * chunk * tiles-a-row * (C, Cout); s (4, 4, C) and y (4, Cout) scratch."""
    h, w, cout = x.shape
    cin, c = xp.shape[2], cout // 4
    tw = (w + 1) // 2
    inv_w, inv_a, inv_g, norm_max, act_max = consts
    x4, n4 = x.reshape(h, w, 4, c), norm.reshape(h, w, 4, c)
    for a in range(t0, t1, chunk):
        b = min(t1, a + chunk)
        n = (b - a) * tw
        vv, mm = vbuf[: 16 * n * cin].reshape(16, n, cin), mbuf[: 16 * n * cout].reshape(16, n, cout)
        winograd_in(xp, a, b, tw, vv, s)
        for p in range(16):
            np.dot(vv[p], u[p], mm[p])
        winograd_out(mm, a, b, tw, bias, inv_w, act_max, x, ax, y)
        r0, r1 = 2 * a, min(h, 2 * b)
        np.dot(ax[r0:r1].reshape(-1, c), gamma, norm[r0:r1].reshape(-1, c))
        igdn_to_space(x4, n4, beta, inv_a, inv_g, norm_max, act_max, nxt, planar, r0, r1)
