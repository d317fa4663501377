"""Residual stream version 3 against version 2 on the same slices: the model card's ablation row (i').

Both coded whole by codec.residual_raster over a flat reconstruction (version 2 with its own one- or four-set
predictor, version 3 with the predictor the codec fits today), on lab.residual_table's files.

    python -m lab.residual_versions [FILE…] [--ks 0,2]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codec import raster_fit, residual_raster
from lab.frames import frames_of, instance
from lab.residual_table import default_files


def sizes(values: np.ndarray, k: int, bits: int, signed: bool) -> tuple[int, int]:
    v = np.ascontiguousarray(values, dtype=np.int64)
    flat = np.full(v.shape, int(v.min()), np.int64)
    v2 = residual_raster.encode_residual(v, flat, k, bits, signed, raster_fit.fit_weights(v, k), version=2)
    return len(v2), len(residual_raster.encode_residual(v, flat, k, bits, signed, version=3))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--ks", default="0,2")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    totals: dict[tuple[str, int], list[int]] = {}
    for path in args.files or default_files():
        inst, _ = instance(path)
        if inst is None:
            continue
        frame = next(frames_of(inst))
        line = f"{path.name[:34]:34s} {frame.modality}"
        for k in ks:
            v2, v3 = sizes(frame.values, k, frame.bits_stored, frame.signed)
            t = totals.setdefault((frame.modality, k), [0, 0])
            t[0], t[1] = t[0] + v2, t[1] + v3
            line += f"  k={k}: v2 {v2:>9,d} B, v3/v2 {v3 / v2:.3f}"
        print(line, flush=True)
    for (modality, k), (v2, v3) in sorted(totals.items()):
        print(f"total {modality} k={k}: v3/v2 {v3 / v2:.3f}")


if __name__ == "__main__":
    main()
