"""Measurement: does a LEARNED context model of the 9/7 subbands beat lab.wavelet_proto's adaptive counts by >= 10 %?

Data: the proto's transform and quantiser (q = sign floor(|c|/step_b + 0.3), step_b = D/sqrt(g_b)) at a fixed D per
slice, D = f * peak 10^(-PSNR_gate/20) sqrt(12) (the proto's search starts there; f = 1 evaluated, f in {0.7, 1, 1.4}
trained). Training: slices of /work/shared/data/train (CT, MR >= 128^2, CR, DX), none of wg04. Held out: the bundled
validation files (693_UNCR, J2K_pixelrep_mismatch, MR2_UNCR, RG1_UNCR), CT_small, MR_small and every wg04 file.
Baseline (i): the proto's own count model replayed (its njit context/probability/commit functions, wavefront order,
pooled back-off prior): ideal bits = -log2 p(token) + raw bits + -log2 p(sign), checked against its real range-coder
bytes. Learned, per coefficient (magnitude tokens only; raw bits and signs as (i)), over 32 symbols (tokens 0..30 and
an escape whose mass is split by the adaptive model's tail):
  (s)   static MLP on causal features (below; sibling = the same place in HL for LH, HL+LH for HH) -> 32 logits;
  (m)   mixer: the same features + the adaptive model's log-probabilities and its context's count -> a residual added
        to the adaptive log-probabilities (starts exactly at (i)).
  (m-)  (m) without the sibling feature (how much is the new feature rather than learning).
MLP: `depth` tanh layers of H units, Adam on mean code length (batch 4096), JAX on CPU, one thread. Features: 15
log2(1 + |q|) magnitudes/means (8 neighbours, parent + its 3x3 and 5x5 means, sibling + its 3x3 mean, two causal window
means over 13 and 68 coded coefficients), band class one-hot, LH flag.

    PYTHONPATH=. OMP_NUM_THREADS=1 python -m lab.wavelet_context_learned --check     (replay vs real bytes)
    PYTHONPATH=. OMP_NUM_THREADS=1 python -m lab.wavelet_context_learned --cache /tmp/ctxl --H 32 --depth 2 \
        --steps 6000                                       (~4 min on one core; --H 64 --steps 12000 --kinds s m: ~5 min)
    ... --H 64 --depth 2 --steps 12000 --kinds m --oracle --per-slice 100000   (trained ON the held-out slices: ceiling)

Replay check (ideal bits vs the proto's real range-coder payload, no guard, D at f = 1): real/ideal 0.997 693_UNCR,
0.998 J2K_pixelrep, 1.000 CT_small, 1.000 MR2_UNCR, 1.002 MR_small. Training: 39 slices (12 CT of one petct series, 24 MR
from 5 sources, 2 DX, 1 CR), 30,000 coefficients sampled per slice = 1.09 M rows (79 % zero tokens).
Held-out total bits (tokens + raw + signs), learned / (i) (tokens are 77-80 % of (i)'s bits):
  model                                 weights  MACs/coef   CT (4)   MR (4)   CR (2)  (CT = 693, J2K_pixrep, CT_small, CT2)
  (s)  H32 depth 1, 11 features (*)      1,696      1,632    0.998    1.016    1.031
  (m)  same, mixer                        2,752      2,688    0.940    0.993    0.987
  (m-) same, no sibling                   2,720      2,656    0.954    0.992    0.988
  (s)  H32 depth 2, all 15 features       2,880      2,784    0.971    1.009    0.994
  (m)  same, mixer                        3,936      3,840    0.934    0.993    0.977
  (m-) same, no sibling                   3,872      3,776    0.950    0.993    0.980
  (s)  H64 depth 2, 12 k steps            7,776      7,616    0.961    1.004    0.989
  (m)  same, mixer                        9,888      9,728    0.931    0.993    0.975
  (m)  H64 oracle: trained on held-out    9,888      9,728    0.864    0.974    0.968
(*) an earlier feature set (8 neighbours, parent, its 4-neighbour sum, sibling), since replaced by the 15 above.
Per file, (m) H64: 693 0.917, J2K_pixrep 0.936, CT_small 0.972, CT2 0.929, MR2 0.998, MR_small 0.959, MR1 0.974,
MR3 0.982, RG1 0.973, RG2 0.976. Decode cost (numpy float32, one wavefront batch a call, all 13 bands of a 512^2
slice, one shared core; features not included): 68-76 ms at 1.6-2.7 k MACs/coef, 138-147 ms at 2.8-3.8 k, 170-276 ms
at 9.7 k (on top of the proto's 107 ms decode).
Verdict: no. Best out-of-sample cut 6.9 % CT, 0.7 % MR, 2.5 % CR; even fitted to the held-out slices themselves the
same model class reaches 13.6 % on CT only (MR 2.6 %, CR 3.2 %): the adaptive counts already capture most of what
these causal features carry, and the rest is noise (MR2 at 1.7 bpp gains 0.2 %).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numba as nb
import numpy as np

from codec import raster_kernels as K
from lab import wavelet_proto as W

A_CAP = 32  # modelled symbols: tokens 0..30, 31 = escape (token >= 31, split by the adaptive tail)
HOLD = ("693_UNCR.dcm", "J2K_pixelrep_mismatch.dcm", "CT_small.dcm", str(W.TRAIN / "CT/wg04/CT2_UNC.dcm"),
        "MR2_UNCR.dcm", "MR_small.dcm", str(W.TRAIN / "MR/wg04/MR1_UNC.dcm"), str(W.TRAIN / "MR/wg04/MR3_UNC.dcm"),
        "RG1_UNCR.dcm", str(W.TRAIN / "CR/wg04/RG2_JLSL.dcm"))
PSNR = {"CT": 50.0, "MR": 48.0, "CR": 48.0, "DX": 48.0}


# ---------------------------------------------------------------------------------------------- replay of (i)
@nb.njit(cache=True)
def _replay_band(S, M, PM, has_p, cls, counts, totals, pooled, ptot, scounts, stotals, lp, conf, tokb, rawb, sgnb,
                 toks):
    """The proto's _Coder.band without a coder: per position its adaptive log2-probabilities over A_CAP symbols,
    its context's count, and the baseline's token, raw and sign bits."""
    h, w = M.shape
    A = counts.shape[1]
    n = min(h, w) + 1
    ctx, tok, nraw, raw = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    sctx, bctx = np.zeros(n, np.int64), np.zeros(n, np.int64)
    rows, srows = np.zeros((n, A)), np.zeros((n, 2))
    ssym = np.zeros(n, np.int32)
    for t in range(2 * (h - 1) + w):
        k = W._contexts(t, M, PM, has_p, cls, ctx)
        W._prob_rows(counts, pooled, ptot, ctx, k, rows)
        W._tokens(t, M, tok, nraw, raw)
        i0, i1 = K.bounds(t, h, w)
        for m in range(k):
            i = i0 + m
            pos = i * w + t - 2 * i
            tot = rows[m].sum()
            tail = 0.0
            for x in range(A):
                if x < A_CAP - 1:
                    lp[pos, x] = math.log2(rows[m, x] / tot)
                else:
                    tail += rows[m, x]
            for x in range(A, A_CAP - 1):
                lp[pos, x] = -1e9
            lp[pos, A_CAP - 1] = math.log2(tail / tot) if tail > 0 else -1e9
            if tok[m] >= A_CAP - 1:  # the escape's split: -log2 p(tok | tail)
                rawb[pos] = nraw[m] + math.log2(tail / rows[m, tok[m]])
            else:
                rawb[pos] = nraw[m]
            tokb[pos] = -math.log2(rows[m, tok[m]] / tot)
            toks[pos] = min(tok[m], A_CAP - 1)
            conf[pos] = math.log2(1.0 + totals[ctx[m]] / W.INC)
        ns = W._sign_rows(t, S, M, cls, scounts, sctx, srows, ssym, False)
        q = 0
        for i in range(i0, i1 + 1):
            j = t - 2 * i
            if M[i, j]:
                sgnb[i * w + j] = -math.log2(srows[q, ssym[q]] / (srows[q, 0] + srows[q, 1]))
                q += 1
        W._commit(counts, totals, ctx, tok, k)
        for m in range(k):
            bctx[m] = (ctx[m] // W.NP) % W.NB
        W._commit(pooled, ptot, bctx, tok, k)
        W._commit(scounts, stotals, sctx, ssym.astype(np.int64), ns)


def _shift(M, di, dj):
    """M at (i + di, j + dj), 0 outside."""
    h, w = M.shape
    out = np.zeros((h, w), np.float32)
    r0, r1, c0, c1 = max(0, -di), min(h, h - di), max(0, -dj), min(w, w - dj)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = M[r0 + di:r1 + di, c0 + dj:c1 + dj]
    return out


def _at(PM, h, w, scale):
    ii = np.minimum(np.arange(h) // scale, PM.shape[0] - 1)
    jj = np.minimum(np.arange(w) // scale, PM.shape[1] - 1)
    return PM[np.ix_(ii, jj)].astype(np.float32)


def _box(M, r0, r1, c0, c1):
    """Sum of M over rows i+r0..i+r1, cols j+c0..j+c1 (zero outside), by shifting."""
    return sum(_shift(M, di, dj) for di in range(r0, r1 + 1) for dj in range(c0, c1 + 1))


def _features(M, PM, sib, cls, orient):
    h, w = M.shape
    f = [_shift(M, di, dj) for di, dj in ((0, -1), (0, -2), (-1, 0), (-2, 0), (-1, -1), (-1, 1), (-1, -2), (-2, 1))]
    if PM is not None:
        P = PM.astype(np.float32)
        f += [_at(P, h, w, 2), _at(_box(P, -1, 1, -1, 1) - P, h, w, 2) / 8, _at(_box(P, -2, 2, -2, 2), h, w, 2) / 25]
    else:
        f += [np.zeros((h, w), np.float32)] * 3
    if sib is not None:
        Sb = _at(sib, h, w, 1)
        f += [Sb, (_box(Sb, -1, 1, -1, 1) - Sb) / 8]
    else:
        f += [np.zeros((h, w), np.float32)] * 2
    # causal windows (wavefront order: row i-1 up to j+1, i-2 up to j+3, row i up to j-1)
    f.append((_box(M, -2, -1, -3, 1) + _box(M, 0, 0, -3, -1)) / 13)
    f.append((_box(M, -6, -1, -8, 1) + _box(M, 0, 0, -8, -1)) / 68)
    X = np.log2(1.0 + np.stack([a.ravel() for a in f], 1))
    onehot = np.zeros((h * w, 8), np.float32)
    onehot[:, cls] = 1
    onehot[:, 7] = orient == 2
    return np.concatenate([X, onehot], 1).astype(np.float32)


def _pshift(PM, di, dj):
    """Parent's neighbour with edge clamping (as the proto's context)."""
    h, w = PM.shape
    ii = np.clip(np.arange(h) + di, 0, h - 1)
    jj = np.clip(np.arange(w) + dj, 0, w - 1)
    return PM[np.ix_(ii, jj)]


def replay(values, D):
    """Per band: (features, adaptive log-probs, conf, token, tok bits, raw bits, sign bits) for every coefficient."""
    v = np.asarray(values, np.int64)
    shape = v.shape
    hs, ws = W.sizes(shape)
    a = v.astype(np.float64)
    W._dwt(a, hs, ws, False)
    qs = W._quantise(a, shape, float(np.float32(D)), W.THETA)
    maxbits = max(1, max(int(np.abs(q).max(initial=0)) for q in qs).bit_length() + 1)
    A = K.n_tokens(maxbits)
    counts, totals = np.zeros((W.NCTX, A), np.int64), np.zeros(W.NCTX, np.int64)
    pooled, ptot = np.ones((W.NB, A), np.int64), np.full(W.NB, A, np.int64)
    scounts, stotals = np.ones((W.NCLASS * 9, 2), np.int64), np.full(W.NCLASS * 9, 2, np.int64)
    parents, out = {}, []
    for q, (r0, r1, c0, c1, o, lev) in zip(qs, W.bands(shape)):
        S = np.zeros_like(q)
        if o == 0:
            W._med_residual(q.copy(), S, False)
        else:
            S = q
        M = np.abs(S)
        PM = parents.get((o, lev + 1))
        cls = W._band_class(o, lev)
        n = M.size
        lp = np.zeros((n, A_CAP), np.float64)
        conf, tokb, rawb, sgnb = (np.zeros(n) for _ in range(4))
        toks = np.zeros(n, np.int64)
        _replay_band(S, M, PM if PM is not None else np.zeros((1, 1), np.int64), PM is not None, cls, counts, totals,
                     pooled, ptot, scounts, stotals, lp, conf, tokb, rawb, sgnb, toks)
        sib = None
        if o == 2:
            sib = parents[(1, lev)]
        elif o == 3:
            hl, lh = parents[(1, lev)], parents[(2, lev)]
            sib = _at(hl, *M.shape, 1) + _at(lh, *M.shape, 1)
        X = _features(M, PM, sib, cls, o)
        out.append((X, lp.astype(np.float32), conf.astype(np.float32), toks, tokb, rawb, sgnb))
        if o:
            parents[(o, lev)] = M
    return out, qs


# ---------------------------------------------------------------------------------------------- data
def _gate_D(values, modality, f=1.0):
    peak = float(max(1, int(values.max()) - int(values.min())))
    return f * peak * 10 ** (-PSNR.get(modality, 48.0) / 20) * math.sqrt(12)


def train_files(seed=0):
    rng = np.random.default_rng(seed)
    rows = [l.split("\t") for l in (W.TRAIN / "MANIFEST.tsv").read_text().splitlines()[1:]]
    rows = [r for r in rows if "/wg04/" not in r[0] and r[3] in ("CT", "MR", "CR", "DX") and int(r[4]) >= 128
            and int(r[5]) >= 128 and int(r[6]) == 1]
    picks = []
    for src in sorted({r[0].rsplit("/", 1)[0] for r in rows}):
        rs = [r for r in rows if r[0].startswith(src + "/")]
        k = 12 if src.startswith("CT") else (6 if src.startswith("MR") else len(rs))
        picks += [rs[i][0] for i in sorted(rng.choice(len(rs), min(k, len(rs)), replace=False))]
    return [str(W.TRAIN / p) for p in picks]


def build(names, fs, per_slice, seed, cache: Path | None, tag):
    if cache and (cache / f"{tag}.npz").exists():
        z = np.load(cache / f"{tag}.npz")
        return [z[k] for k in ("X", "lp", "conf", "tok", "mod")]
    rng = np.random.default_rng(seed)
    parts = []
    for n, name in enumerate(names):
        fr = W._load(name)
        if fr is None:
            continue
        f = fs[n % len(fs)]
        bl, _ = replay(fr.values, _gate_D(fr.values, fr.modality, f))
        cat = [np.concatenate([b[k] if b[k].ndim > 1 else b[k][:, None] for b in bl]) for k in range(4)]
        idx = rng.choice(len(cat[0]), min(per_slice, len(cat[0])), replace=False)
        parts.append([c[idx] for c in cat])
        print(f"  {tag} {Path(name).name[:40]:40s} {fr.modality} {fr.values.shape} f {f}", flush=True)
    X, lp, conf, tok = (np.concatenate([p[k] for p in parts]) for k in range(4))
    res = [X, lp, conf[:, 0], tok[:, 0], np.zeros(1)]
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / f"{tag}.npz", X=X, lp=lp, conf=conf[:, 0], tok=tok[:, 0], mod=np.zeros(1))
    return res


# ---------------------------------------------------------------------------------------------- models
def _inputs(X, lp, conf, kind):
    if kind == "s":
        return X
    Xm = X if kind == "m" else np.delete(X, [11, 12], axis=1)
    return np.concatenate([Xm, np.maximum(lp, -24.0) / 8.0, conf[:, None] / 8.0], 1)


def init(nin, H, key, depth=1):
    import jax
    ks = jax.random.split(key, depth + 1)
    p, d = {}, nin
    for l in range(depth):
        p[f"W{l}"], p[f"b{l}"] = jax.random.normal(ks[l], (d, H)) / math.sqrt(d), np.zeros(H, np.float32)
        d = H
    p["Wo"], p["bo"] = jax.random.normal(ks[-1], (H, A_CAP)) * 0.01, np.zeros(A_CAP, np.float32)
    return p


def logits(p, x, lp, kind, xp=None):
    import jax.numpy as jnp
    xp = xp or jnp
    for l in range(len(p) // 2 - 1):
        x = xp.tanh(x @ p[f"W{l}"] + p[f"b{l}"])
    z = x @ p["Wo"] + p["bo"]
    if kind != "s":
        z = z + xp.maximum(lp, -60.0) * math.log(2)  # residual on the adaptive log-probabilities
    return xp.where(lp > -1e8, z, -1e9)


def fit(X, lp, conf, tok, kind, H, steps, depth=1, seed=0, batch=4096, lr=3e-3):
    import jax
    import jax.numpy as jnp
    x = _inputs(X, lp, conf, kind).astype(np.float32)
    p = init(x.shape[1], H, jax.random.PRNGKey(seed), depth)
    p = {k: jnp.asarray(v, jnp.float32) for k, v in p.items()}

    def loss(p, xb, lb, tb):
        z = logits(p, xb, lb, kind)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), tb[:, None], 1)) / math.log(2)

    m = {k: jnp.zeros_like(v) for k, v in p.items()}
    s = {k: jnp.zeros_like(v) for k, v in p.items()}

    @jax.jit
    def step(p, m, s, i, xb, lb, tb):
        l, g = jax.value_and_grad(loss)(p, xb, lb, tb)
        lr_i = lr * jnp.minimum(1.0, 2.0 * (1 - i / steps))
        m = {k: 0.9 * m[k] + 0.1 * g[k] for k in p}
        s = {k: 0.999 * s[k] + 0.001 * g[k] ** 2 for k in p}
        p = {k: p[k] - lr_i * (m[k] / (1 - 0.9 ** (i + 1))) / (jnp.sqrt(s[k] / (1 - 0.999 ** (i + 1))) + 1e-8)
             for k in p}
        return p, m, s, l

    rng = np.random.default_rng(seed)
    lpf = lp.astype(np.float32)
    t0, run = time.time(), []
    for i in range(steps):
        b = rng.integers(0, len(x), batch)
        p, m, s, l = step(p, m, s, i, x[b], lpf[b], tok[b])
        run.append(float(l))
        if (i + 1) % max(1, steps // 5) == 0:
            print(f"    {kind} H{H} step {i + 1} train bits/coef {np.mean(run[-200:]):.4f} ({time.time() - t0:.0f} s)",
                  flush=True)
    return {k: np.asarray(v) for k, v in p.items()}


def token_bits(p, X, lp, conf, tok, kind):
    import jax
    x = _inputs(X, lp, conf, kind).astype(np.float32)
    out = np.zeros(len(x))
    for a in range(0, len(x), 65536):
        z = logits(p, x[a:a + 65536], lp[a:a + 65536], kind)
        ls = np.asarray(jax.nn.log_softmax(z))
        out[a:a + 65536] = -np.take_along_axis(ls, tok[a:a + 65536, None], 1)[:, 0] / math.log(2)
    return out


# ---------------------------------------------------------------------------------------------- main
def decode_cost(p, kind, coefs=512 * 512, reps=3):
    """MACs a coefficient and a numpy float32 batch evaluation, one wavefront (<= 256 rows) at a time, 512^2."""
    nin = p["W0"].shape[0]
    macs = sum(v.size for k, v in p.items() if k.startswith("W"))
    p = {k: v.astype(np.float32) for k, v in p.items()}
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((256, nin)).astype(np.float32)
    lps = -np.abs(rng.standard_normal((256, A_CAP)).astype(np.float32)) * 4
    nwf = 0
    shape = (512, 512)
    sizes_ = [(r1 - r0, c1 - c0) for r0, r1, c0, c1, _, _ in W.bands(shape)]
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        for h, w in sizes_:
            for tt in range(2 * (h - 1) + w):
                i0, i1 = K.bounds(tt, h, w)
                xb = xs[:i1 - i0 + 1]
                z = logits(p, xb, lps[:len(xb)], kind, np)
                z -= z.max(1, keepdims=True)
                np.exp(z, out=z)
        best = min(best, time.perf_counter() - t)
    return macs, 1000 * best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--per-slice", type=int, default=30000)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--H", type=int, nargs="+", default=[32])
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--kinds", nargs="+", default=["s", "m", "m-"])
    ap.add_argument("--oracle", action="store_true", help="train on the held-out slices themselves (a ceiling)")
    ap.add_argument("--check", action="store_true", help="compare the replay with the proto's real bytes")
    args = ap.parse_args(argv)
    if args.check:
        for name in HOLD[:3] + HOLD[4:6]:
            fr = W._load(name)
            D = _gate_D(fr.values, fr.modality)
            bl, _ = replay(fr.values, D)
            ideal = sum(b[4].sum() + b[5].sum() + b[6].sum() for b in bl) / 8
            real = len(W.encode(fr.values.astype(np.int64), D, 0.5, None)) - W.HEAD.size
            print(f"{Path(name).name:28s} D {D:.3g} ideal {ideal:,.0f} B real {real:,d} B ratio {real / ideal:.4f}")
        return
    tr = build(list(HOLD), (1.0,), args.per_slice, 0, args.cache, "hold3") if args.oracle else \
        build(train_files(), (0.7, 1.0, 1.4), args.per_slice, 0, args.cache, "train3")
    X, lp, conf, tok = tr[:4]
    print(f"training rows {len(X):,d}, zero-token share {np.mean(tok == 0):.3f}, baseline token bits/coef "
          f"{-np.take_along_axis(lp, tok[:, None], 1).mean():.4f}", flush=True)
    models = {}
    for kind in args.kinds:
        for H in args.H:
            models[(kind, H)] = fit(X, lp, conf, tok, kind, H, args.steps, args.depth)
    rows = []
    for name in HOLD:
        fr = W._load(name)
        bl, _ = replay(fr.values, _gate_D(fr.values, fr.modality))
        cat = [np.concatenate([b[k] for b in bl]) for k in range(7)]
        Xh, lph, confh, tokh, tokb, rawb, sgnb = cat
        base = tokb.sum() + rawb.sum() + sgnb.sum()
        row = {"file": Path(name).name, "mod": fr.modality, "px": fr.values.size, "base": base,
               "tokshare": tokb.sum() / base, "allzero": float(np.mean(Xh[:, :15].sum(1) == 0))}
        for key, p in models.items():
            row[key] = token_bits(p, Xh, lph, confh, tokh, key[0]).sum() + rawb.sum() + sgnb.sum()
        rows.append(row)
        print(f"{row['file'][:26]:26s} {row['mod']} base {base / 8:>10,.0f} B ({base / row['px']:.3f} bpp, tokens "
              f"{row['tokshare']:.2f}, all-zero nbhd {row['allzero']:.2f}) "
              + " ".join(f"{k[0]}{k[1]} {row[k] / base:.4f}" for k in models), flush=True)
    for mod in ("CT", "MR", "CR"):
        rs = [r for r in rows if r["mod"] == mod]
        b = sum(r["base"] for r in rs)
        print(f"total {mod} ({len(rs)}) base {b / 8:,.0f} B " + " ".join(
            f"{k[0]}{k[1]} {sum(r[k] for r in rs) / b:.4f}" for k in models))
    for key, p in models.items():
        macs, ms = decode_cost(p, key[0])
        print(f"model {key[0]} H{key[1]}: {sum(v.size for v in p.values()):,d} weights, {macs:,d} MACs/coef "
              f"({macs * 512 * 512 / 1e6:.0f} M per 512^2), numpy wavefront batches on one core {ms:.0f} ms/512^2")


if __name__ == "__main__":
    main()
