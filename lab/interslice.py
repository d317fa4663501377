"""Measurement (issue 13): what the previous slice of a series buys as an extra input to the raster residual layer.

A prototype of the version 2 coder (codec/residual_raster.py, codec/raster_kernels.py) whose predictor may also read
the previous slice of the series: for lossless its original values, for near-lossless k its values as the real
coder decodes them (|error| <= k), got by running the unchanged version 2 walk on it. Designs:

  v2        today's coder, re-run here (its byte counts are checked against codec.residual_raster.encode_residual)
  ls3       the fitted L1 predictor gets 3 more neighbours from the previous slice: co-located, its N and its W
  ls9       ... a 3x3 block around the co-located pixel (the previous slice is known whole, so S/E are allowed)
  mix       3 more sub-predictors in the error-weighted mix: p + (N - pN), p + (W - pW),
            p + (W + N - NW) - (pW + pN - pNW), with p the co-located previous value
  ls9+mix   both
  ls9+mix+ctx  both, and the activity context also sees how well the previous slice predicts here
            (|N - pN| + |W - pW| over step, a stand-in for the inter-slice error around the pixel)
  ls9+mix+ectx both, and the activity context adds the previous slice's own coding errors |q| around the
            co-located pixel (the decoder has them: it just decoded that slice)
  2prev     ls9+mix+ectx, and the LS also gets the co-located pixel of the slice before the previous one
  ls25+mix+ectx  the same with a 5x5 block of the previous slice (not in the default list)
  bi        an upper bound for B-slices in hierarchical groups: ls9+mix+ectx, and the LS gets a 3x3 of the NEXT
            slice too (both neighbours coded intra here; in a real hierarchy they would be coded inter)

Byte counts are real: constriction's range coder over the same adaptive integer-count models as version 2, plus the
version 2 header (43 bytes) and 4 bytes a sent weight (12 + the previous-slice neighbours, one set or four). Nothing
is decoded back: it is a measurement, not a stream format (the decoder would run the same predict/commit).

    .venv/bin/python -m lab.interslice --k 0 2 8     # every run of >= 5 contiguous slices in the training set
    .venv/bin/python -m lab.interslice --k 0 --max-slices 12 --only PET --designs v2 ls9+mix+ectx
"""
from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import constriction
import numba as nb
import numpy as np
import pydicom

from codec import raster_kernels as K
from codec.raster_kernels import DIRECT, ERR_CAP, LS_BONUS, N_CTX, PAD, SHIFT, _ilog2, _INV_SQ, bounds
from codec.raster_fit import _PARITY_GAIN, _SAMPLE, _WEIGHT_BITS, _cost, _fit, neighbours, positions
from codec.residual_raster import encode_residual
from codec.robust_fit import l1_fit
from codec.values import value_range

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
HEAD_BYTES = 43  # version 2 header
MAX_SUB = 9

PREV_NONE = np.zeros((0, 2), np.int64)
PREV_3 = np.array([(0, 0), (-1, 0), (0, -1)], np.int64)
PREV_9 = np.array([(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)], np.int64)
DESIGNS = {  # name: (previous-slice LS offsets, sub-predictors, context mode)
    "v2": (PREV_NONE, 6, 0),
    "ls3": (PREV_3, 6, 0),
    "ls9": (PREV_9, 6, 0),
    "mix": (PREV_NONE, 9, 0),
    "ls9+mix": (PREV_9, 9, 0),
    "ls9+mix+ctx": (PREV_9, 9, 1),
    "ls9+mix+ectx": (PREV_9, 9, 2),
    "2prev": (PREV_9, 9, 2),  # ... and the co-located pixel of the slice before the previous one (LS)
}
PREV2 = {"2prev": np.array([(0, 0)], np.int64)}
DESIGNS["ls25+mix+ectx"] = (np.array([(di, dj) for di in range(-2, 3) for dj in range(-2, 3)], np.int64), 9, 2)
# an upper bound for B-slices (hierarchical groups): the NEXT slice's decoded values as well, a 3x3 of it in the LS
DESIGNS["bi"] = (PREV_9, 9, 2)
PREV2["bi"] = PREV_9


