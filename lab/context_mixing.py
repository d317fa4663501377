"""Measurement: bias cancellation and online context mixing on top of raster residual stream version 3.

Version 3's walk, predictor and coder (its own kernels, codec/raster_kernels*.py) run in one numba function that adds
up ideal code lengths (-log2 of version 3's integer tables, within 0.05 % of the real streams: "ideal" against
"real" in the per-slice lines), with two optional changes, each causal per wavefront (statistics committed through
wavefront t - 1 only; the *_seq variants update per pixel in wavefront order instead):

  bc_*  bias cancellation: per context a JPEG-LS correction C (T.87 A.6.2: error sum B, count N, C moves by at most
        one a pixel, halved at N = 64) added to the prediction before quantising; not where the activity bucket is
        below 2 (flat fill). Contexts: bc_tex N, W, NW, NE, NN, WW above the prediction x activity / 3 (512, CALIC's
        texture); bc_mix N, W, NW, NE above it x signs of the W and N residuals x activity / 6 (576); bc_sg the
        signs of the W, N, NW, NE residuals x activity / 6; bc_as activity x sign state. (A rounded running mean
        per context instead of C was far worse: +12 to +25 % on 693, the mean pulled by field-of-view edges.)
  cm    online context mixing (lpaq1 style, integer only): |q| binarised as a unary exponent class (0, 1, 2-3, 4-7,
        ...), its top 3 mantissa bits modelled, the rest raw, then the sign (after version 3's flip). Each binary
        decision: 8 counters (22-bit probability, rate 1 / (n + 1.5), n <= 255) on contexts {none, activity,
        activity x sign state, class of |qW| x |qN|, classes of |qNW|, |qNE|, max |qWW|, |qNN|, intensity / 16 x
        activity / 3, the sub-predictors' smallest recent error (third octaves) x sign state, signs of qW, qN, qNW,
        qNE x activity / 6}, stretched, mixed by a logistic mixer (weights per bin x 3 activity classes, learning
        rate 2/16384), then an APM on (bin, activity), 12-bit final probability. Costs are -log2 of that integer
        probability plus raw bits. Updates are applied after each wavefront (as the range-coded batch needs).
  cmL   cm started from a "learned" state: mixer weights, APM and counters (counts capped at 16) averaged over 12
        training slices (TRAIN_SLICES, ../shared/data/train, 512 crops, k 0..8), never over the held-out files.

Held-out files (HELD_OUT: bundled, none in ../shared/data/train; RG2 and RG3 are there, so CR is RG1 alone and DX is
deid-data's cat.dcm, centre 2048 x 2048 crop; emri_small first 4 frames). Bytes = header + ideal bits / 8;
"vs v3" against version 3's ideal bytes, "/JLS" = (real v3 / CharLS at the same k) x (design / v3 ideal):

| mod | k | v3/JLS | bc_tex vs v3 | bc_mix vs v3 | cm vs v3 | cm/JLS | cmL vs v3 | bc_tex+cm vs v3 | bc_mix+cmL vs v3 |
|---|---|---|---|---|---|---|---|---|---|
| CT | 0 | 0.787 | +10.47 % | +12.96 % | -5.76 % | 0.742 | -5.57 % | +5.94 % | +7.17 % |
| CT | 1 | 0.732 | +4.30 % | +6.06 % | -7.59 % | 0.677 | -7.02 % | -1.18 % | -0.23 % |
| CT | 2 | 0.698 | +2.86 % | +4.07 % | -8.44 % | 0.639 | -7.67 % | -3.23 % | -2.49 % |
| CT | 4 | 0.681 | -1.97 % | +1.01 % | -8.64 % | 0.622 | -7.52 % | -7.99 % | -5.32 % |
| CT | 8 | 0.664 | -3.59 % | -2.76 % | -9.23 % | 0.603 | -7.49 % | -10.23 % | -8.80 % |
| CT | 16 | 0.637 | -5.14 % | -3.65 % | -9.98 % | 0.574 | -7.51 % | -12.50 % | -9.69 % |
| MR | 0 | 0.907 | +1.59 % | +0.98 % | -1.13 % | 0.896 | -1.31 % | +0.57 % | -0.32 % |
| MR | 1 | 0.878 | -0.20 % | -1.40 % | -1.71 % | 0.863 | -1.87 % | -1.38 % | -2.47 % |
| MR | 2 | 0.862 | -0.29 % | -1.42 % | -2.02 % | 0.844 | -2.17 % | -1.69 % | -2.68 % |
| MR | 4 | 0.849 | -0.36 % | -1.59 % | -2.02 % | 0.832 | -2.15 % | -1.66 % | -2.62 % |
| MR | 8 | 0.841 | -0.71 % | -1.43 % | -1.66 % | 0.827 | -1.78 % | -1.52 % | -2.09 % |
| MR | 16 | 0.767 | -1.41 % | -1.55 % | -0.63 % | 0.762 | -0.68 % | -1.16 % | -1.30 % |
| CR | 0 | 0.987 | -0.14 % | -0.10 % | +0.19 % | 0.989 | +0.19 % | +0.17 % | +0.20 % |
| CR | 1 | 0.984 | -0.15 % | -0.13 % | -0.07 % | 0.984 | -0.09 % | -0.10 % | -0.08 % |
| CR | 2 | 0.984 | -0.17 % | -0.13 % | -0.30 % | 0.981 | -0.31 % | -0.36 % | -0.32 % |
| CR | 4 | 0.982 | -0.21 % | -0.17 % | +0.06 % | 0.983 | +0.05 % | -0.02 % | -0.02 % |
| CR | 8 | 0.978 | -0.27 % | -0.26 % | +0.15 % | 0.980 | +0.16 % | +0.03 % | +0.04 % |
| CR | 16 | 0.973 | -0.37 % | -0.33 % | -0.04 % | 0.972 | -0.04 % | -0.22 % | -0.17 % |
| DX | 0 | 0.985 | +0.45 % | +0.56 % | +0.05 % | 0.986 | +0.07 % | +0.63 % | +0.74 % |
| DX | 1 | 0.980 | +0.17 % | +0.22 % | +0.19 % | 0.982 | +0.19 % | +0.42 % | +0.45 % |
| DX | 2 | 0.969 | +0.14 % | +0.20 % | +0.27 % | 0.971 | +0.27 % | +0.44 % | +0.50 % |
| DX | 4 | 0.964 | +0.06 % | +0.27 % | +0.10 % | 0.965 | +0.09 % | +0.19 % | +0.37 % |
| DX | 8 | 0.960 | -0.00 % | +0.17 % | -0.32 % | 0.957 | -0.36 % | -0.28 % | -0.15 % |
| DX | 16 | 0.931 | -0.18 % | -0.17 % | -1.27 % | 0.919 | -1.26 % | -1.30 % | -1.29 % |

Bias cancellation is slice-dependent: eCT_Supplemental +31 % lossless (bc_tex), 693 -13 % at k = 8; cmL beats cm
only on the 64 x 64 MR slices (-3 % against +1 %), loses up to 2.5 points on 512 x 512 CT. Per-pixel updates
(cm_seq) against the per-wavefront batch on 512 crops of 693 / MR2: CT -5.1 / -10.1 % against -5.0 / -9.4 % (k 0 /
4), MR -1.5 / -2.2 % against -1.5 / -2.2 %; with a mixer rate 8x higher the batch lost (MR +4 %), per pixel not.
"actx" (activity bucket raised to the expected-error bucket) changed nothing (-0.01 %).
Measuring walk, ms per 512 x 512 (one shared core, ideal-cost logs included): v3 62, bc_* 68-70, cm 404 (so about
+340 ms for the mixer's ~8-12 binary decisions a pixel, both encoder and decoder).

Cheaper mixers (2 December 2026; designs "cm:m=...:apm=...:mb=..." pick the models by their index in MODELS, the
APM and the mantissa bits modelled; 512 crops of 693_UNCR and MR2_UNCR, k 0 / 4, vs v3, ms per 512 x 512 measuring
walk in the same run, v3 47-48):

| design | CT k=0 | CT k=4 | MR k=0 | MR k=4 | ms |
|---|---|---|---|---|---|
| cm (all 8 models, APM, 3 mantissa bits) | -4.80 % | -9.44 % | -1.57 % | -2.23 % | 274-276 |
| without order0 / act / act_state (each alone) | -4.87..-4.92 | -9.62..-9.73 | -1.58..-1.63 | -2.23..-2.27 | 263-269 |
| without eW_eN / experr_state / level_act / signs_act | -4.64 / -4.63 / -4.40 / -4.01 | -9.23 / -8.04 / -9.07 / -8.58 | -1.34 / -1.61 / -1.48 / -1.17 | -2.05 / -2.24 / -2.17 / -1.36 | 262-269 |
| cm:m=3,5,6,7 (four models) | -4.98 % | -9.76 % | -1.67 % | -2.31 % | 243 |
| cm:m=3,5,7 | -4.21 % | -8.57 % | -1.52 % | -2.20 % | 238 |
| cm:m=3,5,7:mb=1 | -3.62 % | -7.39 % | -1.20 % | -2.08 % | 220 |
| cm:apm=0 / cm:mb=1 / cm:mb=0 (8 models) | -4.71 / -4.22 / -1.91 | -8.84 / -8.29 / -6.17 | -1.34 / -1.27 / -0.19 | -2.27 / -2.11 / +0.80 | 269 / 251 / 228 |
| cm_seq (per-pixel updates) | -4.95 % | -9.97 % | -1.62 % | -2.25 % | 249 |

Four models carry all of the gain (three are redundant with the others), but the time hardly follows the model
count: most of the mixer's ~200 ms over v3 goes per binary decision, whatever the models (up to ~10 a pixel on CT
lossless: the unary exponent class, three mantissa bits, the sign), so a mixer within the 100 ms decode budget needs fewer
decisions a pixel (the exponent class from v3's multi-symbol counts, the mixer on what is left), not fewer models.

    cd /work/wt-cm && PYTHONPATH=/work/wt-cm NUMBA_CACHE_DIR=/tmp/numba-cm /work/main/.venv/bin/python \
        -m lab.context_mixing --designs v3 bc_tex bc_mix cm cmL bc_tex+cm bc_mix+cmL     (about 9 min)
    ... -m lab.context_mixing --files 693_UNCR.dcm MR2_UNCR.dcm --crop 512 --k 0 4 --designs v3 cm cm_seq --no-real
    ... -m lab.context_mixing --files 693_UNCR.dcm MR2_UNCR.dcm --crop 512 --k 0 4 --no-real \
        --designs v3 cm cm:m=3,5,6,7 cm:m=3,5,7 cm:m=3,5,7:mb=1 cm:apm=0 cm:mb=1 cm:mb=0 cm_seq
"""
from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numba as nb
import numpy as np
import pydicom

