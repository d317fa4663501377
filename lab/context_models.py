"""Measurement: richer context modelling for the version 2 residual coder (same walk, same predictor, real bytes).

A prototype of the version 2 coder (codec/residual_raster.py, codec/raster_kernels.py) whose token contexts may
add, next to the half-octave activity bucket, a secondary index, and whose q may be sign-flipped before folding:

  act3      third-octave activity buckets (36) instead of half octaves (24)
  intB      B intensity bins of the prediction (per-image quantiles of the values, sent: 4 bytes a threshold)
  sgn       flip q when the W and N residuals lean negative (their sum < 0); context: 0 if both are 0, 2 if both
            are non-zero with the same sign, 1 otherwise
  sgnv      flip q by a sign vote (count of q > 0 minus q < 0) kept per (activity/2, 4-bit texture of N, W, NW, NE
            against the prediction) context -- robust where a mean would be pulled by the field-of-view border;
            context: 0 if the vote is 0 else 1 + (|vote| large against its count)
  sprB      B bins of the sub-predictors' spread (max - min over step, in octaves)
  ss, ssa   |q| is the token and the (flipped) sign a binary symbol of its own, context: sign state x magnitude
            class (x 4 coarse activity classes for ssa); st instead puts the sign in the token (doubled alphabet)
  sgn4      4-neighbour sign vote (4 states); sgnf: sgn's flip without its contexts
  halveN    a context's counts are halved when they pass N;  p2_N: back-off prior weighs N tokens (default 32)
  bo        back-off: a (activity, secondary) context's prior is its activity bucket's pooled counts (with the
            neighbouring buckets' prior, as version 2), weighing PRIOR2 tokens; without bo the secondary contexts
            have only version 2's neighbouring-bucket prior within the same secondary index

Every probability is an integer (exact float64): version 2's table on the pooled activity counts, then
counts*SCALE + that table scaled to PRIOR2*SCALE + 1 for a secondary context. Byte counts are real (constriction's
range coder) plus the version 2 header (43 bytes), 4 bytes a weight and the design's side information; "v2" is
checked byte for byte against codec.residual_raster.encode_residual(version=2), and bo+sgn+ssa+p2_64+halve8192
against version 3 (the stream it became). Nothing is decoded back.

    .venv/bin/python -m lab.context_models --k 0 2
    ... -m lab.context_models --k 0 --designs v2 bo+int4 bo+sgn --files CT_small.dcm
"""
from __future__ import annotations

import argparse
import collections
from pathlib import Path

import constriction
import numba as nb
import numpy as np
import pydicom

from codec import raster_kernels as K
from codec.raster_kernels import ERR_CAP, N_SUB, PAD, SHIFT, _ilog2, _mix, bounds
from codec.residual_raster import encode_residual, fit_weights
from codec.values import value_range
from lab.realdata import find

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
FILES = ("693_UNCR.dcm", "J2K_pixelrep_mismatch.dcm", "CT_small.dcm", str(TRAIN / "CT/wg04/CT2_UNC.dcm"),
         str(TRAIN / "CT/petct-tumorseg/IM-0001-0061.dcm"),
         "MR2_UNCR.dcm", "MR_small.dcm", str(TRAIN / "MR/wg04/MR1_UNC.dcm"), "RG1_UNCR.dcm")
HEAD_BYTES = 43
V3 = "bo+sgn+ssa+p2_64+halve8192"  # what codec.residual_raster's stream version 3 codes
SCALE, PRIOR_MASS = K.SCALE, K.PRIOR_MASS


def parse(design: str) -> dict:
    """'bo+int4+sgn' -> the kernel configuration."""
    cfg = dict(act3=0, n_int=1, sign=0, n_spr=1, bo=0, prior2=32, halve=0, st=0)
    for part in design.split("+"):
        if part == "v2":
            continue
        elif part == "act3":
            cfg["act3"] = 1
        elif part.startswith("int"):
            cfg["n_int"] = int(part[3:])
        elif part == "sgn":
            cfg["sign"] = 1
        elif part == "sgnv":
            cfg["sign"] = 2
        elif part == "sgnf":  # flip only, no context
            cfg["sign"] = 3
        elif part == "sgn5":  # sgn's magnitude contexts, flip by 2(qW + qN) + qNW + qNE, its size in the sign's
            cfg["sign"] = 5
        elif part == "sgn4":
            cfg["sign"] = 4
        elif part == "st":
            cfg["st"] = 1
        elif part == "ss":  # the sign as its own binary symbol (context: sign state x magnitude class)
            cfg["st"] = 2
        elif part == "ssa":  # ... x coarse activity
            cfg["st"] = 3
        elif part.startswith("spr"):
            cfg["n_spr"] = int(part[3:])
        elif part == "bo":
            cfg["bo"] = 1
        elif part.startswith("p2_"):
            cfg["prior2"] = int(part[3:])
        elif part.startswith("halve"):
            cfg["halve"] = int(part[5:])
        else:
            raise ValueError(part)
    return cfg