# ----------------------------------------------------------------------------------------------- kernels (numba)
@nb.njit(cache=True)
def _mix(pi, pj, ES, sub, n_sub):
    num = np.int64(0)
    den = np.int64(0)
    for s in range(n_sub):
        e = ES[pi, pj - 1, s] + ES[pi - 1, pj, s] + ES[pi - 1, pj - 1, s] + ES[pi - 1, pj + 1, s] \
            + (ES[pi, pj - 2, s] + ES[pi - 2, pj, s]) // 2
        w = ((_INV_SQ[e] if e < len(_INV_SQ) else 0) + 1) * (LS_BONUS if s == 0 else 1)
        num += w * sub[s]
        den += w
    return (2 * num + den) // (2 * den)


@nb.njit(cache=True)
def predict(t, P, Q, E, ES, rows, cols, step, weights, poff, n_sub, ctx_mode, lo, hi, pred, sub, ctx, EQ, Q2, poff2):
    """codec.raster_kernels.predict, plus: weights[12:] act on the previous slice Q (padded by PAD on all sides)
    at offsets `poff`; sub-predictors 6..8 when n_sub == 9; ctx_mode 1 adds the inter-slice gradient mismatch."""
    i0, i1 = bounds(t, rows, cols)
    by_parity = weights.shape[0] == 4
    nn = K.N_NEIGHBOURS
    n = 0
    for i in range(i0, i1 + 1):
        pi, pj = i + PAD, t - 2 * i + PAD
        w = weights[((i & 1) << 1) | ((t - 2 * i) & 1)] if by_parity else weights[0]
        acc = np.int64(1 << (SHIFT - 1))
        for m in range(nn):
            acc += w[m] * P[pi + K.OFFSETS[m, 0], pj + K.OFFSETS[m, 1]]
        for m in range(poff.shape[0]):
            acc += w[nn + m] * Q[pi + poff[m, 0], pj + poff[m, 1]]
        for m in range(poff2.shape[0]):
            acc += w[nn + poff.shape[0] + m] * Q2[pi + poff2[m, 0], pj + poff2[m, 1]]
        w_, n_, nw_, ne_ = P[pi, pj - 1], P[pi - 1, pj], P[pi - 1, pj - 1], P[pi - 1, pj + 1]
        sub[n, 0] = acc >> SHIFT
        sub[n, 1] = w_ + n_ - nw_
        sub[n, 2] = n_ + ne_ - P[pi - 2, pj + 1]
        sub[n, 3] = w_ + ne_ - n_
        sub[n, 4] = n_
        sub[n, 5] = w_
        qc, qw, qn, qnw = Q[pi, pj], Q[pi, pj - 1], Q[pi - 1, pj], Q[pi - 1, pj - 1]
        if n_sub == 9:
            sub[n, 6] = qc + n_ - qn
            sub[n, 7] = qc + w_ - qw
            sub[n, 8] = qc + (w_ + n_ - nw_) - (qw + qn - qnw)
        act = 2 * (E[pi, pj - 1] + E[pi - 1, pj]) + E[pi - 1, pj - 1] + E[pi - 1, pj + 1] + E[pi, pj - 2] \
            + E[pi - 2, pj] + (abs(w_ - nw_) + abs(n_ - nw_) + abs(n_ - ne_)) // step
        if ctx_mode == 1:  # how well the previous slice carries over here, in place of the intra gradients
            act = 2 * (E[pi, pj - 1] + E[pi - 1, pj]) + E[pi - 1, pj - 1] + E[pi - 1, pj + 1] + E[pi, pj - 2] \
                + E[pi - 2, pj] + min(abs(w_ - nw_) + abs(n_ - nw_) + abs(n_ - ne_),
                                      2 * (abs(n_ - qn) + abs(w_ - qw) + abs(nw_ - qnw))) // step
        if ctx_mode == 2:  # plus the previous slice's own coding errors |q| around the co-located pixel
            act += (2 * EQ[pi, pj] + EQ[pi - 1, pj] + EQ[pi + 1, pj] + EQ[pi, pj - 1] + EQ[pi, pj + 1]) // 2
        x = act + 1
        lg = _ilog2(x)
        half = 1 if (lg >= 1 and x >= (3 << (lg - 1))) else 0
        pred[n] = min(max(_mix(pi, pj, ES, sub[n], n_sub), lo), hi)
        ctx[n] = min(2 * lg + half, N_CTX - 1)
        n += 1
    return n


