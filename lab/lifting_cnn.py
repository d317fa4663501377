"""Measurement: a tiny CNN correction of the first 9/7 predict step (lab.lifting_learned's linear taps made nonlinear).

The correction added to the odd samples after the first predict step is, per direction (rows / columns), shared by
all levels: c = w . F + (g(F) - g(-F)) / 2, F the 3 x 4 even-sample neighbourhood (lifting_learned.planes) less the
mean of the two nearest even samples, g a bias-free ReLU net 12 -> 8 -> 8 -> 1 (a 3x4 convolution with 8 channels then
two 1x1 layers on the even polyphase plane: 172 weights). Bias-free and antisymmetrised, c scales with the image and
ignores its offset; a function of the even samples only, so exactly invertible by subtraction.
Trained with JAX (Adam, L1 of the pass's final high output over mean |high| of the plain 9/7, the same objective as
lifting_learned.fit_pass) on 64 x 64 crops of levels 1-2 of the training slices (590 per direction); inference in
numpy. JAX on 2 shared cores: 32-40 ms per Adam step of 32 crops, 2,000 steps per direction, 2.7 minutes in all
(TensorFlow not tried: at this size training time is not the constraint).

    PYTHONPATH=. python -m lab.lifting_cnn --steps 2000                     (trains, writes /tmp/lift_cnn.pkl)
    PYTHONPATH=. python -m lab.lifting_cnn --eval [--levels 1] --json F     (the real coder, 12 minutes)

Training loss (L1 over the plain's) 0.897 rows, 0.935 columns; level-1 L1 over plain on the evaluation slices:
693_UNCR 0.80, J2K_pixrep 0.91, CT_small 1.03, CT2 0.87, MR2 1.07, MR_small 0.96, MR1 0.98, MR3 1.21, MPRAGE 0.93,
RG1 1.01, RG2 0.96 (the global linear taps: 0.999-1.010). Real coder (figures in lab.lifting_learned): all levels
BD-rate vs plain 9/7 +10 CT, +25 MR, +30 CR %; level 1 only +5, +15, +15 % (693_UNCR alone -1.1 %). At the plain
gate D the level-1 net takes 4-8 % off the bytes and 0.35-1.05 dB off PSNR: the correction, fitted on clean even
samples, is applied by the decoder to quantised ones. A net that pays would have to be trained in the loop (noisy
decoded evens in, rate + distortion out), or predict from the decoded low band (closed loop).
"""
from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np

from lab import lifting_learned as ll
from lab import wavelet_proto as wp

HID = 8
CENTRE = (ll.DR.index(0) * len(ll.DJ) + ll.DJ.index(0), ll.DR.index(0) * len(ll.DJ) + ll.DJ.index(1))


def features(e, no):
    P = ll.planes(e, no)
    return P - 0.5 * (P[CENTRE[0]] + P[CENTRE[1]])


def _g_np(p, F):
    h = np.maximum(np.tensordot(p["W1"], F, 1), 0)
    h = np.maximum(np.tensordot(p["W2"], h, 1), 0)
    return np.tensordot(p["w3"], h, 1)


def correction(p):
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}

    def corr(e, no):
        F = features(e, no)
        return np.tensordot(p["lin"], F, 1) + 0.5 * (_g_np(p, F) - _g_np(p, -F))
    return corr


def crops(values, size=64, per=6, seed=0):
    """Per direction: (F, h0) crops of the level-1 and level-2 passes of the plain transform."""
    rng = np.random.default_rng(seed)
    out = {0: [], 1: []}
    for v in values:
        x = np.asarray(v, np.float64)
        hs, ws = wp.sizes(x.shape)
        for lev in range(min(2, len(hs) - 1)):
            for d in (0, 1):
                xx = x if d == 0 else np.ascontiguousarray(x.T)
                e, o = xx[:, 0::2].copy(), xx[:, 1::2].copy()
                ll._predict(e, o, ll.C0)
                y = ll.fpass(xx, None)
                F, h0 = features(e, o.shape[1]), y[:, e.shape[1]:]
                for _ in range(per if min(h0.shape) >= size else 0):
                    r = rng.integers(0, h0.shape[0] - size + 1)
                    c = rng.integers(0, h0.shape[1] - size + 1)
                    if np.abs(h0[r:r + size, c:c + size]).mean() > 0:
                        out[d].append((F[:, r:r + size, c:c + size], h0[r:r + size, c:c + size]))
                x = y if d == 0 else np.ascontiguousarray(y.T)
            x = np.ascontiguousarray(x[:hs[lev + 1], :ws[lev + 1]])
    return {d: tuple(np.stack([c[k] for c in out[d]]).astype(np.float32) for k in (0, 1)) for d in out}


def _rest_high_j(jnp, o):
    """lifting_learned.rest_high on a batch (B, m, no), even width (ne == no)."""
    e = ll.C1 * (jnp.concatenate([o[:, :, :1], o[:, :, :-1]], 2) + o)
    return (o + ll.C2 * (e + jnp.concatenate([e[:, :, 1:], e[:, :, -1:]], 2))) / ll.Z