def n_sign(sign: int) -> int:
    return 3 if sign in (1, 2, 5) else (4 if sign == 4 else 1)


# ----------------------------------------------------------------------------------------------- kernels (numba)
@nb.njit(cache=True)
def predict(t, P, E, SQ, ES, rows, cols, step, weights, lo, hi, pred, sub, actb, sec, flip,
            act3, thr, sign, n_spr, vote, vcount, vctx):
    i0, i1 = bounds(t, rows, cols)
    by_parity = weights.shape[0] == 4
    n_int = thr.shape[0] + 1
    ns = 3 if (sign == 1 or sign == 2 or sign == 5) else (4 if sign == 4 else 1)
    n = 0
    for i in range(i0, i1 + 1):
        pi, pj = i + PAD, t - 2 * i + PAD
        w = weights[((i & 1) << 1) | ((t - 2 * i) & 1)] if by_parity else weights[0]
        acc = np.int64(1 << (SHIFT - 1))
        for m in range(K.N_NEIGHBOURS):
            acc += w[m] * P[pi + K.OFFSETS[m, 0], pj + K.OFFSETS[m, 1]]
        w_, n_, nw_, ne_ = P[pi, pj - 1], P[pi - 1, pj], P[pi - 1, pj - 1], P[pi - 1, pj + 1]
        sub[n, 0] = acc >> SHIFT
        sub[n, 1] = w_ + n_ - nw_
        sub[n, 2] = n_ + ne_ - P[pi - 2, pj + 1]
        sub[n, 3] = w_ + ne_ - n_
        sub[n, 4] = n_
        sub[n, 5] = w_
        act = 2 * (E[pi, pj - 1] + E[pi - 1, pj]) + E[pi - 1, pj - 1] + E[pi - 1, pj + 1] + E[pi, pj - 2] \
            + E[pi - 2, pj] + (abs(w_ - nw_) + abs(n_ - nw_) + abs(n_ - ne_)) // step
        p = min(max(_mix(pi, pj, ES, sub[n]), lo), hi)
        pred[n] = p
        x = act + 1
        lg = _ilog2(x)
        if act3 == 0:
            half = 1 if (lg >= 1 and x >= (3 << (lg - 1))) else 0
            a = min(2 * lg + half, 23)
        else:  # thirds of an octave: x against 2**lg * 2**(1/3), 2**(2/3) ~ 1.26, 1.587 (in 1/1024ths)
            f = x << 10 >> lg if lg < 50 else 1024
            third = 0 if f < 1290 else (1 if f < 1625 else 2)
            a = min(3 * lg + third, 35)
        actb[n] = a
        # secondary index: intensity bin, sign state, spread bin
        ib = 0
        while ib < n_int - 1 and p >= thr[ib]:
            ib += 1
        s = 0
        flip[n] = 0
        if sign == 1 or sign == 3 or sign == 5:
            qw, qn = SQ[pi, pj - 1], SQ[pi - 1, pj]
            b = qw + qn
            if sign == 5:
                b = 2 * b + SQ[pi - 1, pj - 1] + SQ[pi - 1, pj + 1]
                vctx[n] = min(_ilog2(2 * abs(b)), 5) if b != 0 else 0
            flip[n] = 1 if b < 0 else 0
            if sign == 1 or sign == 5:
                if qw == 0 and qn == 0:
                    s = 0
                elif (qw > 0 and qn > 0) or (qw < 0 and qn < 0):
                    s = 2
                else:
                    s = 1
        elif sign == 4:
            b = 2 * (np.sign(SQ[pi, pj - 1]) + np.sign(SQ[pi - 1, pj])) + np.sign(SQ[pi - 1, pj - 1]) \
                + np.sign(SQ[pi - 1, pj + 1])
            flip[n] = 1 if b < 0 else 0
            s = (abs(b) + 1) // 2 if abs(b) < 5 else 3
        elif sign == 2:
            tex = (1 if n_ > p else 0) | (2 if w_ > p else 0) | (4 if nw_ > p else 0) | (8 if ne_ > p else 0)
            vc = min(a // 2, 15) * 16 + tex
            vctx[n] = vc
            v = vote[vc]
            flip[n] = 1 if v < 0 else 0
            if v == 0:
                s = 0
            elif 8 * abs(v) < vcount[vc]:
                s = 1
            else:
                s = 2
        sp = 0
        if n_spr > 1:
            mx = sub[n, 0]
            mn = sub[n, 0]
            for k in range(1, N_SUB):
                mx = max(mx, sub[n, k])
                mn = min(mn, sub[n, k])
            sp = min(_ilog2((mx - mn) // step + 1) // 2, n_spr - 1)
        sec[n] = (ib * ns + s) * n_spr + sp
        n += 1
    return n


@nb.njit(cache=True)
def quantise(t, V, rows, cols, k, step, pred, flip, n, q, tokens, nraw, raw, st, half_a, sgn):
    i0, _ = bounds(t, rows, cols)
    most = 0
    for m in range(n):
        i = i0 + m
        r = V[i, t - 2 * i] - pred[m]
        qq = (abs(r) + k) // step
        if r < 0:
            qq = -qq
        q[m] = qq
        f = -qq if flip[m] else qq
        if st == 1:  # the sign in the token: tokens of negative values follow those of the non-negative ones
            tk, nr, rw = K._split(abs(f))
            if f < 0:
                tk += half_a
        elif st >= 2:
            tk, nr, rw = K._split(abs(f))
            sgn[m] = 1 if f < 0 else 0
        else:
            tk, nr, rw = K._split(2 * f if f >= 0 else -2 * f - 1)
        tokens[m], nraw[m], raw[m] = tk, nr, rw
        most = max(most, nr)
    return most


@nb.njit(cache=True)
def commit(t, P, E, SQ, ES, rows, cols, step, lo, hi, q, pred, sub, actb, sec, nsec, counts, pooled, dirty,
           dirty_a, tokens, sign, vote, vcount, vctx):
    i0, i1 = bounds(t, rows, cols)
    for m in range(i1 - i0 + 1):
        i = i0 + m
        pi, pj = i + PAD, t - 2 * i + PAD
        d = min(max(pred[m] + q[m] * step, lo), hi)
        P[pi, pj] = d
        E[pi, pj] = abs(q[m])
        SQ[pi, pj] = q[m]
        for s in range(N_SUB):
            ES[pi, pj, s] = min(abs(d - sub[m, s]), ERR_CAP)
        c = actb[m] * nsec + sec[m]
        counts[c, tokens[m]] += 1
        pooled[actb[m], tokens[m]] += 1
        dirty[c] = True
        dirty_a[actb[m]] = True
        if sign == 2:
            vc = vctx[m]
            vote[vc] += 1 if q[m] > 0 else (-1 if q[m] < 0 else 0)
            vcount[vc] += 1


@nb.njit(cache=True)
def _halve(counts, pooled, c, a, A):
    for x in range(A):
        pooled[a, x] -= counts[c, x] - (counts[c, x] + 1) // 2
        counts[c, x] = (counts[c, x] + 1) // 2


@nb.njit(cache=True)
def probability_rows(counts, pooled, tab_a, table, dirty, dirty_a, nsec, bo, prior2, halve, actb, sec, n, out):
    """v2's table on the pooled activity counts (neighbouring-bucket prior); with secondary contexts their own
    counts plus that table as a prior of mass prior2 (bo) or, without bo, v2's rule within each secondary index."""
    NA, A = pooled.shape
    if halve > 0:
        for c in range(NA * nsec):
            if dirty[c]:
                tot = 0
                for x in range(A):
                    tot += counts[c, x]
                if tot > halve:
                    _halve(counts, pooled, c, c // nsec, A)
                    dirty_a[c // nsec] = True
    rebuilt = np.zeros(NA, np.bool_)
    if nsec == 1 or bo == 1:
        K.rebuild(pooled, tab_a, dirty_a, rebuilt)  # version 2's tables on the pooled activity counts
    if nsec == 1:
        for m in range(n):
            for x in range(A):
                out[m, x] = tab_a[actb[m], x]
    else:
        for c in range(NA * nsec):
            a, s = c // nsec, c % nsec
            if bo == 1:
                if not (dirty[c] or rebuilt[a]):
                    continue
                tot = 0
                for x in range(A):
                    tot += tab_a[a, x]
                for x in range(A):
                    table[c, x] = counts[c, x] * SCALE + tab_a[a, x] * (prior2 * SCALE) // tot + 1
            else:
                a0, a1 = max(a - 1, 0), min(a + 2, NA)
                stale = False
                for aa in range(a0, a1):
                    stale = stale or dirty[aa * nsec + s]
                if not stale:
                    continue
                total = 0
                for aa in range(a0, a1):
                    for x in range(A):
                        total += counts[aa * nsec + s, x]
                total = max(total, 1)
                for x in range(A):
                    near = 0
                    for aa in range(a0, a1):
                        near += counts[aa * nsec + s, x]
                    table[c, x] = counts[c, x] * SCALE + near * (PRIOR_MASS * SCALE) // total + 1
        for m in range(n):
            c = actb[m] * nsec + sec[m]
            for x in range(A):
                out[m, x] = table[c, x]
    dirty[:] = False
    dirty_a[:] = False


@nb.njit(cache=True)
def sign_rows(tok, sgn, sec, actb, n, st, ns, n_spr, scounts, sctx, srows, ssym, sign, vctx):
    """The signs of the non-zero values of a wavefront, with their binary distributions (integer counts), and
    the counts updated; returns how many."""
    k = 0
    for m in range(n):
        if tok[m] == 0:
            continue
        t = tok[m]
        mc = 0 if t == 1 else (1 if t == 2 else (2 if t <= 4 else (3 if t <= 8 else (4 if t <= 15 else
                                                                                 (5 if t <= 23 else 6)))))
        s = (sec[m] // n_spr) % ns if sign != 5 else vctx[m]
        c = (s * 8 + mc) * 4 + (min(actb[m] // 6, 3) if st == 3 else 0)
        sctx[k] = c
        srows[k, 0] = 2 * scounts[c, 0] + 1
        srows[k, 1] = 2 * scounts[c, 1] + 1
        ssym[k] = sgn[m]
        k += 1
    for j in range(k):
        scounts[sctx[j], ssym[j]] += 1
    return k


# ----------------------------------------------------------------------------------------------- coder
def thresholds(values: np.ndarray, n_int: int) -> np.ndarray:
    """Per-image intensity thresholds: quantiles of the values, leaving out a value that covers over 5 % of the
    image (a field-of-view or background fill)."""
    if n_int <= 1:
        return np.zeros(0, np.int64)
    v = values.ravel()
    vals, cnt = np.unique(v, return_counts=True)
    fill = vals[cnt.argmax()]
    if cnt.max() > 0.05 * v.size:
        v = v[v != fill]
    if v.size == 0:
        v = values.ravel()
    return np.quantile(v, np.arange(1, n_int) / n_int, method="nearest").astype(np.int64)


def code(values: np.ndarray, k: int, bits: int, signed: bool, design: str, weights=None) -> int:
    cfg = parse(design)
    v = np.ascontiguousarray(values, np.int64)
    weights = fit_weights(v, k) if weights is None else weights
    thr = thresholds(v, cfg["n_int"])
    nsec = cfg["n_int"] * n_sign(cfg["sign"]) * cfg["n_spr"]
    NA = 36 if cfg["act3"] else 24
    rows, cols = v.shape
    step = 2 * k + 1
    lo, hi = value_range(bits, signed, ValueError)
    top = int(v[0, 0])
    P = np.full((rows + PAD, cols + 2 * PAD), top, np.int64)
    E, SQ = np.zeros_like(P), np.zeros_like(P)
    ES = np.zeros(P.shape + (N_SUB,), np.int64)
    A = K.n_tokens(bits + 1)
    half_a = A
    if cfg["st"] == 1:
        A = 2 * A
    elif cfg["st"] >= 2:  # |q| only
        A = K.n_tokens(bits)
    counts = np.zeros((NA * nsec, A), np.int64)
    pooled = np.zeros((NA, A), np.int64)
    tab_a = np.zeros((NA, A), np.int64)
    table = np.zeros((NA * nsec, A), np.int64)
    dirty, dirty_a = np.ones(NA * nsec, np.bool_), np.ones(NA, np.bool_)
    vote, vcount = np.zeros(256, np.int64), np.zeros(256, np.int64)
    m = min(rows, (cols + 1) // 2) + 1
    pred, actb, sec, flip, vctx, q, tok, nraw, raw, sgn, sctx = (np.zeros(m, np.int64) for _ in range(11))
    scounts = np.zeros((6 * 8 * 4, 2), np.int64)
    srows = np.zeros((m, 2), np.float64)
    ssym = np.zeros(m, np.int32)
    rows_buf = np.zeros((m, A), np.float64)
    sub = np.zeros((m, N_SUB), np.int64)
    sizes, rbits = np.zeros(m, np.int32), np.zeros(m, np.int32)
    categorical = constriction.stream.model.Categorical(perfect=False)
    uniform = constriction.stream.model.Uniform()
    enc = constriction.stream.queue.RangeEncoder()
    for t in range(K.n_wavefronts(rows, cols)):
        K.start(t, P, rows, top)
        n = predict(t, P, E, SQ, ES, rows, cols, step, weights, lo, hi, pred, sub, actb, sec, flip,
                    cfg["act3"], thr, cfg["sign"], cfg["n_spr"], vote, vcount, vctx)
        most = quantise(t, v, rows, cols, k, step, pred, flip, n, q, tok, nraw, raw, cfg["st"], half_a, sgn)
        probability_rows(counts, pooled, tab_a, table, dirty, dirty_a, nsec, cfg["bo"], cfg["prior2"],
                         cfg["halve"], actb, sec, n, rows_buf)
        enc.encode(tok[:n].astype(np.int32), categorical, rows_buf[:n])
        if cfg["st"] >= 2:
            ns_ = sign_rows(tok, sgn, sec, actb, n, cfg["st"], n_sign(cfg["sign"]), cfg["n_spr"], scounts, sctx, srows, ssym,
                            cfg["sign"], vctx)
            if ns_:
                enc.encode(ssym[:ns_], categorical, srows[:ns_])
        for lo_ in range(0, most, K.RAW_CHUNK):
            mm = K.raw_chunk(nraw, raw, n, lo_, sizes, rbits)
            enc.encode(rbits[:mm], uniform, sizes[:mm])
        commit(t, P, E, SQ, ES, rows, cols, step, lo, hi, q, pred, sub, actb, sec, nsec, counts, pooled, dirty,
               dirty_a, tok, cfg["sign"], vote, vcount, vctx)
        K.finish(t, P, rows, cols)
    assert int(np.abs(P[PAD:, PAD:PAD + cols] - v).max()) <= k
    return HEAD_BYTES + 4 * weights.size + 4 * len(thr) + 4 * len(enc.get_compressed())


# ----------------------------------------------------------------------------------------------- data
def load(name: str, crop: int = 1024) -> tuple[str, str, np.ndarray, int, bool]:
    path = Path(name) if "/" in name else find(name)
    ds = pydicom.dcmread(path)
    bits, signed = int(ds.BitsStored), bool(int(ds.PixelRepresentation))
    a = ds.pixel_array
    a = a[0] if a.ndim == 3 else a
    a = a.astype(np.int64)
    lo, hi = value_range(bits, signed, ValueError)
    a = np.clip(a, lo, hi)
    if max(a.shape) > crop:  # the centre crop of a large radiograph, for speed
        r0, c0 = max(0, (a.shape[0] - crop) // 2), max(0, (a.shape[1] - crop) // 2)
        a = a[r0:r0 + crop, c0:c0 + crop]
    return path.name, str(ds.Modality), np.ascontiguousarray(a), bits, signed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--designs", nargs="+", default=["v2", "int4", "bo+int4", "bo+int8", "sgnf", "bo+sgn",
                                                     "bo+sgnv", "act3", "bo+spr3", "bo+int4+sgn"])
    ap.add_argument("--files", nargs="+", default=list(FILES))
    args = ap.parse_args()
    designs = [d for d in args.designs if d != "v2"]
    totals = {k: collections.defaultdict(collections.Counter) for k in args.k}
    print("| file | mod | shape | k | v2 bytes | " + " | ".join(designs) + " |", flush=True)
    print("|" + "---|" * (5 + len(designs)))
    for f in args.files:
        name, mod, v, bits, signed = load(f)
        for k in args.k:
            w = fit_weights(v, k)
            base = code(v, k, bits, signed, "v2", w)
            flat = np.full_like(v, int(v.flat[0]))
            real = len(encode_residual(v, flat, k, bits, signed, w, version=2))
            assert real == base, (name, k, real, base)
            b = {d: code(v, k, bits, signed, d, w) for d in designs}
            if V3 in b:  # the prototype of what stream version 3 is, byte for byte
                assert b[V3] == len(encode_residual(v, flat, k, bits, signed, w, version=3)), name
            totals[k][mod]["v2"] += base
            for d in designs:
                totals[k][mod][d] += b[d]
            print(f"| {name[:24]} | {mod} | {v.shape[0]}x{v.shape[1]} | {k} | {base} | "
                  + " | ".join(f"{100 * (b[d] / base - 1):+.2f} %" for d in designs) + " |", flush=True)
    for k in args.k:
        for mod, t in sorted(totals[k].items()):
            print(f"| total | {mod} | | {k} | {t['v2']} | "
                  + " | ".join(f"{100 * (t[d] / t['v2'] - 1):+.2f} %" for d in designs) + " |", flush=True)


if __name__ == "__main__":
    main()
