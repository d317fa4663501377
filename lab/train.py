"""Train the hyperprior codec end to end on rate + lambda * distortion (Adam), seeded and reproducible.

Normalisation (the same in training and in the codec): each slice is mapped to x = (v - lo) / (hi - lo) with lo/hi
the slice's min/max stored value (recorded in the bitstream), so 12-bit data stored in 16 bits is not squashed.
Rate is in bits per pixel (latents + hyper-latents). Distortion D = 255^2 * MSE(x, x_hat): the slice-range PSNR is
10 log10(255^2 / D); the docs/design.md PSNR of a slice follows as that + 20 log10((2^BitsStored - 1) / (hi - lo)).
One model serves all rate points: per-sample rate point q, gain units, loss = bpp + lambda_q * D.

The training step (lab/train_step.py) runs under the TensorFlow backend by default, or under JAX with
KERAS_BACKEND=jax (a GPU machine with JAX but no TensorFlow); GPU when the backend sees one, else the CPU. The model
itself is keras.ops only. `python -m lab.train OUT_DIR --steps N FILES...` or `train(...)` from Python.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from lab.frames import read_frames

DEFAULT_LAMBDAS = (0.01, 0.04, 0.16, 0.64, 2.56)
PATCH = 128
# Share of flat patches (std < 0.005, CT air/padding) kept. Slices are 20-40 % background; a model that never sees
# it reconstructs it with noise of a few hundred stored values (measured on the v1 weights, which kept 0.1).
FLAT_KEEP = 0.5


def normalise(v: np.ndarray) -> tuple[np.ndarray, int, int]:
    """float32 x in [0, 1] and the integer lo, hi used (hi > lo always)."""
    lo = int(v.min())
    hi = int(v.max())
    if hi <= lo:
        hi = lo + 1
    return ((v.astype(np.float64) - lo) / (hi - lo)).astype(np.float32), lo, hi


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given; folders recursed (sorted, so the file order and hence training are reproducible)."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return out


def _print_progress(it: int, steps: int, rec: dict) -> None:
    import sys

    rates = "  ".join(f"q{q}: {r['bpp']:.3f} bpp {r['psnr_range']:.1f} dB" for q, r in
                      ((k[1:], v) for k, v in rec.items() if k.startswith("q") and isinstance(v, dict)))
    print(f"step {it}/{steps}  {rec['elapsed_s']:.0f}s  {rates}", file=sys.stderr, flush=True)


def load_slices(paths: Iterable[Path], min_size: int = PATCH, log: Callable[[str], None] = print) -> list[np.ndarray]:
    out = []
    for p in paths:
        try:
            frames = read_frames(Path(p))
        except Exception as exc:  # unreadable file: skip, say so
            log(f"skip {p}: {type(exc).__name__}: {exc}")
            continue
        for f in frames:
            if f.ndim == 2 and min(f.shape) >= min_size and f.max() > f.min():
                out.append(normalise(f)[0])
    return out


def _describe(path: Path | None) -> dict | None:
    if path is None:
        return None
    import hashlib

    return {"file": Path(path).name, "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}


def load_float_weights(path: Path) -> dict:
    """Float weights from a training checkpoint (float_weights.npz) or a shipped codec weights file (float/...)."""
    with np.load(path) as f:
        d = {k: f[k] for k in f.files}
    shipped = {k[len("float/"):]: v for k, v in d.items() if k.startswith("float/")}
    return shipped or d


class PatchSampler:
    def __init__(self, slices: Sequence[np.ndarray], seed: int, patch: int = PATCH):
        self.slices = list(slices)
        self.rng = np.random.default_rng(seed)
        self.patch = patch
        area = np.array([np.sqrt(s.size) for s in self.slices])
        self.p = area / area.sum()

    def batch(self, n: int) -> np.ndarray:
        out = np.empty((n, self.patch, self.patch, 1), np.float32)
        k = 0
        while k < n:
            s = self.slices[self.rng.choice(len(self.slices), p=self.p)]
            i = self.rng.integers(0, s.shape[0] - self.patch + 1)
            j = self.rng.integers(0, s.shape[1] - self.patch + 1)
            t = s[i : i + self.patch, j : j + self.patch]
            if t.std() < 0.005 and self.rng.random() >= FLAT_KEEP:
                continue
            if self.rng.random() < 0.5:
                t = t[:, ::-1]
            if self.rng.random() < 0.5:
                t = t[::-1]
            out[k, :, :, 0] = t
            k += 1
        return out


def train(
    paths: Sequence[Path],
    out_dir: Path,
    steps: int = 6000,
    seed: int = 0,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    progress: Callable[[int, int, dict], None] | None = None,
    batch: int = 8,
    lr: float = 1e-3,
    init_weights: Path | None = None,
    checkpoint_every: int = 250,
    time_limit_s: float | None = None,
    ste_fraction: float = 0.1,
) -> Path:
    """Train; write out_dir/float_weights.npz, train_log.jsonl, train_meta.json and the codec weights file
    out_dir/medzip-hp-v1.npz (use it with MEDZIP_CODEC_WEIGHTS=...). Returns the codec weights path.
    Paths may be files or folders (recursed); files that are not grayscale DICOM images are skipped."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    from codec import networks as cm
    from lab.train_step import make_step

    if len(lambdas) != cm.Q:
        raise ValueError(f"need {cm.Q} lambdas (one per rate point), got {len(lambdas)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # same seed + files + TF version -> same weights
    paths = expand_paths(paths)
    progress = progress or _print_progress
    slices = load_slices(paths)
    if not slices:
        raise ValueError("no grayscale training slices of at least 128x128 in the given files")
    sampler = PatchSampler(slices, seed)
    net = cm.Networks()
    if init_weights:
        net.load_weights_dict(load_float_weights(init_weights))
    lr_drop = int(steps * 0.8)
    sched = keras.optimizers.schedules.PiecewiseConstantDecay([lr_drop], [lr, lr / 10])
    opt = keras.optimizers.Adam(learning_rate=sched, clipnorm=1.0)
    variables = net.trainable_variables
    opt.build(variables)
    pixels = float(PATCH * PATCH)

    # The synthesis trains on y + noise, then on round(y) (straight-through) for the last ste_fraction of the
    # steps, so it ends matched to what the decoder sees (networks.Networks.train_forward says why not throughout).
    ste_from = int(steps * (1.0 - ste_fraction))

    step = make_step(net, opt, variables, lambdas, pixels)

    rng = np.random.default_rng(seed + 1)
    log_path = out_dir / "train_log.jsonl"
    wpath = out_dir / "float_weights.npz"
    t0 = time.time()
    acc: dict[int, list] = {q: [] for q in range(cm.Q)}
    with open(log_path, "a") as log:
        for it in range(1, steps + 1):
            x = sampler.batch(batch)
            q = rng.integers(0, cm.Q, size=batch).astype(np.int32)
            ny = rng.uniform(-0.5, 0.5, (batch, PATCH // 16, PATCH // 16, cm.M)).astype(np.float32)
            nz = rng.uniform(-0.5, 0.5, (batch, PATCH // 64, PATCH // 64, cm.NZ)).astype(np.float32)
            loss, bpp, d = step(x, q, ny, nz, it <= ste_from)
            for qi, b, di in zip(q, bpp, d):
                acc[int(qi)].append((b, di))
            done = it == steps or (time_limit_s is not None and time.time() - t0 > time_limit_s)
            if it % 50 == 0 or done:
                rec = {"step": it, "loss": float(loss), "elapsed_s": round(time.time() - t0, 1)}
                for qi, v in acc.items():
                    if v:
                        b, di = np.mean(v, axis=0)
                        rec[f"q{qi}"] = {"bpp": round(float(b), 4), "psnr_range": round(float(10 * np.log10(255**2 / max(di, 1e-12))), 2)}
                acc = {q: [] for q in range(cm.Q)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if progress:
                    progress(it, steps, rec)
            if it % checkpoint_every == 0 or done:
                step.sync()
                tmp = out_dir / "float_weights.tmp.npz"
                np.savez(tmp, **net.weights_dict())
                os.replace(tmp, wpath)
            if done:
                break
    ste_done = max(0, it - ste_from)
    meta = {"steps_done": it, "seed": seed, "lambdas": list(lambdas), "batch": batch, "patch": PATCH, "lr": lr,
            "train_files": [str(p) for p in paths], "elapsed_s": round(time.time() - t0, 1), "flat_keep": FLAT_KEEP,
            "backend": keras.backend.backend(), "ste_after_step": ste_from, "ste_steps_done": ste_done,
            "init_weights": _describe(init_weights)}
    if it < steps:
        import sys

        print(f"time limit reached at step {it} of {steps}: the learning-rate drop (step {lr_drop}) and the rounding "
              f"phase (after step {ste_from}) ran for {max(0, it - lr_drop)} and {ste_done} steps; see "
              "train_meta.json", file=sys.stderr)
    (out_dir / "train_meta.json").write_text(json.dumps(meta, indent=1))
    from lab.export import MODEL_NAME, export

    return export(wpath, out_dir / f"{MODEL_NAME}.npz", {"training": meta})


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these weights (a float_weights.npz checkpoint or a shipped codec weights file)")
    ap.add_argument("--default-split", action="store_true", help="train on lab.split.training_files()")
    a = ap.parse_args(argv)
    files = a.files
    if a.default_split:
        from lab.split import training_files

        files = training_files()
    train(files, a.out_dir, steps=a.steps, seed=a.seed, batch=a.batch, lr=a.lr, time_limit_s=a.time_limit,
          init_weights=a.init)


if __name__ == "__main__":
    main()