@nb.njit(cache=True)
def commit(t, P, E, ES, rows, cols, step, lo, hi, q, pred, sub, n_sub, ctx, counts, dirty, tokens):
    i0, i1 = bounds(t, rows, cols)
    for m in range(i1 - i0 + 1):
        i = i0 + m
        pi, pj = i + PAD, t - 2 * i + PAD
        d = min(max(pred[m] + q[m] * step, lo), hi)
        P[pi, pj] = d
        E[pi, pj] = abs(q[m])
        for s in range(n_sub):
            ES[pi, pj, s] = min(abs(d - sub[m, s]), ERR_CAP)
        counts[ctx[m], tokens[m]] += 1
        dirty[ctx[m]] = True


# ----------------------------------------------------------------------------------------------- fit
def _samples(values, padded, qpad, poff, k, parity, rng, q2pad=None, poff2=PREV_NONE):
    ii, jj = positions(values.shape, parity, rng)  # the product fit's sample, plus the previous slices' columns
    near = neighbours(padded, ii, jj)
    if k:
        near += rng.integers(-k, k, near.shape, endpoint=True)
    if len(poff):  # the previous slice's decoded values are known exactly to the encoder
        prev = qpad[(ii + PAD)[:, None] + poff[:, 0], (jj + PAD)[:, None] + poff[:, 1]].astype(np.float64)
        near = np.concatenate([near, prev], axis=1)
    if len(poff2):
        prev = q2pad[(ii + PAD)[:, None] + poff2[:, 0], (jj + PAD)[:, None] + poff2[:, 1]].astype(np.float64)
        near = np.concatenate([near, prev], axis=1)
    return near, values[ii, jj].astype(np.float64)


def fit_weights(values, qpad, poff, k, q2pad=None, poff2=PREV_NONE):
    rng = np.random.default_rng(0)
    step = 2 * k + 1
    padded = np.pad(values, ((PAD, 0), (PAD, PAD)), mode="edge")
    near, target = _samples(values, padded, qpad, poff, k, None, rng, q2pad, poff2)
    one = _fit(near, target)[None, :]
    if min(values.shape) < 8:
        return one
    classes = [_samples(values, padded, qpad, poff, k, (a, b), rng, q2pad, poff2) for a in (0, 1) for b in (0, 1)]
    four = np.stack([_fit(n, t) for n, t in classes])
    cost_one = sum(_cost(n, t, one[0], step) for n, t in classes)
    cost_four = sum(_cost(n, t, w, step) for (n, t), w in zip(classes, four)) + _WEIGHT_BITS * 3 * one.shape[1]
    return four if cost_four < _PARITY_GAIN * cost_one else one


