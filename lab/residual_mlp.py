"""Measurement (issue 13): does a learned, static probability model for the residual beat the adaptive coder?

A small MLP reads 19 causal features of each pixel as the version 2 residual layer sees it (lab/residual_dump.py:
local activity, the six neighbours' signed residuals, the sub-predictors' offsets from the mixed prediction, three
gradients, the prediction's place in the slice's range, log2 of the quantiser step, bits stored) and outputs a
mixture of discretised logistics over the quantised residual q. It is trained on the code length (bits) of q.
The comparison is per pixel against the bits the adaptive integer-count coder spends on the same q (its ideal code
length from its own tables, which matches the real stream to ~100 bytes a slice), and against a 50/50 mixture of
the two distributions.

Training: every 10th slice of the training folder's CT series, every 8th of each MR series, every 10th PT, the
radiographs (centre 1024² crops), at k = 0, 1, 2, 4, 8, 16, 12,000 random pixels per slice and k. Held out (never
trained on): the bundled validation files (lab/split.py) and the training folder's wg04 CT/MR/CR files and three MR
series (GE ...184.311, Philips ...423022, Siemens sag ...611920).

    KERAS_BACKEND=jax .venv/bin/python -m lab.residual_mlp OUT --hidden 64 --mixtures 3 --epochs 20
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
_HELD_SERIES = ("601318184.311", "1409060423022", "0611920.0.0.0")
_KS = (0, 1, 2, 4, 8, 16)


def _held_out(row: dict) -> bool:
    return row["path"].startswith(("CT/wg04", "MR/wg04", "CR/wg04")) or row["series_uid"].endswith(_HELD_SERIES)


def _every(rows: list[dict], n: int) -> list[dict]:
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["series_uid"], []).append(r)
    return [r for s in by.values() for r in sorted(s, key=lambda r: r["path"])[::n]]


def _centre(v: np.ndarray, side: int = 1024) -> np.ndarray:
    if v.size <= 1_500_000:
        return v
    i, j = (v.shape[0] - side) // 2, (v.shape[1] - side) // 2
    return v[i : i + side, j : j + side]


def _frame(path: Path):
    from lab.frames import frames_of, instance

    inst, _ = instance(path)
    return None if inst is None else next(frames_of(inst))


def training_set(per_slice: int = 12000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from lab.residual_dump import features, record

    rows = [r for r in csv.DictReader(open(TRAIN / "MANIFEST.tsv"), delimiter="\t") if not _held_out(r)]
    picked = (_every([r for r in rows if r["modality"] == "CT"], 10) + _every([r for r in rows if r["modality"] == "MR"], 8)
              + _every([r for r in rows if r["modality"] == "PT"], 10) + [r for r in rows if r["modality"] in ("CR", "DX")])
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for r in picked:
        f = _frame(TRAIN / r["path"])
        if f is None:
            continue
        v = _centre(f.values)
        for k in _KS:
            rec = record(v, k, f.bits_stored, f.signed)
            x = features(rec)
            idx = rng.choice(len(x), min(len(x), per_slice), replace=False)
            xs.append(x[idx])
            ys.append(rec.q.ravel()[idx])
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


def _split(o, mixtures: int):
    return o[:, :mixtures], o[:, mixtures : 2 * mixtures], o[:, 2 * mixtures :]


def model_bits(o: np.ndarray, q: np.ndarray, mixtures: int) -> np.ndarray:
    """Code length in bits of each q under the mixture the network output `o` describes."""
    from scipy.special import expit, logsumexp

    mu, log_s, logit = _split(o.astype(np.float64), mixtures)
    inv = np.exp(-np.clip(log_s, -4.0, 12.0))
    q = q[:, None]
    p = expit((q + 0.5 - mu) * inv) - expit((q - 0.5 - mu) * inv)
    w = np.exp(logit - logsumexp(logit, axis=1, keepdims=True))
    return -np.log2(np.maximum((w * p).sum(1), 1e-30))


def train(x: np.ndarray, y: np.ndarray, hidden: int, mixtures: int, epochs: int, seed: int = 0):
    import keras
    from keras import ops

    keras.utils.set_random_seed(seed)

    def loss(q, o):
        q = ops.reshape(q, (-1, 1))
        mu, log_s, logit = _split(o, mixtures)
        inv = ops.exp(-ops.clip(log_s, -4.0, 12.0))
        up, dn = (q + 0.5 - mu) * inv, (q - 0.5 - mu) * inv
        log_p = -ops.softplus(-up) - ops.softplus(dn) + ops.log(-ops.expm1(dn - up) + 1e-12)  # log(σ(up) − σ(dn))
        logit = logit - ops.logsumexp(logit, axis=1, keepdims=True)
        return -ops.logsumexp(logit + log_p, axis=1) / np.log(2.0)

    inp = keras.Input((x.shape[1],))
    h = keras.layers.Dense(hidden, activation="relu")(inp)
    h = keras.layers.Dense(hidden, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(3 * mixtures)(h))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss)
    order = np.random.default_rng(seed).permutation(len(x))
    model.fit(x[order], y[order], batch_size=1024, epochs=epochs, validation_split=0.05, verbose=2)
    return model


def held_out_files() -> list[Path]:
    from pydicom.data import get_testdata_file

    bundled = [Path(get_testdata_file(n)) for n in ("693_UNCR.dcm", "J2K_pixelrep_mismatch.dcm", "CT_small.dcm",
                                                     "MR2_UNCR.dcm", "MR_small.dcm", "RG1_UNCR.dcm")]
    folder = sorted((TRAIN / "CT" / "wg04").glob("*.dcm")) + sorted((TRAIN / "MR" / "wg04").glob("*.dcm"))[:2] \
        + sorted((TRAIN / "CR" / "wg04").glob("*.dcm"))[:1]
    return bundled + folder


def evaluate(model, mixtures: int, ks=(0, 2)) -> dict:
    from lab.residual_dump import features, record

    totals: dict[tuple[str, int], np.ndarray] = {}
    for path in held_out_files():
        f = _frame(path)
        if f is None:
            continue
        v = _centre(f.values)
        for k in ks:
            rec = record(v, k, f.bits_stored, f.signed)
            learned = model_bits(model.predict(features(rec), batch_size=16384, verbose=0), rec.q.ravel(), mixtures)
            adaptive = rec.bits.ravel()
            mixed = -np.log2(0.5 * 2.0 ** -adaptive + 0.5 * 2.0 ** -learned)
            row = np.array([adaptive.sum(), learned.sum(), mixed.sum()]) / 8
            totals.setdefault((f.modality, k), np.zeros(3))[:] += row
            print(f"{path.name[:30]:30s} {f.modality} k={k}: adaptive {row[0]:10.0f} B  learned/adaptive "
                  f"{row[1] / row[0]:.3f}  mixture/adaptive {row[2] / row[0]:.3f}", flush=True)
    return totals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--mixtures", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    args.out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    x, y = training_set()
    print(f"{len(x)} training pixels in {time.time() - t:.0f} s", flush=True)
    t = time.time()
    model = train(x, y, args.hidden, args.mixtures, args.epochs)
    print(f"trained in {time.time() - t:.0f} s", flush=True)
    model.save(args.out / "residual_mlp.keras")
    for (modality, k), (a, l, m) in sorted(evaluate(model, args.mixtures).items()):
        print(f"{modality} k={k}: learned/adaptive {l / a:.3f}  mixture/adaptive {m / a:.3f}")


if __name__ == "__main__":
    main()
