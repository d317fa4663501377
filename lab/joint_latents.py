"""Measurement (issue 13, ablation row iii): latents trained jointly with a learned residual model, DLPR's recipe.

A small lossy autoencoder (analysis to 1/8 resolution, C latent channels, a factorised discretised-logistic prior
per channel) gives a reconstruction x~ of the stored values v and F feature maps. The residual is coded against
p = round(x~) with near-lossless step 2k+1 (k = 0: lossless): q = sign(v - p) floor((|v - p| + k) / (2k + 1)),
decoded v' = p + q (2k+1). Its distribution is a mixture of two logistics over the values in q's bin, predicted by
a raster-causal 5 x 5 masked convolution over the decoded residual v' - x~, the features F and k. Because p comes
from the latents alone, every q and v' is known without a sequential walk, so training and the ideal code length
are exact and parallel (the decoder would walk the raster; nothing here is decoded back).

Loss, per sample: (latent bits + residual bits) / pixels, k drawn per sample from 0, 1, 2, 4, 8, 16; gradients
reach the latents through x~ (the logistics' centre and the context). --no-latents trains the same residual model
with x~ = the W neighbour and no features (lossless only: the context is then the causal values themselves), to
tell what the latents add to a learned causal model.

Data: lab.residual_mlp's training slices (the training folder less its held-out series); 128 x 128 patches.
Normalisation: fixed scale, (v - slice min) / 1024 (the minimum would travel in the header). Held out and measured
here: lab.residual_mlp's held-out files without the radiographs, and the first slice of its three held-out MR
series; the bits are ideal code lengths + 24 header bytes,
against the bytes of the product's own stream (api.encode) at the same k.

    .venv/bin/python -m lab.joint_latents OUT --epochs 30            (trains; resumes from OUT/joint.weights.h5
                                                                        with a fresh Adam state)
    .venv/bin/python -m lab.joint_latents OUT --eval-only --ks 0,2,8 [--files FILE…]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import ops  # noqa: E402

from lab import residual_mlp as rm  # noqa: E402

PATCH = 128
SCALE = 1024.0
KS = (0, 1, 2, 4, 8, 16)
HEADER_BYTES = 24
_LN2 = float(np.log(2.0))


def _log_bin(up, dn):
    """log(sigmoid(up) - sigmoid(dn)), stable, for up > dn."""
    return -ops.softplus(-up) - ops.softplus(dn) + ops.log(-ops.expm1(dn - up) + 1e-12)


def near_lossless(v, p, k):
    """The decoded values v' = p + q (2k+1), q = sign(v - p) floor((|v - p| + k) / (2k+1)): |v - v'| <= k."""
    step = 2.0 * k + 1.0
    e = v - p
    return p + ops.sign(e) * ops.floor((ops.abs(e) + k) / step) * step


def log_prob(decoded, k, mu, scale, logit):
    """Natural log of the probability of q's bin [v' - k - 0.5, v' + k + 0.5] under a mixture of logistics (last
    axis: the components); the bins of successive q tile the line, so the q's probabilities sum to 1."""
    logit = logit - ops.logsumexp(logit, axis=-1, keepdims=True)
    up = (decoded + k + 0.5 - mu) / scale
    dn = (decoded - k - 0.5 - mu) / scale
    return ops.logsumexp(logit + _log_bin(up, dn), axis=-1, keepdims=True)