# ----------------------------------------------------------------------------------------------- coder
def code(values: np.ndarray, prev: np.ndarray | None, k: int, bits: int, signed: bool, design: str,
         eprev: np.ndarray | None = None, prev2: np.ndarray | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    """Coded size in bytes of `values` given the previous slice's decoded values `prev` (None: intra only), its
    coding errors |q| `eprev` and the slice before it `prev2` (designs that use them); the decoded values
    (|values - decoded| <= k) and their |q|."""
    poff, n_sub, ctx_mode = DESIGNS[design]
    poff2 = PREV2.get(design, PREV_NONE)
    if prev is None:
        poff, n_sub, ctx_mode, poff2 = PREV_NONE, 6, 0, PREV_NONE
        prev = np.zeros_like(values)
    if prev2 is None:
        poff2 = PREV_NONE
        prev2 = prev
    if eprev is None:
        eprev = np.zeros_like(values)
    v = np.ascontiguousarray(values, np.int64)
    qpad = np.pad(np.asarray(prev, np.int64), PAD, mode="edge")
    q2pad = np.pad(np.asarray(prev2, np.int64), PAD, mode="edge")
    eqpad = np.pad(np.asarray(eprev, np.int64), PAD, mode="edge")
    weights = fit_weights(v, qpad, poff, k, q2pad, poff2)
    rows, cols = v.shape
    step = 2 * k + 1
    lo, hi = value_range(bits, signed, ValueError)
    top = int(v[0, 0])
    P = np.full((rows + PAD, cols + 2 * PAD), top, np.int64)
    E = np.zeros_like(P)
    ES = np.zeros(P.shape + (MAX_SUB,), np.int64)
    A = K.n_tokens(bits + 1)
    counts = np.zeros((N_CTX, A), np.int64)
    table = np.zeros((N_CTX, A), np.float64)
    dirty = np.ones(N_CTX, np.bool_)
    m = min(rows, (cols + 1) // 2) + 1
    pred, ctx, q, tok, nraw, raw = (np.zeros(m, np.int64) for _ in range(6))
    rows_buf = np.zeros((m, A), np.float64)
    sub = np.zeros((m, MAX_SUB), np.int64)
    sizes, rbits = np.zeros(m, np.int32), np.zeros(m, np.int32)
    categorical = constriction.stream.model.Categorical(perfect=False)
    uniform = constriction.stream.model.Uniform()
    enc = constriction.stream.queue.RangeEncoder()
    for t in range(K.n_wavefronts(rows, cols)):
        K.start(t, P, rows, top)
        n = predict(t, P, qpad, E, ES, rows, cols, step, weights, poff, n_sub, ctx_mode, lo, hi, pred, sub, ctx,
                    eqpad, q2pad, poff2)
        most = K.quantise(t, v, rows, cols, k, step, pred, n, q, tok, nraw, raw)
        K.probability_rows(counts, table, dirty, ctx, n, rows_buf)
        enc.encode(tok[:n].astype(np.int32), categorical, rows_buf[:n])
        for lo_ in range(0, most, K.RAW_CHUNK):
            mm = K.raw_chunk(nraw, raw, n, lo_, sizes, rbits)
            enc.encode(rbits[:mm], uniform, sizes[:mm])
        commit(t, P, E, ES, rows, cols, step, lo, hi, q, pred, sub, n_sub, ctx, counts, dirty, tok)
        K.finish(t, P, rows, cols)
    decoded = P[PAD:, PAD:PAD + cols].copy()
    assert int(np.abs(decoded - v).max()) <= k
    return HEAD_BYTES + 4 * weights.size + 4 * len(enc.get_compressed()), decoded, E[PAD:, PAD:PAD + cols].copy()


# ----------------------------------------------------------------------------------------------- data
def _normal(ds) -> np.ndarray:
    o = [float(x) for x in ds.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0])]
    return np.cross(o[:3], o[3:])


def series_runs(root: Path = TRAIN, min_len: int = 5) -> list[dict]:
    """Single-frame series of the training set, sorted along the slice normal and cut into runs of contiguous
    slices (a gap over 1.5x the median spacing, or a repeated position, ends a run)."""
    by_uid = collections.defaultdict(list)
    for line in (root / "MANIFEST.tsv").read_text().splitlines()[1:]:
        path = root / line.split("\t")[0]
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if int(ds.get("NumberOfFrames", 1) or 1) != 1 or "ImagePositionPatient" not in ds:
            continue
        by_uid[ds.SeriesInstanceUID].append((ds, path))
    runs = []
    for uid, items in by_uid.items():
        if len(items) < min_len:
            continue
        nrm = _normal(items[0][0])
        items.sort(key=lambda it: (float(np.dot(nrm, [float(x) for x in it[0].ImagePositionPatient])),
                                   int(it[0].get("InstanceNumber", 0) or 0)))
        z = np.array([float(np.dot(nrm, [float(x) for x in d.ImagePositionPatient])) for d, _ in items])
        dz = np.diff(z)
        if not np.all(dz > 1e-3):  # repeated positions (time series, diffusion directions): not a slice stack
            continue
        med = float(np.median(dz))
        cut = [0] + [i + 1 for i, d in enumerate(dz) if d > 1.5 * med] + [len(items)]
        for a, b in zip(cut, cut[1:]):
            if b - a >= min_len:
                d0 = items[a][0]
                runs.append(dict(uid=uid, modality=str(d0.Modality), desc=str(d0.get("SeriesDescription", "")),
                                 shape=(int(d0.Rows), int(d0.Columns)), bits=int(d0.BitsStored),
                                 signed=bool(int(d0.PixelRepresentation)),
                                 thickness=float(d0.get("SliceThickness", 0) or 0),
                                 spacing=med, paths=[p for _, p in items[a:b]]))
    return sorted(runs, key=lambda r: (r["modality"], -r["shape"][0] * r["shape"][1]))