def train(F, H, steps=2000, batch=32, lr=2e-3, seed=0, log=print):
    """Adam on mean over crops of mean |h0 + rest_high(c)| / mean |h0| (JAX, CPU, float32)."""
    import jax
    import jax.numpy as jnp
    key = jax.random.PRNGKey(seed)
    k1, k2, k3 = jax.random.split(key, 3)
    p = {"lin": jnp.zeros(ll.NT), "W1": 0.3 * jax.random.normal(k1, (HID, ll.NT)),
         "W2": 0.3 * jax.random.normal(k2, (HID, HID)), "w3": 0.01 * jax.random.normal(k3, (HID,))}
    s0 = np.abs(H).mean((1, 2)) + 1e-6

    def g(p, X):
        h = jax.nn.relu(jnp.einsum("kc,bcij->bkij", p["W1"], X))
        h = jax.nn.relu(jnp.einsum("kl,blij->bkij", p["W2"], h))
        return jnp.einsum("k,bkij->bij", p["w3"], h)

    def loss(p, X, h0, s):
        c = jnp.einsum("c,bcij->bij", p["lin"], X) + 0.5 * (g(p, X) - g(p, -X))
        return (jnp.abs(h0 + _rest_high_j(jnp, c)).mean((1, 2)) / s).mean()

    @jax.jit
    def step(p, m, v, t, X, h0, s):
        l, gr = jax.value_and_grad(loss)(p, X, h0, s)
        m = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * b, m, gr)
        v = jax.tree.map(lambda a, b: 0.999 * a + 0.001 * b * b, v, gr)
        p = jax.tree.map(lambda a, b, c: a - lr * (b / (1 - 0.9 ** t)) / (jnp.sqrt(c / (1 - 0.999 ** t)) + 1e-8),
                         p, m, v)
        return p, m, v, l

    m = jax.tree.map(jnp.zeros_like, p)
    v = jax.tree.map(jnp.zeros_like, p)
    rng = np.random.default_rng(seed)
    t0, run = time.perf_counter(), []
    for t in range(1, steps + 1):
        i = rng.integers(0, len(F), batch)
        p, m, v, l = step(p, m, v, t, F[i], H[i], s0[i])
        run.append(float(l))
        if t % 250 == 0:
            log(f"  step {t}: loss {np.mean(run[-250:]):.4f} ({(time.perf_counter() - t0) / t * 1000:.1f} ms/step)")
    return {k: np.asarray(a) for k, a in p.items()}


def pass_l1(values, corrs):
    """Sum over slices of the level-1 row and column passes' |high|_1 / (plain), for corrections per direction."""
    tot, ref = 0.0, 0.0
    for v in values:
        x = np.asarray(v, np.float64)
        for d in (0, 1):
            xx = x if d == 0 else np.ascontiguousarray(x.T)
            ne = (xx.shape[1] + 1) // 2
            h0 = np.abs(ll.fpass(xx, None)[:, ne:]).sum()
            tot += np.abs(ll.fpass(xx, corrs.get(d))[:, ne:]).sum() / h0
            ref += 1
            x = ll.fpass(xx, None) if d == 0 else ll.fpass(xx, None).T
    return tot / ref


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/lift_cnn.pkl"))
    ap.add_argument("--eval", action="store_true", help="the real coder with the trained nets at every level")
    ap.add_argument("--plain", type=Path, default=Path("/tmp/wav_rows.json"))
    ap.add_argument("--files", nargs="+", default=list(wp.FILES))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--levels", type=int, default=wp.MAX_LEVELS, help="levels the nets correct (from the finest)")
    args = ap.parse_args(argv)
    if args.eval:
        return evaluate(args)
    ts = [v for _, v in ll.training_set()]
    data = crops(ts)
    nets = {}
    for d in (0, 1):
        print(f"direction {d}: {len(data[d][0])} crops", flush=True)
        nets[d] = train(*data[d], steps=args.steps, log=lambda s: print(s, flush=True))
    args.out.write_bytes(pickle.dumps(nets))
    G = ll.learn(ts, levels=1, scale=4096)
    lin = {0: G[(0, 0)], 1: G[(0, 1)]}
    cnn = {d: correction(nets[d]) for d in (0, 1)}
    print("level-1 |high|_1 relative to plain 9/7 (mean over slices): file, linear global, CNN")
    for name in wp.FILES:
        v = wp._load(name).values
        print(f"  {Path(name).name[:30]:30s} {pass_l1([v], lin):.4f} {pass_l1([v], cnn):.4f}", flush=True)


def evaluate(args):
    import json
    from configs import load_config
    nets = pickle.loads(args.out.read_bytes())
    ll.MODE["cnn"] = {(lev, d): correction(nets[d]) for lev in range(args.levels) for d in (0, 1)}
    ll.install()
    config = load_config()
    plain = {r["file"]: r for r in json.loads(args.plain.read_text())}
    rows = []
    for name in args.files:
        pr = plain[Path(name).name]
        r = ll.measure(name, config, pr, "cnn")
        rows.append(r)
        print(f"{r['file'][:26]:26s} {r['modality']} cnn {r['bytes']:>9,d} (plain {pr['wav'][0]:>9,d}, "
              f"{r['bytes'] / pr['wav'][0]:.4f}; guard {r['guard']:,d}) BD vs plain {r['bd_plain']} %, vs j2k "
              f"{r['bd_j2k']} % [{r['s']:.0f} s]", flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