@keras.saving.register_keras_serializable("medzip_lab")
class MaskedConv(keras.layers.Layer):
    """Raster-causal convolution: each output sees only the rows above and the pixels left of it (mask A), and with
    `centre` its own position too (mask B: for layers over outputs of a mask A layer, which are causal already)."""

    def __init__(self, filters: int, size: int = 5, centre: bool = False, **kw):
        super().__init__(**kw)
        self.filters, self.size, self.centre = filters, size, centre

    def build(self, shape):
        s, c = self.size, self.size // 2
        self.kernel = self.add_weight(shape=(s, s, shape[-1], self.filters), initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros")
        mask = np.ones((s, s, 1, 1), np.float32)
        mask[c, c + int(self.centre):] = 0
        mask[c + 1:] = 0
        self.mask = mask

    def call(self, x):
        return ops.conv(x, self.kernel * self.mask, padding="same") + self.bias


@keras.saving.register_keras_serializable("medzip_lab")
class JointCodec(keras.Model):
    """inputs: v (B,H,W,1) stored values as float, lo (B,1,1,1), k (B,1,1,1), mask (B,H,W,1);
    output (B, 2): latent bits and masked residual bits of each sample."""

    def __init__(self, latents: int = 12, width: int = 32, features: int = 8, use_latents: bool = True,
                 depth: int = 1, value_context: bool = False, **kw):
        super().__init__(**kw)
        self.use_latents, self.n_features, self.value_context = use_latents, features, value_context
        conv = keras.layers.Conv2D
        up = keras.layers.Conv2DTranspose
        self.analysis = [conv(width, 5, 2, "same", activation="relu"), conv(width, 5, 2, "same", activation="relu"),
                         conv(latents, 5, 2, "same")]
        self.synthesis = [up(width, 5, 2, "same", activation="relu"), up(width, 5, 2, "same", activation="relu"),
                          up(1 + features, 5, 2, "same")]
        self.prior_mu = self.add_weight(shape=(latents,), initializer="zeros", name="prior_mu")
        self.prior_log_s = self.add_weight(shape=(latents,), initializer="zeros", name="prior_log_s")
        self.context = MaskedConv(width, 5)
        self.context_more = [MaskedConv(width, 3, centre=True) for _ in range(depth - 1)]
        self.head = [keras.layers.Dense(width, activation="relu"), keras.layers.Dense(width, activation="relu"),
                     keras.layers.Dense(6)]
        self.noise = keras.random.SeedGenerator(0)

    def _latents(self, x, training):
        y = x
        for layer in self.analysis:
            y = layer(y)
        if training:
            y_rate = y + keras.random.uniform(ops.shape(y), -0.5, 0.5, seed=self.noise)
        else:
            y_rate = ops.round(y)
        y_hat = y + ops.stop_gradient(ops.round(y) - y)  # synthesis sees the rounded latents (straight through)
        inv = ops.exp(-self.prior_log_s)
        bits = -_log_bin((y_rate + 0.5 - self.prior_mu) * inv, (y_rate - 0.5 - self.prior_mu) * inv) / _LN2
        s = y_hat
        for layer in self.synthesis:
            s = layer(s)
        return s, ops.sum(bits, axis=(1, 2, 3))

    def call(self, inputs, training=False):
        v, lo, k, mask = inputs
        if self.use_latents:
            s, latent_bits = self._latents((v - lo) / SCALE, training)
            x_tilde = lo + SCALE * s[..., :1]
            feats = s[..., 1:]
        else:
            x_tilde = ops.concatenate([ops.ones_like(v[:, :, :1]) * lo, v[:, :, :-1]], axis=2)  # the W neighbour
            feats = ops.zeros_like(ops.repeat(v, self.n_features, axis=-1))
            latent_bits = ops.zeros_like(v[:, 0, 0, 0])
        decoded = near_lossless(v, ops.stop_gradient(ops.round(x_tilde)), k)
        h = (decoded - x_tilde) / 64.0
        if self.value_context:
            h = ops.concatenate([h, (decoded - lo) / SCALE], axis=-1)
        for layer in [self.context, *self.context_more]:
            h = ops.relu(layer(h))
        kfeat = ops.ones_like(v) * ops.log(2.0 * k + 1.0) / 4.0
        h = ops.concatenate([h, feats, kfeat], axis=-1)
        for layer in self.head:
            h = layer(h)
        log_p = log_prob(decoded, k, x_tilde + 16.0 * h[..., 0:2], ops.exp(ops.clip(h[..., 2:4], -4.0, 9.0)) * 2.0,
                         h[..., 4:6])
        residual_bits = ops.sum(-log_p / _LN2 * mask, axis=(1, 2, 3))
        return ops.stack([latent_bits, residual_bits], axis=1)


def bits_per_pixel(pixels, out):
    return (out[:, 0] + out[:, 1]) / pixels[:, 0]


# --- data ----------------------------------------------------------------------------------------------------------

def training_slices() -> list[np.ndarray]:
    if not (rm.TRAIN / "MANIFEST.tsv").exists():
        raise SystemExit(f"no training folder at {rm.TRAIN} (its MANIFEST.tsv lists the slices trained on)")
    rows = [r for r in csv.DictReader(open(rm.TRAIN / "MANIFEST.tsv"), delimiter="\t") if not rm._held_out(r)]
    by = {m: [r for r in rows if r["modality"] == m] for m in ("CT", "MR", "PT")}
    picked = rm._every(by["CT"], 10) + rm._every(by["MR"], 8) + rm._every(by["PT"], 10)
    out = []
    for r in picked:
        f = rm._frame(rm.TRAIN / r["path"])
        if f is not None and min(f.values.shape) >= PATCH:
            out.append(f.values.astype(np.float32))
    return out


class Patches(keras.utils.PyDataset):
    def __init__(self, slices, batch: int, steps: int, seed: int, lossless_only: bool, **kw):
        super().__init__(**kw)
        self.slices, self.batch, self.steps, self.seed, self.lossless_only = slices, batch, steps, seed, lossless_only
        self.minima = [float(s.min()) for s in slices]  # each patch's lo is its slice's minimum
        self.epoch = 0

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, i):
        rng = np.random.default_rng((self.seed, self.epoch, i))
        v = np.empty((self.batch, PATCH, PATCH, 1), np.float32)
        lo = np.empty((self.batch, 1, 1, 1), np.float32)
        for b in range(self.batch):
            n = rng.integers(len(self.slices))
            s = self.slices[n]
            y, x = rng.integers(s.shape[0] - PATCH + 1), rng.integers(s.shape[1] - PATCH + 1)
            v[b, ..., 0] = s[y:y + PATCH, x:x + PATCH]
            lo[b] = self.minima[n]
        k = np.zeros((self.batch, 1, 1, 1), np.float32) if self.lossless_only else \
            rng.choice(KS, self.batch).astype(np.float32).reshape(-1, 1, 1, 1)
        mask = np.ones_like(v)
        return (v, lo, k, mask), np.full((self.batch, 1), PATCH * PATCH, np.float32)