def load(path: Path, bits: int, signed: bool) -> np.ndarray:
    a = pydicom.dcmread(path).pixel_array.astype(np.int64)
    lo, hi = value_range(bits, signed, ValueError)
    return np.clip(a, lo, hi)  # a few files carry values beyond BitsStored in unused high bits


# ----------------------------------------------------------------------------------------------- measurement
def measure(run: dict, ks, designs, max_slices: int, check: bool) -> dict:
    paths = run["paths"]
    if max_slices and len(paths) > max_slices + 1:  # a window in the middle of the run, not its edge slices
        a = (len(paths) - max_slices - 1) // 2
        paths = paths[a : a + max_slices + 1]
    slices = [load(p, run["bits"], run["signed"]) for p in paths]
    out = {}
    for k in ks:
        tot = collections.Counter()
        ms = collections.Counter()
        intra = []
        for v in slices:
            t0 = time.perf_counter()
            intra.append(code(v, None, k, run["bits"], run["signed"], "v2") + (time.perf_counter() - t0,))
        prev = eprev = prev2 = None
        for idx, v in enumerate(slices):
            base, dec, err, t_base = intra[idx]
            if check and idx < 2:
                real = len(encode_residual(v, np.zeros_like(v), k, run["bits"], run["signed"], version=2))
                assert real == base, (real, base)
            if idx == 0:
                tot["first"] += base
            else:
                tot["v2"] += base
                ms["v2"] += t_base
                for d in designs:
                    if d == "v2":
                        continue
                    t0 = time.perf_counter()
                    if d == "bi" and idx + 1 == len(slices):
                        b = base  # the last slice has no next one
                    else:
                        after = intra[idx + 1][1] if d == "bi" else prev2
                        b, _, _ = code(v, prev, k, run["bits"], run["signed"], d, eprev, after)
                    ms[d] += time.perf_counter() - t0
                    tot[d] += b
            # what the decoder holds of this slice: exact for k = 0, within k otherwise
            prev2, prev, eprev = prev, dec, err
        out[k] = dict(bytes=dict(tot), ms={d: 1000 * s / (len(slices) - 1) for d, s in ms.items()},
                      n=len(slices) - 1, raw=v.size * 2 * (len(slices) - 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--designs", nargs="+", choices=list(DESIGNS),
                    default=["v2", "ls3", "ls9", "mix", "ls9+mix", "ls9+mix+ectx", "2prev", "bi"])
    ap.add_argument("--max-slices", type=int, default=0, help="slices per run with a predecessor (0: all)")
    ap.add_argument("--only", default="", help="substring of the series description")
    args = ap.parse_args()
    runs = [r for r in series_runs() if args.only in r["desc"]]
    designs = [d for d in args.designs if d != "v2"]
    print("| series | mod | size | thick/spacing mm | slices | k | v2 bytes/slice | "
          + " | ".join(designs) + " | v2 ms | " + " | ".join(f"{d} ms" for d in designs) + " |")
    print("|" + "---|" * (7 + 2 * len(designs) + 1))
    total = {k: collections.Counter() for k in args.k}
    for r in runs:
        res = measure(r, args.k, args.designs, args.max_slices, check=True)
        for k, m in res.items():
            total[k].update(m["bytes"])
            b = m["bytes"]
            cells = [f"{100 * (1 - b[d] / b['v2']):+.1f} %" for d in designs]
            times = [f"{m['ms'][d]:.0f}" for d in designs]
            print(f"| {r['desc'][:28]} | {r['modality']} | {r['shape'][0]}x{r['shape'][1]} | "
                  f"{r['thickness']:.2g}/{r['spacing']:.2g} | {m['n']} | {k} | {b['v2'] / m['n']:.0f} | "
                  + " | ".join(cells) + f" | {m['ms']['v2']:.0f} | " + " | ".join(times) + " |", flush=True)
    for k, b in total.items():
        print(f"| all runs, bytes-weighted | | | | | {k} | | "
              + " | ".join(f"{100 * (1 - b[d] / b['v2']):+.1f} %" for d in designs) + " |" + " |" * (1 + len(designs)))


if __name__ == "__main__":
    main()
