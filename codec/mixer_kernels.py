"""Compiled (numba) kernels of the context-mixing coder: raster residual stream version 5 with flag bit 4.

The walk, the predictor and q are version 3's (or 4's); only how q is put into bits differs. Each |q| is binarised
as an exponent class (0, 1, 2-3, 4-7, ...) in unary up or down from a start class that the neighbours' recent errors
predict, the top MANTISSA bits below its leading one, the rest at probability one half, then the sign in version 3's
flipped frame. Each binary decision is predicted by four adaptive counters on different contexts (the W and N
neighbours' |q| classes; the prediction's intensity and the activity; the sub-predictors' smallest recent error and
the sign state; the W, N, NW, NE signs and the activity), mixed by a logistic mixer that learns online on each
decision's code length (lpaq1's design, integers only), refined by an APM stage and coded by a binary arithmetic
coder with 12-bit probabilities. Encoder and decoder run this same code on the same integers, so every probability
is identical on every CPU. Measured first in lab/context_mixing.py (design "cm_seq", models 3, 5, 6, 7 there).

Mixer model 2 (flag bit 5, new streams since 4 December 2026) adds a fifth model, the texture: which of the six
sub-predictions and the NW, NE, NN, WW values lie above the prediction (in the flipped frame), by the
sub-predictors' spread; a second, fast counter (rate 1/16) beside each model's counter as one more mixer input;
and its intensity context spans the values decoded so far instead of the bits' range. 1.6 % fewer bytes than model
1 on CT lossless, 3 % at k = 2 and 6 % at k = 16, 0.5-2 % on MR, for ~30 % more decode time (lab/mixed_coder.py).
Model 1 (flag bit 4 alone) keeps decoding as it was written.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from codec import raster_kernels as RK
from codec import raster_kernels3 as K3
from codec.raster_kernels import ERR_CAP, N_CTX, N_SUB, PAD, _ilog2, _split, bounds

# lpaq1's squash (12-bit probability of a stretch value / 256) as a table, and its inverse
_SQ_T = (1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785, 3901,
         3975, 4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094)


def _squash_int(d: int) -> int:
    if d > 2047:
        return 4095
    if d < -2047:
        return 1
    w, i = d & 127, (d >> 7) + 16
    return max(1, (_SQ_T[i] * (128 - w) + _SQ_T[i + 1] * w + 64) >> 7)


SQUASH = np.array([_squash_int(d) for d in range(-2048, 2048)], np.int64)  # index d + 2048
STRETCH = np.full(4096, 2047, np.int64)  # the smallest d whose squash reaches p
for _d in range(2047, -2048, -1):
    STRETCH[: _squash_int(_d) + 1] = _d
RATE = np.array([65536 * 2 // (2 * n + 3) for n in range(256)], np.int64)  # a counter's rate 1 / (n + 1.5)
COUNT_LIMIT = 255
MODELS = (64, 128, 120, 324, 4096)  # contexts of each model (see _contexts()); mixer model 1 has the first four
# binary decisions per context: "class > j" going up 0..47, mantissa nodes 48..239, signs 240..247, "class >= c" at the
# start class c 256..303, "class >= j" going down 304..351 (32-bit values have classes up to 34)
N_BIN = 352
UP, MANT, SIGN, FIRST, DOWN = 0, 48, 240, 256, 304
MAX_CLASS = 47


def _bin_slots() -> np.ndarray:
    """Where each bin's counter sits in its context's row: the bins of one exponent class side by side, so that a
    pixel's decisions touch a few cache lines of each table, not five regions (layout only: 4-7 % of the decode
    time, the same probabilities)."""
    order: list[int] = []
    for e in range(MAX_CLASS + 1):
        group = [FIRST + e, UP + e, DOWN + e] + ([MANT + e * 8 + j for j in range(8)] if e < 24 else []) \
            + ([SIGN + e] if e < 8 else [])
        order += [b for b in group if b not in order]
    order += [b for b in range(N_BIN) if b not in order]
    slot = np.empty(N_BIN, np.int64)
    slot[np.array(order)] = np.arange(N_BIN)
    return slot


BIN_SLOT = _bin_slots()
MODEL_BASE = np.cumsum((0,) + tuple(n * N_BIN for n in MODELS)).astype(np.int64)
N_APM = 33
MIX_SETS = N_BIN * 3  # the mixer's weights per bin and three activity classes
MANTISSA = 3  # mantissa bits modelled below the leading one; the rest at probability one half (2: +0.2-0.8 % on CT)
START_DIV = 4  # the class code starts at the class of (the neighbours' recent errors / this): 2 and 8 do as well
LEARNING_RATE = 2
FAST_SHIFT = 4  # model 2's second counter per context moves 1/16 of the way at each decision
WEIGHT_LIMIT = 1 << 24  # 16.16 weights stay within +-256
MAX_DECISIONS = 64  # buffer sizing: a pixel's bits stay under 2 x this many bytes (a 32-bit |q|: ~470 bits)


def models(model: int) -> tuple[int, int]:
    """Mixer model 1 or 2: (context models, counters a context)."""
    if model not in (1, 2):
        raise ValueError(f"no mixer model {model!r}")
    return (4, 1) if model == 1 else (5, 2)


def new_state(model: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mixer's starting state: counters at one half with no count, weights 1/4 (model 2: 1/8), the APM the
    identity."""
    nm, nc = models(model)
    prob = np.full(2 * MODEL_BASE[nm], 1 << 21, np.int32)  # 22-bit probabilities, slow and fast counter side by side
    count = np.zeros(MODEL_BASE[nm], np.uint8)
    weights = np.full((MIX_SETS, nm * nc + 1), (1 << 16) // (4 * nc), np.int64)  # + the bias input
    apm = np.empty((N_BIN * N_CTX, N_APM), np.int64)
    for j in range(N_APM):
        apm[:, j] = SQUASH[min(max((j - 16) * 128, -2047), 2047) + 2048] * 16
    return prob, count, weights, apm


# ---------------------------------------------------------------------------- binary arithmetic coder (32-bit)
# state: [low, high, code (decoder), position in the buffer]
@nb.njit(cache=True, inline="always")
def _code(enc, bit, p, cs, buf):
    """Code (enc) or decode one decision whose probability of a 1 is p / 4096; returns the bit."""
    lo, hi = cs[0], cs[1]
    mid = lo + ((hi - lo) >> 12) * p
    if not enc:
        bit = 1 if cs[2] <= mid else 0
    if bit:
        hi = mid
    else:
        lo = mid + 1
    while ((lo ^ hi) & 0xFF000000) == 0:
        if enc:
            buf[cs[3]] = hi >> 24
        else:
            cs[2] = ((cs[2] << 8) & 0xFFFFFFFF) | (buf[cs[3]] if cs[3] < len(buf) else 0)
        cs[3] += 1
        lo = (lo << 8) & 0xFFFFFFFF
        hi = ((hi << 8) & 0xFFFFFFFF) | 255
    cs[0], cs[1] = lo, hi
    return bit


def encoder_state() -> np.ndarray:
    return np.array([0, 0xFFFFFFFF, 0, 0], np.int64)


def decoder_state(body: np.ndarray) -> np.ndarray:
    code = 0
    for i in range(4):
        code = (code << 8) | (int(body[i]) if i < len(body) else 0)
    return np.array([0, 0xFFFFFFFF, code, 4], np.int64)


def flush(cs: np.ndarray, buf: np.ndarray) -> int:
    """The encoder's last byte: low's top byte + 1 lies in (low, high] (their top bytes differ), and the decoder
    reads zeros after it. Returns the stream's length."""
    buf[cs[3]] = (cs[0] >> 24) + 1
    return int(cs[3]) + 1


# ---------------------------------------------------------------------------- the mixer
@nb.njit(cache=True, inline="always")
def _squash(d):
    return SQUASH[min(max(d, -2047), 2047) + 2048]


@nb.njit(cache=True, inline="always")  # 5-7 % faster walks for ~4 s more compile, once (cached)
def _decision(enc, y, ctxs, nm, b, a, asel, prob, count, weights, apm, cs, buf, slots, x):
    """One binary decision in bin b: predict, code (or decode) it, learn from it; returns the bit. The first nm
    context models, each with its fast counter too where the weights have room for it (model 2)."""
    mix = b * 3 + asel
    n_in = weights.shape[1]
    fast = n_in > nm + 1
    dot = 0
    for i in range(nm):
        s = MODEL_BASE[i] + ctxs[i] * N_BIN + BIN_SLOT[b]
        slots[i] = s
        x[i] = STRETCH[prob[2 * s] >> 10]
        dot += x[i] * weights[mix, i]
        if fast:
            x[nm + i] = STRETCH[prob[2 * s + 1] >> 10]
            dot += x[nm + i] * weights[mix, nm + i]
    x[n_in - 1] = 256
    dot += 256 * weights[mix, n_in - 1]
    pm = _squash(dot >> 16)
    st = (STRETCH[pm] + 2048) * (N_APM - 1)
    lo, wt = st >> 12, st & 4095
    hi = min(lo + 1, N_APM - 1)
    ac = b * N_CTX + a
    pa = (apm[ac, lo] * (4096 - wt) + apm[ac, hi] * wt) >> 16
    p = min(max((pm + 3 * pa) >> 2, 1), 4095)
    y = _code(enc, y, p, cs, buf)
    for i in range(nm):
        s = slots[i]
        ps = np.int64(prob[2 * s])
        prob[2 * s] = ps + ((((y << 22) - ps) * RATE[count[s]]) >> 16)
        if count[s] < COUNT_LIMIT:
            count[s] += 1
        if fast:
            pf = np.int64(prob[2 * s + 1])
            prob[2 * s + 1] = pf + (((y << 22) - pf) >> FAST_SHIFT)
    err = ((y << 12) - pm) * LEARNING_RATE
    for i in range(n_in):
        weights[mix, i] = min(max(weights[mix, i] + ((x[i] * err) >> 14), -WEIGHT_LIMIT), WEIGHT_LIMIT)
    g = (y << 16) + (y << 7) - y - y
    j = lo if wt < 2048 else hi
    apm[ac, j] += (g - apm[ac, j]) >> 7
    return y


@nb.njit(cache=True, inline="always")
def _eclass(u):
    """0 for 0, else 1 + floor(log2 u): 1, 2-3, 4-7, ..."""
    return 0 if u == 0 else _ilog2(u) + 1


@nb.njit(cache=True)
def _contexts(pi, pj, a, state, flip, pred, lo, lvl_shift, step, E, ES, QS, ctxs):
    """The four models' contexts of the pixel at padded (pi, pj); everything in them is decoded already. Returns the
    sub-predictors' smallest recent error around it in steps, plus one."""
    ctxs[0] = min(_eclass(E[pi, pj - 1]), 7) * 8 + min(_eclass(E[pi - 1, pj]), 7)
    ctxs[1] = min((pred - lo) >> lvl_shift, 15) * 8 + min(a // 3, 7)
    best = ERR_CAP * 8  # the sub-predictors' smallest recent error around the pixel (its third octaves: ctxs[2])
    for s in range(N_SUB):
        e = ES[pi, pj - 1, s] + ES[pi - 1, pj, s] + ES[pi - 1, pj - 1, s] + ES[pi - 1, pj + 1, s] \
            + (ES[pi, pj - 2, s] + ES[pi - 2, pj, s]) // 2
        best = min(best, e)
    xe = best // step + 1
    lg = _ilog2(xe)
    f = xe << 10 >> lg if lg < 50 else 1024
    ctxs[2] = min(3 * lg + (0 if f < 1290 else (1 if f < 1625 else 2)), 39) * 3 + state
    sg = (np.sign(QS[pi, pj - 1]) + 1) + 3 * (np.sign(QS[pi - 1, pj]) + 1) \
        + 9 * (np.sign(QS[pi - 1, pj - 1]) + 1) + 27 * (np.sign(QS[pi - 1, pj + 1]) + 1)
    ctxs[3] = (80 - sg if flip else sg) * 4 + min(a // 6, 3)  # the signs in the flipped frame
    return xe


@nb.njit(cache=True)
def _texture(pi, pj, m, pred, flip, step, P, sub):
    """Mixer model 2's fifth context: which of the sub-predictions and the decoded NW, NE, NN and WW values lie
    above the prediction (below it where q is sign-flipped: the same frame as the sign's), by the class of the
    sub-predictions' spread in steps."""
    p, tex = pred[m], 0
    lo_, hi_ = sub[m, 0], sub[m, 0]
    for j in range(N_SUB):
        d = sub[m, j] - p
        tex = 2 * tex + ((1 if d < 0 else 0) if flip[m] else (1 if d > 0 else 0))
        lo_, hi_ = min(lo_, sub[m, j]), max(hi_, sub[m, j])
    for v in (P[pi - 1, pj - 1], P[pi - 1, pj + 1], P[pi - 2, pj], P[pi, pj - 2]):
        d = v - p
        tex = 2 * tex + ((1 if d < 0 else 0) if flip[m] else (1 if d > 0 else 0))
    return tex * 4 + min(_eclass((hi_ - lo_) // step), 3)


@nb.njit(cache=True)
def wavefront(enc, t, rows, cols, step, lo, hi, seen, P, pred, sub, ctx, state, flip, q, tokens, neg, E, ES, QS, nm,
              prob, count, weights, apm, cs, buf, n_tokens):
    """Code (enc = 1: from q and neg) or decode (enc = 0: into q, tokens and neg) the n pixels of wavefront t with
    the first nm context models (4: mixer model 1, 5: model 2; `seen`: the least and greatest value decoded so far,
    model 2's intensity scale). Returns n, or -1 when a decoded |q| is impossible (a corrupted stream): its token
    would be n_tokens or more."""
    i0, i1 = bounds(t, rows, cols)
    n = i1 - i0 + 1
    lvl_shift = max(_ilog2(hi - lo + 1) - 4, 0)
    e_max = _ilog2(hi - lo + 1) + 2  # |q| < 2 (hi - lo + 1): its class is at most this
    ctxs = np.empty(nm, np.int64)
    slots = np.empty(nm, np.int64)
    x = np.empty(weights.shape[1], np.int64)
    for m in range(n):
        i = i0 + m
        pi, pj = i + PAD, t - 2 * i + PAD
        a = ctx[m]
        xe = _contexts(pi, pj, a, state[m], flip[m], pred[m], lo, lvl_shift, step, E, ES, QS, ctxs)
        if nm > 4:
            ctxs[4] = _texture(pi, pj, m, pred, flip, step, P, sub)
            ctxs[1] = min(max((pred[m] - seen[0]) * 16 // (seen[1] - seen[0] + 1), 0), 15) * 8 + min(a // 3, 7)
        asel = min(a // 8, 2)
        u = abs(q[m]) if enc else 0
        e = _eclass(u)
        # the exponent class in unary from a start class c that the neighbours' errors predict, up or down: about
        # 2 + |class - c| decisions instead of class + 1 (a noisy slice's |q| has classes of 5-8)
        c = min(_eclass(xe // START_DIV), e_max, MAX_CLASS)
        up = 1 if c == 0 else _decision(enc, 1 if e >= c else 0, ctxs, nm, FIRST + c, a, asel, prob, count, weights,
                                        apm, cs, buf, slots, x)
        if up:
            j = c
            while _decision(enc, 1 if e > j else 0, ctxs, nm, UP + j, a, asel, prob, count, weights, apm, cs, buf,
                            slots, x):
                j += 1
                if j > min(e_max, MAX_CLASS):
                    return -1
            e = j
        else:
            j = c - 1
            while j > 0 and not _decision(enc, 1 if e >= j else 0, ctxs, nm, DOWN + j, a, asel, prob, count, weights,
                                          apm, cs, buf, slots, x):
                j -= 1
            e = j
        if e >= 2:
            below = e - 1
            node, v = 1, 1
            for pos in range(below):
                bit = (u >> (below - 1 - pos)) & 1
                if pos < MANTISSA:
                    b = MANT + min(e, 23) * 8 + node
                    bit = _decision(enc, bit, ctxs, nm, b, a, asel, prob, count, weights, apm, cs, buf, slots, x)
                    node = 2 * node + bit
                else:
                    bit = _code(enc, bit, 2048, cs, buf)
                v = 2 * v + bit
            u = v
        elif e == 1:
            u = 1
        sign = neg[m] if enc else 0
        if e > 0:
            sign = _decision(enc, sign, ctxs, nm, SIGN + min(e, 7), a, asel, prob, count, weights, apm, cs, buf, slots,
                             x)
        if not enc:
            neg[m] = sign
            q[m] = -u if (sign == 1) != (flip[m] == 1) else u
            tokens[m] = _split(u)[0]
            if tokens[m] >= n_tokens:
                return -1
        QS[pi, pj] = q[m]
    return n


# ---------------------------------------------------------------------------- the whole walk in one call
@nb.njit(cache=True)
def walk(enc, V, rows, cols, k, step, lo, hi, top, weights, thresholds, exact, fine, P, E, ES, pred, sub, ctx, state,
         flip, q, tokens, nraw, raw, neg, SQ, counts, dirty, counts3, dirty3, sctx, symbols, scounts, QS, nm, prob,
         count, mix, apm, cs, buf, n_tokens):
    """Every wavefront of version 3's walk (version 4's where `exact`) with this coder, encoding V (enc = 1) or
    decoding into P (enc = 0), in one compiled call: the range-coded walk crosses into Python at each wavefront
    for constriction, this one need not. Returns (status, buffer): status -1 when a decode met an impossible |q|
    or ran off its data; the encoder's buffer grows as it fills."""
    # model 2 scales the intensity context to the values decoded so far, not to the bits' range: 16-bit MR and
    # signed CT use a few hundredths of it (-0.1 ... -0.6 % bytes)
    seen = np.array([top, top], np.int64)
    for t in range(2 * (rows - 1) + cols):
        RK.start(t, P, rows, top)
        n = RK.predict(t, P, E, ES, rows, cols, step, weights, thresholds, lo, hi, pred, sub, ctx)
        K3.sign_state(t, SQ, rows, cols, n, state, flip)
        if exact:
            K3.exact_prediction(t, P, fine, rows, cols, n, pred)
        if enc:
            K3.quantise(t, V, rows, cols, k, step, pred, flip, fine, n, q, tokens, nraw, raw, neg)
            need = cs[3] + n * MAX_DECISIONS * 2 + 64
            if need > len(buf):
                grown = np.zeros(max(need, 2 * len(buf)), np.uint8)
                grown[: len(buf)] = buf
                buf = grown
        if wavefront(enc, t, rows, cols, step, lo, hi, seen, P, pred, sub, ctx, state, flip, q, tokens, neg, E, ES, QS,
                     nm, prob, count, mix, apm, cs, buf, n_tokens) < 0 or (not enc and cs[3] > len(buf) + 4):
            return -1, buf
        RK.commit(t, P, E, ES, rows, cols, step, lo, hi, q, pred, sub, ctx, counts, dirty, tokens, fine)
        K3.commit(t, SQ, rows, cols, q, ctx, state, tokens, counts3, dirty3, sctx, symbols, 0, scounts)
        if nm > 4:
            i0, i1 = bounds(t, rows, cols)
            for i in range(i0, i1 + 1):
                value = P[i + PAD, t - 2 * i + PAD]
                seen[0], seen[1] = min(seen[0], value), max(seen[1], value)
        RK.finish(t, P, rows, cols)
    return 0, buf