from codec import raster_kernels as K
from codec.mixer_kernels import SQUASH, STRETCH
from codec.mixer_kernels import _eclass as eclass
from codec.mixer_kernels import _squash as squash
from codec import raster_kernels3 as K3
from codec.raster_fit import fit_predictor
from codec.raster_kernels import ERR_CAP, N_SUB, PAD, _ilog2, _split, bounds, quantised
from codec.residual_raster import encode_residual
from codec.values import value_range
from lab.realdata import find

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"

# ------------------------------------------------------------------------------------ integer logistic arithmetic
# lpaq1's squash and stretch tables, squash() and the |q| class: the product coder's (codec/mixer_kernels.py), which
# started here
DT = np.array([65536 * 2 // (2 * n + 3) for n in range(1024)], np.int64)  # counter rate 1 / (n + 1.5)
LOG2 = np.log2(np.arange(1, 4097) / 4096.0)  # measurement only: -LOG2[p - 1] bits for probability p / 4096


# context models: (name, number of contexts); each has NBIN binary decisions per context
NBIN = 256
MODELS = (("order0", 1), ("act", 24), ("act_state", 72), ("eW_eN", 64), ("eNW_eNE_eFar", 512), ("level_act", 128),
          ("experr_state", 120), ("signs_act", 324))
N_IN = len(MODELS) + 1  # + a bias input
MODEL_BASE = np.cumsum([0] + [n * NBIN for _, n in MODELS]).astype(np.int64)
N_APM = 33


class CMState:
    """The online state of the context mixer: counters, mixer weights, APM (what a learned start would ship)."""

    def __init__(self, n_mix_sets: int = NBIN * 3):
        self.cp = np.full(MODEL_BASE[-1], 1 << 21, np.int64)  # 22-bit probabilities
        self.cn = np.zeros(MODEL_BASE[-1], np.int64)  # counts (rate)
        self.w = np.full((n_mix_sets, N_IN), (1 << 16) // 4, np.int64)  # 16.16 weights
        self.apm = np.zeros((NBIN * 24, N_APM), np.int64)
        for j in range(N_APM):
            self.apm[:, j] = SQUASH[min(max((j - 16) * 128, -2047), 2047) + 2048] * 16

    def copy(self) -> "CMState":
        c = CMState.__new__(CMState)
        c.cp, c.cn, c.w, c.apm = self.cp.copy(), self.cn.copy(), self.w.copy(), self.apm.copy()
        return c


@nb.njit(cache=True)
def cm_bit(y, ctxs, b, a, mixset, cp, cn, w, apm, climit, lr, seq, log, nlog, xs, slots, cfg, xbuf):
    """Code one binary decision y in bin b: returns its cost in bits; updates now (seq) or logs the update.
    cfg: [number of models used, their indices (8 slots), APM on, mantissa bits modelled]."""
    x = xbuf
    x[:] = 0
    dot = np.int64(0)
    for ii in range(cfg[0]):
        i = cfg[1 + ii]
        s = MODEL_BASE[i] + ctxs[i] * NBIN + b
        slots[ii] = s
        x[ii] = STRETCH[cp[s] >> 10]
        dot += x[ii] * w[mixset, ii]
    x[N_IN - 1] = 256
    dot += 256 * w[mixset, N_IN - 1]
    pm = squash(dot >> 16)
    # APM on (bin, activity), interpolating over the stretch of the mixed probability
    st = (STRETCH[pm] + 2048) * (N_APM - 1)
    lo = st >> 12
    wt = st & 4095
    ac = b * 24 + a
    pa = (apm[ac, lo] * (4096 - wt) + apm[ac, min(lo + 1, N_APM - 1)] * wt) >> 16
    p = (pm + 3 * pa) >> 2 if cfg[9] else pm
    p = min(max(p, 1), 4095)
    pr = p if y else 4096 - p
    cost = -LOG2[pr - 1]
    if seq:
        _cm_update(y, slots, x, mixset, pm, ac, lo, wt, cp, cn, w, apm, climit, lr, cfg)
    else:
        k = nlog[0]
        log[k, 0] = y
        log[k, 1] = mixset
        log[k, 2] = pm
        log[k, 3] = ac
        log[k, 4] = lo
        log[k, 5] = wt
        for i in range(N_IN):
            xs[k, i] = x[i]
        for i in range(cfg[0]):
            xs[k, N_IN + i] = slots[i]
        nlog[0] = k + 1
    return cost


@nb.njit(cache=True)
def _cm_update(y, slots, x, mixset, pm, ac, lo, wt, cp, cn, w, apm, climit, lr, cfg):
    for i in range(cfg[0]):
        s = slots[i]
        cp[s] += (((y << 22) - cp[s]) * DT[cn[s]]) >> 16
        if cn[s] < climit:
            cn[s] += 1
    err = ((y << 12) - pm) * lr
    for i in range(cfg[0]):
        w[mixset, i] += (x[i] * err) >> 14
    w[mixset, N_IN - 1] += (x[N_IN - 1] * err) >> 14
    if not cfg[9]:
        return
    g = (y << 16) + (y << 7) - y - y
    j = lo if wt < 2048 else min(lo + 1, N_APM - 1)
    apm[ac, j] += (g - apm[ac, j]) >> 7


@nb.njit(cache=True)
def cm_flush(log, xs, nlog, cp, cn, w, apm, climit, lr, cfg):
    slots = np.empty(N_IN - 1, np.int64)
    x = np.empty(N_IN, np.int64)
    for k in range(nlog[0]):
        for i in range(N_IN):
            x[i] = xs[k, i]
        for i in range(cfg[0]):
            slots[i] = xs[k, N_IN + i]
        _cm_update(log[k, 0], slots, x, log[k, 1], log[k, 2], log[k, 3], log[k, 4], log[k, 5], cp, cn, w, apm,
                   climit, lr, cfg)
    nlog[0] = 0


@nb.njit(cache=True)
def cm_pixel(u, neg, ctxs, a, cp, cn, w, apm, climit, lr, seq, log, nlog, xs, slots, msplit, cfg, xbuf):
    """|q| = u as a unary exponent class, up to 3 modelled mantissa bits, the rest raw; then the (flipped) sign.
    Returns (modelled bits, raw bits)."""
    e = eclass(u)
    cost = 0.0
    asel = min(a // 8, 2) if msplit else 0
    for j in range(e + 1):
        b = min(j, 31)
        cost += cm_bit(1 if j < e else 0, ctxs, b, a, b * 3 + asel, cp, cn, w, apm, climit, lr, seq, log, nlog, xs,
                       slots, cfg, xbuf)
    raw = 0
    if e >= 2:
        nb_ = e - 1  # bits below the leading one
        node = 1
        for pos in range(min(nb_, cfg[10])):
            bit = (u >> (nb_ - 1 - pos)) & 1
            b = 32 + min(e, 23) * 8 + node
            cost += cm_bit(bit, ctxs, b, a, b * 3 + asel, cp, cn, w, apm, climit, lr, seq, log, nlog, xs, slots, cfg,
                           xbuf)
            node = 2 * node + bit
        raw = max(nb_ - cfg[10], 0)
    if e > 0:
        b = 240 + min(e, 7)
        cost += cm_bit(neg, ctxs, b, a, b * 3 + asel, cp, cn, w, apm, climit, lr, seq, log, nlog, xs, slots, cfg,
                       xbuf)
    return cost, raw


# ------------------------------------------------------------------------------------ the walk
@nb.njit(cache=True)
def _bias_update(bc, err, B, N, C, reset):
    """JPEG-LS's bias correction (ITU-T T.87 A.6.2): err is the coded error after correction (q * step); the
    correction C moves by at most one a pixel when the running error sum B leaves (-N, 0]."""
    B[bc] += err
    if N[bc] == reset:
        B[bc] = B[bc] // 2 if B[bc] >= 0 else -((-B[bc] + 1) // 2)
        N[bc] //= 2
    N[bc] += 1
    if B[bc] <= -N[bc]:
        C[bc] -= 1
        B[bc] += N[bc]
        if B[bc] <= -N[bc]:
            B[bc] = -N[bc] + 1
    elif B[bc] > 0:
        C[bc] += 1
        B[bc] -= N[bc]
        if B[bc] > 0:
            B[bc] = 0


@nb.njit(cache=True)
def walk(v, k, lo, hi, weights, thresholds, A, bias_mode, bias_seq, bias_reset, bias_min_act, act_mode, cm_on, cm_seq, climit, lr,
         msplit, cp, cn, w, apm, res, cfg):
    """Stream version 3's walk (its own kernels), optionally with bias-cancelled predictions and/or a context-mixing
    coder for |q| and the sign, measured side by side. res: v3 token bits, v3 sign bits, v3 raw bits,
    CM modelled bits, CM raw bits, sum of |q|."""
    rows, cols = v.shape
    step = 2 * k + 1
    top = v[0, 0]
    P = np.full((rows + PAD, cols + 2 * PAD), top, np.int64)
    no_exact = np.zeros((rows, cols), np.uint8)  # stream version 4's exact blocks: none here
    E = np.zeros_like(P)
    QS = np.zeros_like(P)
    ES = np.zeros((rows + PAD, cols + 2 * PAD, N_SUB), np.int64)
    counts = np.zeros((K.N_CTX, A), np.int64)
    tab_a = np.zeros((K.N_CTX, A), np.int64)
    tab_sum = np.ones(K.N_CTX, np.int64)
    counts3 = np.zeros((K.N_CTX * K3.N_STATE, A), np.int64)
    table3 = np.zeros_like(counts3)
    dirty3 = np.ones(K.N_CTX * K3.N_STATE, np.bool_)
    dirty = np.ones(K.N_CTX, np.bool_)
    rebuilt = np.zeros(K.N_CTX, np.bool_)
    SQ = np.zeros((3, rows + 1), np.int64)
    m_ = min(rows, (cols + 1) // 2) + 1
    pred = np.zeros(m_, np.int64)
    pred0 = np.zeros(m_, np.int64)
    ctx = np.zeros(m_, np.int64)
    q = np.zeros(m_, np.int64)
    tok = np.zeros(m_, np.int64)
    nraw = np.zeros(m_, np.int64)
    raw = np.zeros(m_, np.int64)
    state = np.zeros(m_, np.int64)
    flip = np.zeros(m_, np.int64)
    neg = np.zeros(m_, np.int64)
    sctx = np.zeros(m_, np.int64)
    bctx = np.zeros(m_, np.int64)
    emin = np.zeros(m_, np.int64)
    symbols = np.zeros(m_, np.int32)
    srows = np.zeros((m_, 2), np.float64)
    scounts = np.zeros((K3.N_SIGN_CTX, 2), np.int64)
    rows_buf = np.zeros((m_, A), np.float64)
    sub = np.zeros((m_, N_SUB), np.int64)
    bsum = np.zeros(1024, np.int64)
    bcnt = np.zeros(1024, np.int64)
    bcor = np.zeros(1024, np.int64)
    # CM buffers
    ctxs = np.zeros(N_IN - 1, np.int64)
    slots = np.zeros(N_IN - 1, np.int64)
    xbuf = np.zeros(N_IN, np.int64)
    maxlog = m_ * 64
    log = np.zeros((maxlog, 6), np.int64)
    xs = np.zeros((maxlog, 2 * N_IN - 1), np.int64)
    nlog = np.zeros(1, np.int64)
    lvl_shift = max(_ilog2(hi - lo + 1) - 4, 0)
    for t in range(2 * (rows - 1) + cols):
        K.start(t, P, rows, top)
        n = K.predict(t, P, E, ES, rows, cols, step, weights, thresholds, lo, hi, pred, sub, ctx)
        K3.sign_state(t, SQ, rows, cols, n, state, flip)
        i0, _ = bounds(t, rows, cols)
        for m in range(n):
            i = i0 + m
            pi, pj = i + PAD, t - 2 * i + PAD
            # the sub-predictors' smallest recent error around the pixel (in steps): an expected-error measure
            best = ERR_CAP * 8
            for s in range(N_SUB):
                e_ = ES[pi, pj - 1, s] + ES[pi - 1, pj, s] + ES[pi - 1, pj - 1, s] + ES[pi - 1, pj + 1, s] \
                    + (ES[pi, pj - 2, s] + ES[pi - 2, pj, s]) // 2
                best = min(best, e_)
            emin[m] = best // step
            if act_mode == 1:  # activity bucket from act + expected error
                x = emin[m] + 1
                lg = _ilog2(x)
                half = 1 if (lg >= 1 and x >= (3 << (lg - 1))) else 0
                ctx[m] = min(max(ctx[m], 2 * lg + half), K.N_CTX - 1)
            pred0[m] = pred[m]
            if bias_mode > 0:
                p0 = pred[m]
                a = ctx[m]
                if bias_mode == 1:
                    bc = a * 3 + state[m]
                elif bias_mode == 2:  # CALIC-like texture: 6 neighbours against the prediction x activity / 3
                    tex = (1 if P[pi - 1, pj] > p0 else 0) | (2 if P[pi, pj - 1] > p0 else 0) \
                        | (4 if P[pi - 1, pj - 1] > p0 else 0) | (8 if P[pi - 1, pj + 1] > p0 else 0) \
                        | (16 if P[pi - 2, pj] > p0 else 0) | (32 if P[pi, pj - 2] > p0 else 0)
                    bc = tex * 8 + min(a // 3, 7)
                elif bias_mode == 4:  # N, W, NW, NE against the prediction x signs of the W, N residuals x act / 6
                    tex = (1 if P[pi - 1, pj] > p0 else 0) | (2 if P[pi, pj - 1] > p0 else 0) \
                        | (4 if P[pi - 1, pj - 1] > p0 else 0) | (8 if P[pi - 1, pj + 1] > p0 else 0)
                    sg = (np.sign(QS[pi, pj - 1]) + 1) + 3 * (np.sign(QS[pi - 1, pj]) + 1)
                    bc = (tex * 9 + sg) * 4 + min(a // 6, 3)
                else:  # signs of the W, N, NW, NE residuals x activity / 6
                    sg = (np.sign(QS[pi, pj - 1]) + 1) + 3 * (np.sign(QS[pi - 1, pj]) + 1) \
                        + 9 * (np.sign(QS[pi - 1, pj - 1]) + 1) + 27 * (np.sign(QS[pi - 1, pj + 1]) + 1)
                    bc = sg * 4 + min(a // 6, 3)
                bctx[m] = bc
                if a < bias_min_act:
                    bctx[m] = -1
                elif not bias_seq:
                    pred[m] = min(max(p0 + bcor[bc], lo), hi)
        # quantise (with per-pixel bias updates when bias_seq)
        most = 0
        for m in range(n):
            i = i0 + m
            if bias_mode > 0 and bias_seq and bctx[m] >= 0:
                bc = bctx[m]
                pred[m] = min(max(pred0[m] + bcor[bc], lo), hi)
            qq = quantised(v[i, t - 2 * i] - pred[m], k, step)
            q[m] = qq
            tk, nr, rw = _split(abs(qq))
            tok[m], nraw[m], raw[m] = tk, nr, rw
            neg[m] = 1 if (qq < 0) != (flip[m] == 1) else 0
            most = max(most, nr)
            if bias_mode > 0 and bias_seq and bctx[m] >= 0:
                _bias_update(bctx[m], qq * step, bsum, bcnt, bcor, bias_reset)
        # version 3's coder
        K3.probability_rows(counts3, counts, tab_a, tab_sum, table3, dirty3, dirty, rebuilt, ctx, state, n, rows_buf)
        for m in range(n):
            s = 0.0
            for x in range(A):
                s += rows_buf[m, x]
            res[0] += -np.log2(rows_buf[m, tok[m]] / s)
            res[2] += nraw[m]
        ns = K3.sign_rows(tok, state, ctx, n, scounts, sctx, srows)
        K3.signs_out(tok, neg, n, symbols)
        for j in range(ns):
            res[1] += -np.log2(srows[j, symbols[j]] / (srows[j, 0] + srows[j, 1]))
        for m in range(n):
            res[5] += abs(q[m])
        # the context mixer
        if cm_on:
            for m in range(n):
                i = i0 + m
                pi, pj = i + PAD, t - 2 * i + PAD
                a = ctx[m]
                eW, eN = min(eclass(E[pi, pj - 1]), 7), min(eclass(E[pi - 1, pj]), 7)
                eNW, eNE = min(eclass(E[pi - 1, pj - 1]), 7), min(eclass(E[pi - 1, pj + 1]), 7)
                eF = min(eclass(max(E[pi, pj - 2], E[pi - 2, pj])), 7)
                ctxs[0] = 0
                ctxs[1] = a
                ctxs[2] = a * 3 + state[m]
                ctxs[3] = eW * 8 + eN
                ctxs[4] = eNW * 64 + eNE * 8 + eF
                ctxs[5] = min((pred[m] - lo) >> lvl_shift, 15) * 8 + min(a // 3, 7)
                x = emin[m] + 1
                lg = _ilog2(x)
                f = x << 10 >> lg if lg < 50 else 1024
                third = 0 if f < 1290 else (1 if f < 1625 else 2)
                ctxs[6] = min(3 * lg + third, 39) * 3 + state[m]
                sg = (np.sign(QS[pi, pj - 1]) + 1) + 3 * (np.sign(QS[pi - 1, pj]) + 1) \
                    + 9 * (np.sign(QS[pi - 1, pj - 1]) + 1) + 27 * (np.sign(QS[pi - 1, pj + 1]) + 1)
                if flip[m]:  # in the flipped sign's frame
                    sg = 80 - sg
                ctxs[7] = sg * 4 + min(a // 6, 3)
                c_, r_ = cm_pixel(abs(q[m]), neg[m], ctxs, a, cp, cn, w, apm, climit, lr, cm_seq, log, nlog, xs,
                                  slots, msplit, cfg, xbuf)
                res[3] += c_
                res[4] += r_
            if not cm_seq:
                cm_flush(log, xs, nlog, cp, cn, w, apm, climit, lr, cfg)
        K.commit(t, P, E, ES, rows, cols, step, lo, hi, q, pred, sub, ctx, counts, dirty, tok, no_exact)
        K3.commit(t, SQ, rows, cols, q, ctx, state, tok, counts3, dirty3, sctx, symbols, ns, scounts)
        for m in range(n):
            i = i0 + m
            pi, pj = i + PAD, t - 2 * i + PAD
            QS[pi, pj] = q[m]
            if bias_mode > 0 and not bias_seq and bctx[m] >= 0:
                _bias_update(bctx[m], q[m] * step, bsum, bcnt, bcor, bias_reset)
        K.finish(t, P, rows, cols)
    err = 0
    for i in range(rows):
        for j in range(cols):
            err = max(err, abs(P[i + PAD, j + PAD] - v[i, j]))
    return err


DESIGNS = {
    # name: (bias_mode, bias_seq, act_mode, cm_on, cm_seq)
    "v3": (0, 0, 0, 0, 0),
    "bc_as": (1, 0, 0, 0, 0),
    "bc_tex": (2, 0, 0, 0, 0),
    "bc_sg": (3, 0, 0, 0, 0),
    "bc_tex_seq": (2, 1, 0, 0, 0),
    "actx": (0, 0, 1, 0, 0),
    "cm": (0, 0, 0, 1, 0),
    "cm_seq": (0, 0, 0, 1, 1),
    "bc_mix": (4, 0, 0, 0, 0),
    "bc_tex+cm": (2, 0, 0, 1, 0),
    "bc_sg+cm": (3, 0, 0, 1, 0),
    "bc_mix+cm": (4, 0, 0, 1, 0),
    "cmL": (0, 0, 0, 1, 0),  # cm from the state learned on training slices (--learn)
    "bc_mix+cmL": (4, 0, 0, 1, 0),
}


def cm_config(design: str) -> np.ndarray:
    """A design's mixer configuration from its suffix: "cm" = all 8 models, APM on, 3 mantissa bits modelled;
    "cm:m=1,3,6:apm=0:mb=1" = models 1, 3 and 6 of MODELS only, no APM, 1 mantissa bit modelled."""
    models, apm, mb = list(range(len(MODELS))), 1, 3
    for part in design.split(":")[1:]:
        key, val = part.split("=")
        if key == "m":
            models = [int(x) for x in val.split(",")]
        elif key == "apm":
            apm = int(val)
        elif key == "mb":
            mb = int(val)
        else:
            raise ValueError(f"unknown mixer option {key!r} in {design!r}")
    cfg = np.zeros(11, np.int64)
    cfg[0] = len(models)
    cfg[1:1 + len(models)] = models
    cfg[9], cfg[10] = apm, mb
    return cfg


def run(v, k, bits, signed, predictor, design, params, state: CMState | None = None):
    """Ideal bits (v3 coder: tokens + signs + raw; CM coder: modelled + raw) of one design on one slice."""
    bias_mode, bias_seq, act_mode, cm_on, cm_seq = DESIGNS[design.split(":")[0]]
    cfg = cm_config(design)
    bias_reset = params.get("reset", 64)
    lo, hi = value_range(bits, signed, ValueError)
    st = (state or CMState()).copy()
    res = np.zeros(6)
    A = K.n_tokens(bits)
    err = walk(v, k, lo, hi, predictor.weights, predictor.thresholds, A, bias_mode, bias_seq, bias_reset,
               params.get("bias_min_act", 2), act_mode,
               cm_on, cm_seq, params.get("climit", 255), params.get("lr", 2), params.get("msplit", 1),
               st.cp, st.cn, st.w, st.apm, res, cfg)
    assert err <= k, (design, err, k)
    return res, st


LEARN_N = 16  # a learned counter starts as if it had seen this many decisions


def learn(slices, params) -> CMState:
    """The "learned" start: the context mixer run over training slices (../shared/data/train only), its mixer
    weights and APM averaged, each counter's probability averaged over the slices that used it, its count capped
    at LEARN_N so that it still adapts to the slice being coded."""
    ws, apms, cps, cns = [], [], [], []
    for v, k, bits, signed in slices:
        pr = fit_predictor(v, k, intensity=True)
        _, st = run(v, k, bits, signed, pr, "cm", params)
        ws.append(st.w)
        apms.append(st.apm)
        cps.append(st.cp)
        cns.append(st.cn)
    out = CMState()
    out.w = np.mean(ws, axis=0).astype(np.int64)
    out.apm = np.mean(apms, axis=0).astype(np.int64)
    cn = np.array(cns)
    used = cn > 0
    num = (np.array(cps) * used).sum(axis=0)
    den = used.sum(axis=0)
    out.cp = np.where(den > 0, num // np.maximum(den, 1), 1 << 21).astype(np.int64)
    out.cn = np.minimum(cn.sum(axis=0), LEARN_N).astype(np.int64)
    return out


TRAIN_SLICES = (  # (path under ../shared/data/train, k): a few of each modality
    ("CT/petct-tumorseg/IM-0001-0070.dcm", 0), ("CT/petct-tumorseg/IM-0001-0160.dcm", 4), ("CT/wg04/CT2_UNC.dcm", 2),
    ("MR/wg04/MR1_UNC.dcm", 0), ("MR/wg04/MR2_UNC.dcm", 4), ("MR/wg04/MR3_UNC.dcm", 2), ("MR/wg04/MR4_UNC.dcm", 8),
    ("CR/wg04/RG2_JLSL.dcm", 0), ("CR/wg04/RG3_J2KR.dcm", 4), ("CR/pylibjpeg-data/NM_Kakadu44_SOTmarkerincons.dcm", 2),
    ("DX/pylibjpeg-data/966_fixed.dcm", 0), ("DX/pylibjpeg-data/JPEG2KLossless_1s_1f_u_16_16.dcm", 4))


# ------------------------------------------------------------------------------------ data
HELD_OUT = (  # bundled, not in ../shared/data/train (RG3 and RG2 are there), one copy of each image
    ("693_UNCR.dcm", 1), ("J2K_pixelrep_mismatch.dcm", 1), ("CT_small.dcm", 1), ("eCT_Supplemental.dcm", 2),
    ("MR2_UNCR.dcm", 1), ("MR_small.dcm", 1), ("emri_small.dcm", 4), ("MR-SIEMENS-DICOM-WithOverlays.dcm", 1),
    ("RG1_UNCR.dcm", 1), ("cat.dcm", 1))


def load(name: str, frames: int, crop: int):
    path = Path(name) if "/" in name else find(name)
    ds = pydicom.dcmread(path)
    bits, signed = int(ds.BitsStored), bool(int(ds.PixelRepresentation))
    arr = ds.pixel_array
    arr = arr.reshape((-1,) + arr.shape[-2:])[:frames]
    lo, hi = value_range(bits, signed, ValueError)
    mod = str(ds.Modality)
    out = []
    for a in arr:
        a = np.clip(a.astype(np.int64), lo, hi)
        if max(a.shape) > crop:
            r0, c0 = max(0, (a.shape[0] - crop) // 2), max(0, (a.shape[1] - crop) // 2)
            a = a[r0:r0 + crop, c0:c0 + crop]
        out.append(np.ascontiguousarray(a))
    return path.name, mod, out, bits, signed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[0, 1, 2, 4, 8, 16])
    ap.add_argument("--designs", nargs="+", default=["v3", "bc_tex", "bc_mix", "cm", "cmL", "bc_tex+cm", "bc_mix+cmL"])
    ap.add_argument("--files", nargs="+", default=None)
    ap.add_argument("--crop", type=int, default=2048)
    ap.add_argument("--lr", type=int, default=2)
    ap.add_argument("--climit", type=int, default=255)
    ap.add_argument("--reset", type=int, default=64)
    ap.add_argument("--bias-min-act", type=int, default=2, help="bias correction only in activity buckets >= this")
    ap.add_argument("--no-real", action="store_true", help="skip the real version 3 stream and JPEG-LS")
    args = ap.parse_args()
    from lab.residual_vs_jpegls import jpeg_ls_bytes
    params = dict(lr=args.lr, climit=args.climit, reset=args.reset, bias_min_act=args.bias_min_act)
    files = [(f, 1) for f in args.files] if args.files else HELD_OUT
    learned = None
    if any(d.endswith("cmL") for d in args.designs):
        slices = []
        for path, k in TRAIN_SLICES:
            if (TRAIN / path).exists():
                _, _, fr, bits, signed = load(str(TRAIN / path), 1, 512)
                slices.append((fr[0], k, bits, signed))
        learned = learn(slices, params)
        print(f"learned start from {len(slices)} training slices", flush=True)
    tot = collections.defaultdict(collections.Counter)
    timing = collections.Counter()
    warm = np.arange(32 * 32, dtype=np.int64).reshape(32, 32) % 97
    for d in args.designs:  # compile before timing
        run(warm, 1, 12, False, fit_predictor(warm, 1, intensity=True), d, params, learned)
    for f, nf in files:
        name, mod, frames, bits, signed = load(f, nf, args.crop)
        for fi, v in enumerate(frames):
            for k in args.k:
                pr = fit_predictor(v, k, intensity=True)
                head = 43 + 4 * pr.weights.size + 8 * pr.thresholds.size
                real = jls = 0
                if not args.no_real:
                    flat = np.full_like(v, int(v.flat[0]))
                    real = len(encode_residual(v, flat, k, bits, signed, pr, version=3))
                    jls = len(jpeg_ls_bytes(v, k, bits, signed))
                row = {}
                for d in args.designs:
                    t0 = time.perf_counter()
                    res, _ = run(v, k, bits, signed, pr, d, params, learned if d.endswith("cmL") else None)
                    timing[d] += time.perf_counter() - t0
                    timing[d + "_px"] += v.size
                    if DESIGNS[d.split(":")[0]][3]:  # the context mixer's bits for |q| and the sign, plus raw bits
                        row[d] = head + (res[3] + res[4]) / 8
                    else:  # version 3's coder (on this design's prediction)
                        row[d] = head + (res[0] + res[1] + res[2]) / 8
                key = (mod, k)
                tot[key]["real"] += real
                tot[key]["jls"] += jls
                tot[key]["px"] += v.size
                for d, b in row.items():
                    tot[key][d] += b
                base = row["v3"]
                print(f"{name[:28]:28s}[{fi}] {mod} {v.shape[0]}x{v.shape[1]} k={k:2d} real {real} ideal {base:.0f} "
                      f"jls {jls} | " + " ".join(f"{d} {100 * (b / base - 1):+.2f}%" for d, b in row.items()
                                                  if d != "v3"), flush=True)
    cols_ = [c for c in tot[next(iter(tot))] if c not in ("real", "jls", "px")]
    print("\n| mod | k | Mpx | v3 real/JLS | " + " | ".join(f"{c} vs v3 | {c}/JLS" for c in cols_ if c != "v3") + " |")
    for key in sorted(tot):
        t = tot[key]
        r = t["real"] / t["jls"] if t["jls"] else float("nan")
        print(f"| {key[0]} | {key[1]} | {t['px'] / 1e6:.2f} | {r:.3f} | " + " | ".join(
            f"{100 * (t[c] / t['v3'] - 1):+.2f} % | {r * t[c] / t['v3']:.3f}" for c in cols_ if c != "v3") + " |")
    for d in args.designs:
        print(f"{d}: {1e3 * timing[d] / timing[d + '_px'] * 512 * 512:.0f} ms per 512x512 (measuring walk)")


if __name__ == "__main__":
    main()
