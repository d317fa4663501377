"""Measurement (issue 13, item 3 "through integer tables"): residual stream version 3's adaptive counts started from
priors learned on training slices instead of from nothing.

Version 3 codes each |q| token under integer counts per (activity, sign state) context that start at zero (plus a
prior pooled from the neighbouring activity buckets of the same slice). A small slice pays to learn them; a table
learned offline and shipped as integers would start them where slices usually end. Training: the middle slice of
every training-folder series (centre 256² crops), minus the held-out ones (wg04 CT/MR/CR and the three MR series
lab.residual_mlp holds out), coded at k = 0, 2, 8, 20; each context's final counts normalised per slice and averaged
(the maximum-likelihood table, i.e. the one that minimises the code length over the training slices). The prior is
that table scaled to `mass` tokens a context (floored to integers), put into version 3's counts before the first
pixel; both sides would hold it, so the decode is unchanged otherwise. Bytes are real version 3 streams.

    .venv/bin/python -m lab.count_priors FILE... [--mass 8 32 128]         (about 1 minute)

Measured 3 December 2026 on held-out slices (bundled MR_small and emri_small 64², CT_small 128², a Philips fMRI
64², a GE MP-RAGE 256², wg04 MR1 512², CT 693 512²), change in bytes at k = 0 / 2 / 8 / 20:

  mass   8: all -0.04 %; 64² MR -0.1 … -1.8 %; 512² ±0.0 … -0.3 %
  mass  32: all -0.08 %; 64² MR -0.7 … -3.3 %; 256² MP-RAGE -0.6 … +0.8 %; 693 +0.0 … +0.3 %
  mass 128: all +0.11 %; 64² MR -4.3 … +0.6 %; 256² MP-RAGE +3.4 … +6.9 %; 693 +0.3 … +3.2 %

Version 3 already shares counts between neighbouring activity buckets, which is most of what a prior could give: a
learned start saves 1-3 % on 64² slices and nothing (or loses, when it is heavy) on larger ones, far from the
issue's 10 %, so no stream carries it.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from codec import raster_kernels as K
from codec import raster_kernels3 as K3
from codec import residual_raster as R
from lab.frames import frames_of, instance

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
_HELD_SERIES = ("601318184.311", "1409060423022", "0611920.0.0.0")  # as lab.residual_mlp
KS = (0, 2, 8, 20)
_WIDTH = 128  # tokens a table row holds (more than any bit depth's alphabet)


class _Walk(R._Walk):
    """Version 3's walk, its counts started from `prior` when set; the last one made is kept for its counts."""

    prior: np.ndarray | None = None
    last: "_Walk | None" = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _Walk.last = self
        if _Walk.prior is not None and self.version >= 3:
            width = self.counts3.shape[1]
            self.counts3[:, :] = _Walk.prior[:, :width]
            self.counts[:] = self.counts3.reshape(K.N_CTX, K3.N_STATE, width).sum(1)  # the pooled buckets


def _training_slices() -> list[Path]:
    rows = list(csv.DictReader(open(TRAIN / "MANIFEST.tsv"), delimiter="\t"))
    by_series: dict[str, list[dict]] = {}
    for r in rows:
        if r["path"].startswith(("CT/wg04", "MR/wg04", "CR/wg04")) or r["series_uid"].endswith(_HELD_SERIES):
            continue
        by_series.setdefault(r["series_uid"], []).append(r)
    return [TRAIN / sorted(rs, key=lambda r: r["path"])[len(rs) // 2]["path"] for _, rs in sorted(by_series.items())]


def _load(path: Path, crop: int | None = None) -> tuple[np.ndarray, int, bool]:
    inst, why = instance(path)
    if inst is None:
        raise ValueError(why)
    frame = next(frames_of(inst))
    v = frame.values.astype(np.int64)
    if crop and min(v.shape) > crop:
        r0, c0 = (v.shape[0] - crop) // 2, (v.shape[1] - crop) // 2
        v = v[r0 : r0 + crop, c0 : c0 + crop]
    return np.ascontiguousarray(v), frame.bits_stored, frame.signed


def readable_crops(paths: list[Path], crop: int = 256):
    """(values, bits, signed) of each file's centre crop, skipping files without readable pixels."""
    for path in paths:
        try:
            yield _load(path, crop=crop)
        except ValueError:
            continue


def _bytes(v: np.ndarray, bits: int, signed: bool, k: int, prior: np.ndarray | None) -> int:
    _Walk.prior = prior
    recon = np.full(v.shape, int(v.min()), np.int64)
    return len(R.encode_residual(v, recon, k, bits, signed, version=3))


def learn(paths: list[Path]) -> np.ndarray:
    """Each context's token distribution, averaged over slices and k (rows sum to 1; zeros where never seen)."""
    acc = np.zeros((K.N_CTX * K3.N_STATE, _WIDTH))
    for v, bits, signed in readable_crops(paths):
        for k in KS:
            _bytes(v, bits, signed, k, None)
            counts = _Walk.last.counts3.astype(np.float64)
            seen = counts.sum(1, keepdims=True)
            acc[:, : counts.shape[1]] += np.where(seen > 0, counts / np.maximum(seen, 1), 0.0)
    return acc / np.maximum(acc.sum(1, keepdims=True), 1e-12)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="held-out slices to measure on")
    ap.add_argument("--mass", type=int, nargs="+", default=[8, 32, 128])
    args = ap.parse_args(argv)
    real = R._Walk
    R._Walk = _Walk
    try:
        train = _training_slices()
        table = learn(train)
        print(f"learned on {len(train)} training slices x k {KS}")
        for mass in args.mass:
            prior = np.floor(table * mass).astype(np.int64)
            base = with_prior = 0
            for path in args.files:
                v, bits, signed = _load(path)
                cells = []
                for k in KS:
                    b, p = _bytes(v, bits, signed, k, None), _bytes(v, bits, signed, k, prior)
                    base, with_prior = base + b, with_prior + p
                    cells.append(f"k{k} {100 * (p / b - 1):+.1f}%")
                print(f"  mass {mass:3d} {path.name[:30]:30s} {v.shape[0]}x{v.shape[1]}: " + " ".join(cells))
            print(f"mass {mass}: all {100 * (with_prior / base - 1):+.2f} %")
    finally:
        R._Walk = real


if __name__ == "__main__":
    main()