# --- evaluation ----------------------------------------------------------------------------------------------------

def slice_bits(model: JointCodec, values: np.ndarray, k: int) -> tuple[float, float]:
    """Ideal latent and residual bits of a whole slice (edge-padded to a multiple of 8, padding not counted)."""
    h, w = values.shape
    ph, pw = -h % 8, -w % 8
    v = np.pad(values.astype(np.float32), ((0, ph), (0, pw)), mode="edge")[None, ..., None]
    mask = np.zeros_like(v)
    mask[0, :h, :w] = 1
    lo = np.full((1, 1, 1, 1), values.min(), np.float32)
    out = np.asarray(model((v, lo, np.full((1, 1, 1, 1), k, np.float32), mask), training=False))[0]
    return float(out[0]), float(out[1])


def validation_files() -> list[Path]:
    """lab.residual_mlp's held-out files and the first slice of each of its three held-out MR series."""
    rows = list(csv.DictReader(open(rm.TRAIN / "MANIFEST.tsv"), delimiter="\t")) if rm.TRAIN.exists() else []
    firsts = {}
    for r in sorted(rows, key=lambda r: r["path"]):
        if r["series_uid"].endswith(rm._HELD_SERIES):
            firsts.setdefault(r["series_uid"], rm.TRAIN / r["path"])
    return [p for p in rm.held_out_files() if p.exists()] + list(firsts.values())


