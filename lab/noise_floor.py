"""Measurement (issue 13): how far below JPEG-LS any coder can go on a slice if its noise were white.

Model: the stored value is X = round(S + N), S the (unknown, arbitrary) signal and N zero-mean Gaussian noise,
independent from pixel to pixel, with a standard deviation sigma that varies slowly over the slice. Give the encoder
and the decoder S for free: what is left to code is the noise, pixel by pixel, and no coder that keeps |X - X'| <= k
can spend fewer bits than sum over pixels of R_k(sigma), the rate-distortion function of the integer-rounded Gaussian
under that max-error constraint (Blahut-Arimoto with the channel restricted to |x - x'| <= k; R_0 is its entropy).
Side information at both ends only lowers a rate, so this is a floor for every codec, learned or not, under the
model. The model breaks where the noise is correlated (interpolated MR matrices, smoothing kernels): then part of it
is predictable and a codec may go below the "floor" - the rows where our bytes fall below it say so.

sigma per 32 x 32 tile from the Haar diagonal detail d = (a - b - c + e) / 2 of its 2 x 2 blocks (variance sigma^2
for white noise; zero on planes): "med" = 1.4826 x median |d| (the usual robust estimate; texture lifts it), "q25"
= the 25th percentile of |d| / 0.3186 (texture lifts it less: a lower floor). Tiles of a constant value count zero.

Columns: JLS = CharLS bytes at the same k (true BitsStored); ours = codec.api.encode(lossless | near-lossless:k)
whole payload; floor = ceil(bits / 8) under each sigma estimate; the ratios are to JLS. The issue's near-lossless
target is ours <= 0.80 x JLS: where floor/JLS is near or above 0.8, no coder reaches it on that slice.

Measured 2 December 2026 (held-out files of lab.context_mixing: five CT, four MR, CR RG1, DX cat.dcm; ours = v3):

| mod | k | ours / JLS | floor (med) / JLS | floor (q25) / JLS | ours / floor (med) |
|---|---|---|---|---|---|
| CT | 0, 1, 2, 4, 8, 16 | 0.788 0.736 0.702 0.688 0.670 0.644 | 0.513 0.282 0.197 0.143 0.091 0.038 | 0.383 ... 0.022 | 1.5 ... 17 |
| MR | 0, 1, 2, 4, 8, 16 | 0.907 0.879 0.863 0.850 0.843 0.770 | 0.841 0.771 0.718 0.619 0.439 0.179 | 0.778 ... 0.168 | 1.08 1.14 1.20 1.37 1.92 4.3 |
| CR | 0, 1, 2, 4, 8, 16 | 0.987 0.984 0.984 0.982 0.978 0.973 | 0.906 0.888 0.877 0.861 0.836 0.799 | 0.901 ... 0.789 | 1.09 ... 1.22 |
| DX | 0, 1, 2, 4, 8, 16 | 0.985 0.980 0.969 0.964 0.961 0.931 | 0.892 0.861 0.834 0.801 0.745 0.633 | 0.879 ... 0.634 | 1.10 ... 1.47 |

At the default gates (`--gate`, the 18 slices of a `lab.gate_bytes` run; the PSNR bound shares one MSE budget over
the slice, by Lagrange duality over a grid of slopes): floor(E, PSNR) / best classical CT 0.037, MR 0.471, CR 0.539,
DX 0.578; auto / that floor CT 17, MR 1.87, CR 1.65, DX 1.58 (RG1 1.36, the 16-bit DX 1.28).

Reading: on the CR and the DX radiographs the white-noise floor alone is 0.80-0.91x JPEG-LS's bytes at k <= 8 (CR)
and k <= 4 (DX), so the issue's near-lossless target (0.8x JPEG-LS) asks for fewer bits than the noise carries
there; on MR it is reachable in principle (floor 0.77x at k = 1 down to 0.18x at k = 16), and at the gates the
floor leaves room everywhere (0.47-0.58x). The caveat: these images' noise is not white (the Haar diagonal
detail's sigma doubles from scale 1 to scale 2 on RG1, cat, MR1, MR2, fMRI, 693), so part of it is predictable
from its neighbours and the true floor may sit lower than this one; no code of ours beat it on any slice.

    .venv/bin/python -m lab.noise_floor                      # lab.context_mixing's held-out files, k 0 1 2 4 8 16
    .venv/bin/python -m lab.noise_floor --files FILE ... --k 0 4
    .venv/bin/python -m lab.noise_floor --gate GATE.json   # rows of `lab.gate_bytes --json`: the floor at each
                                                          # frame's gate max error against auto and the best classical
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from codec import api
from lab.context_mixing import HELD_OUT, load
from lab.realdata import find
from lab.residual_vs_jpegls import jpeg_ls_bytes

TILE = 32
SIGMAS = np.concatenate([[0.0], np.geomspace(0.05, 8192, 300)])


def tile_sigmas(v: np.ndarray) -> dict[str, np.ndarray]:
    """Per 32 x 32 tile (the last ones may be smaller): sigma estimates and the number of pixels."""
    h, w = (v.shape[0] // 2) * 2, (v.shape[1] // 2) * 2
    x = v[:h, :w].astype(np.float64)
    d = np.abs(x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    t = TILE // 2
    med, q25, npx = [], [], []
    for r in range(0, d.shape[0], t):
        for c in range(0, d.shape[1], t):
            b = d[r:r + t, c:c + t].ravel()
            block = v[2 * r:2 * r + TILE, 2 * c:2 * c + TILE]
            npx.append(block.size)
            if block.min() == block.max():
                med.append(0.0)
                q25.append(0.0)
                continue
            med.append(1.4826 * float(np.median(b)))
            q25.append(float(np.percentile(b, 25)) / 0.3186)
    return {"med": np.array(med), "q25": np.array(q25), "px": np.array(npx, float)}


def rounded_gaussian(sigma: float) -> np.ndarray:
    """P(round(N) = j) for N ~ Normal(0, sigma^2), j over +-(8 sigma + 2)."""
    if sigma <= 0:
        return np.ones(1)
    n = int(8 * sigma) + 2
    p = np.diff(ndtr((np.arange(-n, n + 2) - 0.5) / sigma))
    return p / p.sum()


def entropy(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum())


def max_error_rate(sigma: float, k: int, iters: int = 3000) -> float:
    """min I(X; X') over channels with |X - X'| <= k (bits), X the rounded Gaussian: Blahut-Arimoto on the allowed
    pairs (the channel from x is q restricted to [x - k, x + k], renormalised), O(support) a round; far above k the
    Shannon lower bound H(X) - log2(2k + 1) is the function itself to a few thousandths of a bit."""
    if sigma <= 0:
        return 0.0
    if sigma > 64:
        return max(0.0, 0.5 * np.log2(2 * np.pi * np.e * sigma * sigma) - np.log2(2 * k + 1))
    p = rounded_gaussian(sigma)
    if k == 0:
        return entropy(p)
    n, w = p.size, 2 * k + 1
    q = np.full(n + 2 * k, 1.0 / (n + 2 * k))  # reproductions x' = x - k ... x + k in index i ... i + 2k
    ones = np.ones(w)
    for _ in range(iters):
        z = np.maximum(np.convolve(q, ones, "valid"), 1e-300)  # the allowed mass of q around each x
        q = q * np.convolve(p / z, ones, "full")
    z = np.maximum(np.convolve(q, ones, "valid"), 1e-300)
    return float(-(p * np.log2(z)).sum())


@functools.lru_cache(maxsize=None)
def rate_table(k: int) -> np.ndarray:
    return np.array([max_error_rate(float(s), k) for s in SIGMAS])


def floor_bits(sigmas: np.ndarray, px: np.ndarray, k: int) -> float:
    return float((np.interp(sigmas, SIGMAS, rate_table(k)) * px).sum())


SLOPES = np.concatenate([[0.0], np.geomspace(1e-5, 4.0, 48)])
GATE_SIGMAS = np.concatenate([[0.0], np.geomspace(0.05, 8192, 90)])


def rd_point(sigma: float, e: int, slope: float, iters: int = 600) -> tuple[float, float]:
    """A point (bits, mean squared error) of the rate-distortion function of the rounded Gaussian under |error| <= e,
    at Lagrange slope `slope` (Blahut-Arimoto with the channel weights exp(-slope d^2) on the allowed d); far above e
    the Shannon lower bound with the truncated discrete Gaussian of that slope."""
    if sigma <= 0:
        return 0.0, 0.0
    d = np.arange(-e, e + 1, dtype=np.float64)
    w = np.exp(-slope * d * d)
    if sigma > 64:
        pw = w / w.sum()
        return max(0.0, 0.5 * np.log2(2 * np.pi * np.e * sigma * sigma) - entropy(pw)), float((pw * d * d).sum())
    p = rounded_gaussian(sigma)
    q = np.full(p.size + 2 * e, 1.0 / (p.size + 2 * e))
    for _ in range(iters):
        z = np.maximum(np.convolve(q, w, "valid"), 1e-300)
        q = q * np.convolve(p / z, w, "full")
    z = np.maximum(np.convolve(q, w, "valid"), 1e-300)
    dist = float((p * np.convolve(q, w * d * d, "valid") / z).sum())
    return max(0.0, float((-(p * np.log(z)).sum() - slope * dist) / np.log(2))), dist


@functools.lru_cache(maxsize=None)
def rd_table(e: int) -> tuple[np.ndarray, np.ndarray]:
    pts = np.array([[rd_point(float(sg), e, float(sl)) for sg in GATE_SIGMAS] for sl in SLOPES])
    return pts[..., 0], pts[..., 1]


def gate_floor_bits(sigmas: np.ndarray, px: np.ndarray, e: int, mse_max: float) -> float:
    """The fewest bits of any coder keeping |error| <= e and the slice's mean squared error <= mse_max (the MSE
    budget is shared by the whole slice), by Lagrange duality: for every slope s, sum over pixels of
    min(R + s D) - s N mse_max is below it; the best s on the grid is taken (s = 0 gives floor_bits)."""
    rate, dist = rd_table(e)
    n = px.sum()
    best = 0.0
    for sl, r, dd in zip(SLOPES, rate, dist):
        per_px = np.interp(sigmas, GATE_SIGMAS, r + sl * dd / np.log(2))
        best = max(best, float((per_px * px).sum()) - sl * n * mse_max / np.log(2))
    return best


def gate_rows(path: Path) -> None:
    """Any payload that passes a gate keeps |error| <= its max error E, so floor(E) bounds every codec at the gate
    (PSNR and SSIM only raise it); against the best classical codec's passing bytes it bounds auto's ratio."""
    from configs import load_config
    from lab.frames import frames_of, instance
    config = load_config()
    tot = collections.defaultdict(collections.Counter)
    for row in json.loads(path.read_text()):
        if not row.get("best_classical"):
            continue
        hit = [p for p in GATE_FILES if p.name == row["file"]] if GATE_FILES else []
        inst, _ = instance(hit[0] if hit else find(row["file"]))
        frame = next(frames_of(inst))
        e = config.gate_for(frame.modality).max_error_max
        sig = tile_sigmas(np.asarray(frame.values, np.int64))
        gate = config.gate_for(frame.modality)
        fl = floor_bits(sig["med"], sig["px"], e) / 8
        peak = float(max(1, int(frame.values.max()) - int(frame.values.min())))
        fg = gate_floor_bits(sig["med"], sig["px"], e, peak * peak / 10 ** (gate.psnr_min / 10)) / 8
        best = row[row["best_classical"]][0]
        t = tot[row["modality"]]
        t["floor"] += fl
        t["best"] += best
        t["gate"] += fg
        t["ours"] += row["medzip"][0]
        print(f"{row['file'][:40]:40s} {row['modality']} E={e} sigma med {np.median(sig['med']):7.2f} | best "
              f"{row['best_classical']} {best:9d} B, auto {row['medzip'][0] / best:.3f}, floor(E) {fl / best:.3f}, "
              f"floor(E, PSNR) {fg / best:.3f} | auto / floor(E, PSNR) {row['medzip'][0] / max(fg, 1):.2f}", flush=True)
    print("\n| mod | auto / best classical | floor(E) / best | floor(E, PSNR) / best | auto / floor(E, PSNR) |")
    print("|---|---|---|---|---|")
    for mod, t in sorted(tot.items()):
        print(f"| {mod} | {t['ours'] / t['best']:.3f} | {t['floor'] / t['best']:.3f} | {t['gate'] / t['best']:.3f} | "
              f"{t['ours'] / max(t['gate'], 1):.2f} |")


GATE_FILES: list[Path] = []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[0, 1, 2, 4, 8, 16])
    ap.add_argument("--files", nargs="+", default=None)
    ap.add_argument("--crop", type=int, default=2048)
    ap.add_argument("--gate", type=Path, help="rows of lab.gate_bytes --json")
    ap.add_argument("--gate-files", type=Path, help="a file listing the paths gate_bytes read, one a line")
    args = ap.parse_args()
    if args.gate:
        if args.gate_files:
            GATE_FILES.extend(Path(x) for x in args.gate_files.read_text().split())
        gate_rows(args.gate)
        return
    files = [(f, 1) for f in args.files] if args.files else HELD_OUT
    tot = collections.defaultdict(collections.Counter)
    for f, nf in files:
        name, mod, frames, bits, signed = load(f, nf, args.crop)
        for fi, v in enumerate(frames):
            sig = tile_sigmas(v)
            for k in args.k:
                jls = len(jpeg_ls_bytes(v, k, bits, signed))
                ours = len(api.encode(v, "lossless" if k == 0 else f"near-lossless:{k}", bits, signed))
                fm = floor_bits(sig["med"], sig["px"], k) / 8
                fq = floor_bits(sig["q25"], sig["px"], k) / 8
                t = tot[(mod, k)]
                t["jls"] += jls
                t["ours"] += ours
                t["med"] += fm
                t["q25"] += fq
                print(f"{name[:28]:28s}[{fi}] {mod} {v.shape[0]}x{v.shape[1]} k={k:2d} sigma med "
                      f"{np.median(sig['med']):7.2f} | JLS {jls:8d} ours/JLS {ours / jls:.3f} floor/JLS med "
                      f"{fm / jls:.3f} q25 {fq / jls:.3f} | ours/floor med {ours / max(fm, 1):.2f}", flush=True)
    print("\n| mod | k | ours / JLS | floor (med) / JLS | floor (q25) / JLS | ours / floor (med) |")
    print("|---|---|---|---|---|---|")
    for (mod, k), t in sorted(tot.items()):
        print(f"| {mod} | {k} | {t['ours'] / t['jls']:.3f} | {t['med'] / t['jls']:.3f} | {t['q25'] / t['jls']:.3f} | "
              f"{t['ours'] / max(t['med'], 1):.2f} |")


if __name__ == "__main__":
    main()
