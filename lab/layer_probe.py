"""How well a probe picks the residual layer (raster version 3 or interleaved version 1) for near-lossless, and at what
cost: every bundled frame (≥ 64² and 2-D) at k = 1, 2, 4, 8, 16, 24 coded whole by both layers, and each probe
(a crop or band coded by both) judged by the bytes of the layer it would keep against the better whole layer, and by
the time it and the whole version 1 encodes it triggers take. The raster layer is version 3 here, as when the margin
was chosen (version 4 differs only on slices with constant blocks, by +0.1 to 1.2 %). A probe picks version 1 when its crop codes less than
`margin` × the raster layer's bytes; the coder then codes both whole and keeps the smaller (codec/coders.py), so a
wrong version 1 pick costs time, a wrong raster pick bytes.

    python -m lab.layer_probe [--margins 0.9,0.95,0.97,1.0] [--ks 1,2,4,8,16,24]

Measured (2026-12-02, 216 frame × k rows; chosen/best bytes overall and on CT; probe + version 1 whole seconds):
  centre 96², margin 1.00 (the coder until then)  1.0014, CT 1.0192   5.5 + 78.8 s (70 whole v1 trials)
  centre 96², margin 0.90                          1.0035, CT 1.0229   5.5 + 10.0 s
  4 crops 48² at the quadrants' centres, 0.95      1.0031, CT 1.0097  10.5 + 22.0 s
  centre band of 48 rows × the width, 0.97         1.0023, CT 1.0040  15.6 + 17.9 s (37)   <- the coder now
(the raster layer whole: 41 s in all). A centre crop of a CT body favours version 1 (693: its crop codes 0.27-0.75×
the raster layer's bytes, the whole slice 1.36-1.60×): the body is where version 1's interpolation does well, the air
around it where the raster layer's contexts cost next to nothing. A band across the width sees both.
"""
from __future__ import annotations

import argparse
import collections
import time

import numpy as np

from codec import coders, residual, residual_raster
from lab.residual_vs_jpegls import frames


def regions(shape: tuple[int, int], spec: tuple[str, int]) -> list[tuple[int, int, int, int]]:
    """(row, col, height, width) of the probe's crops; even origins keep the pixel parities."""
    r, c = shape
    kind, size = spec
    if kind == "centre":
        return [(max(0, (r - size) // 2) & ~1, max(0, (c - size) // 2) & ~1, size, size)]
    if kind == "quad":
        return [(max(0, int(r * fr) - size // 2) & ~1, max(0, int(c * fc) - size // 2) & ~1, size, size)
                for fr in (0.25, 0.75) for fc in (0.25, 0.75)]
    return [(max(0, (r - size) // 2) & ~1, 0, size, c)]  # band


SPECS = (("centre", 96), ("quad", 48), ("band", 32), ("band", 48))


def measure(ks: tuple[int, ...]) -> list[dict]:
    rows = []
    for name, modality, frame, bits, signed in frames():
        v = np.ascontiguousarray(frame, np.int64)
        if v.ndim != 2 or min(v.shape) < 64:
            continue
        recon = coders.flat_recon(v.shape, int(v.min()), int(v.min()), int(v.max()))
        for k in ks:
            predictor = residual_raster.fit_predictor(v, k)
            t = time.perf_counter()
            r3 = len(residual_raster.encode_residual(v, recon, k, bits, signed, predictor, version=3))
            t3 = time.perf_counter() - t
            t = time.perf_counter()
            r1 = len(residual.encode_residual(v, recon, k, bits, signed))
            t1 = time.perf_counter() - t
            probes = {}
            for spec in SPECS:
                a3 = a1 = 0
                t = time.perf_counter()
                for r0, c0, h, w in regions(v.shape, spec):
                    crop = np.ascontiguousarray(v[r0 : r0 + h, c0 : c0 + w])
                    base = recon[: crop.shape[0], : crop.shape[1]]
                    a3 += len(residual_raster.encode_residual(crop, base, k, bits, signed, predictor, version=3))
                    a1 += len(residual.encode_residual(crop, base, k, bits, signed))
                probes[spec] = (a3, a1, time.perf_counter() - t)
            rows.append(dict(name=name, modality=modality, k=k, r3=r3, r1=r1, t3=t3, t1=t1, probes=probes))
    return rows


def report(rows: list[dict], margins: tuple[float, ...]) -> None:
    print(f"{len(rows)} frame x k rows; raster layer whole {sum(r['t3'] for r in rows):.1f} s")
    for margin in margins:
        for spec in SPECS:
            by_mod = collections.defaultdict(lambda: [0, 0])
            probe_s = v1_s = 0.0
            trials = 0
            for r in rows:
                a3, a1, tp = r["probes"][spec]
                probe_s += tp
                v1 = a1 < margin * a3
                trials += v1
                v1_s += r["t1"] if v1 else 0.0
                kept = min(r["r1"], r["r3"]) if v1 else r["r3"]
                g = by_mod[r["modality"]]
                g[0] += kept
                g[1] += min(r["r1"], r["r3"])
            total = sum(g[0] for g in by_mod.values()) / sum(g[1] for g in by_mod.values())
            mods = " ".join(f"{m} {g[0] / g[1]:.4f}" for m, g in sorted(by_mod.items()))
            print(f"{spec[0]:6s} {spec[1]:3d} margin {margin:.2f}: chosen/best {total:.4f} | {mods} | "
                  f"probe {probe_s:.1f} s + version 1 whole {v1_s:.1f} s ({trials} trials)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="1,2,4,8,16,24")
    ap.add_argument("--margins", default="0.9,0.95,0.97,1.0")
    a = ap.parse_args()
    report(measure(tuple(int(x) for x in a.ks.split(","))), tuple(float(x) for x in a.margins.split(",")))


if __name__ == "__main__":
    main()