def evaluate(model: JointCodec, ks: tuple[int, ...], files: list[Path] | None = None) -> list[dict]:
    from codec import api

    rows, seen = [], set()
    for path in files or validation_files():
        f = rm._frame(path)
        if f is None or f.modality not in ("CT", "MR"):
            continue  # radiographs are left out (minutes a slice)
        digest = hash(f.values.tobytes())
        if digest in seen:
            continue  # wg04 MR2 is the bundled MR2
        seen.add(digest)
        for k in ks:
            latent, residual = slice_bits(model, f.values, k)
            ours = (latent + residual) / 8 + HEADER_BYTES
            product = len(api.encode(f.values, "lossless" if k == 0 else f"near-lossless:{k}", f.bits_stored,
                                     f.signed))
            rows.append({"file": path.name, "modality": f.modality, "k": k, "latent_B": latent / 8,
                         "residual_B": residual / 8, "joint_B": ours, "product_B": product})
            print(f"{path.name[:34]:34s} {f.modality} k={k:2d}: latents {latent / 8:9.0f} B  residual "
                  f"{residual / 8:10.0f} B  joint/product {ours / product:.3f}", flush=True)
    for modality in ("CT", "MR"):
        for k in ks:
            sel = [r for r in rows if r["modality"] == modality and r["k"] == k]
            if sel:
                ratio = sum(r["joint_B"] for r in sel) / sum(r["product_B"] for r in sel)
                share = sum(r["latent_B"] for r in sel) / sum(r["joint_B"] for r in sel)
                print(f"total {modality} k={k}: joint/product {ratio:.3f} (latents {100 * share:.1f} % of joint)")
    return rows


# --- main ------------------------------------------------------------------------------------------------------------

class _Checkpoint(keras.callbacks.Callback):
    """Weights and the learning curve after every epoch; wall_s counts on across resumed runs."""

    def __init__(self, out: Path):
        super().__init__()
        self.out = out
        meta_path = out / "meta.json"
        curve = json.loads(meta_path.read_text())["curve"] if meta_path.exists() else []
        self.t0 = time.time() - (curve[-1]["wall_s"] if curve else 0.0)

    def on_epoch_end(self, epoch, logs=None):
        self.model.save_weights(self.out / "joint.weights.h5")
        meta_path = self.out / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"curve": []}
        meta["epochs_done"] = epoch + 1
        meta["curve"].append({"epoch": epoch + 1, "loss_bpp": float(logs["loss"]), "wall_s": time.time() - self.t0})
        meta_path.write_text(json.dumps(meta, indent=1))


def build(args) -> JointCodec:
    model = JointCodec(args.latents, args.width, use_latents=not args.no_latents, depth=args.depth,
                       value_context=args.value_context)
    model((np.zeros((1, PATCH, PATCH, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32),
           np.zeros((1, 1, 1, 1), np.float32), np.ones((1, PATCH, PATCH, 1), np.float32)))
    return model


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--steps", type=int, default=100, help="steps an epoch")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--latents", type=int, default=12)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-latents", action="store_true")
    ap.add_argument("--depth", type=int, default=1, help="masked layers of the residual context (5x5, then 3x3)")
    ap.add_argument("--value-context", action="store_true", help="the context also reads the decoded values")
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--ks", default="0,2,8")
    ap.add_argument("--files", nargs="*", type=Path, help="measure these instead of the held-out files")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    model = build(args)
    weights = args.out / "joint.weights.h5"
    meta_path = args.out / "meta.json"
    done = json.loads(meta_path.read_text())["epochs_done"] if meta_path.exists() else 0
    if weights.exists():
        model.load_weights(weights)
        print(f"resumed from {weights} after {done} epochs", flush=True)
    if not args.eval_only and done < args.epochs:
        t = time.time()
        slices = training_slices()
        print(f"{len(slices)} training slices read in {time.time() - t:.0f} s; {keras.backend.backend()}", flush=True)
        model.compile(optimizer=keras.optimizers.Adam(args.lr), loss=bits_per_pixel)
        data = Patches(slices, args.batch, args.steps, args.seed, args.no_latents)
        data.epoch = done
        model.fit(data, epochs=args.epochs, initial_epoch=done, verbose=2, callbacks=[_Checkpoint(args.out)])
    ks = (0,) if args.no_latents else tuple(int(k) for k in args.ks.split(","))
    rows = evaluate(model, ks, args.files)
    (args.out / ("eval_files.json" if args.files else "eval.json")).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
