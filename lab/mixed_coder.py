"""The context-mixed residual coder against the range coder it replaces, in real bytes and real decode time.

Per file (first frame) and k: the raster residual layer's bytes as stream version 2 (the ablation's "(i)", the
hand-made coder of November 2026), version 5 range-coded ("(i')"), version 5 context-mixed with mixer model 1 (stop
22's) and with the latest model ("(ii)", what new slices of up to codec.residual_mixed.MAX_PIXELS get), and CharLS
JPEG-LS at the same k; then the decode times of the range-coded and both mixed streams (median of --rounds interleaved
runs, same process) and per-modality totals of the summed bytes.

    python -m lab.mixed_coder [FILE…] [--ks 0,1,2,4,8,16] [--rounds 3]   (default: lab.residual_table's files)
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from codec import residual_raster as R
from lab import anchors
from lab.frames import frames_of, instance
from lab.residual_table import default_files


def _decode_ms(data: bytes, recon, k, bits, signed) -> float:
    t0 = time.perf_counter()
    R.decode_residual(data, recon, k, bits, signed)
    return 1000 * (time.perf_counter() - t0)


def row(path: Path, ks: tuple[int, ...], rounds: int) -> list[dict]:
    inst, _ = instance(path)
    if inst is None:
        return []
    frame = next(frames_of(inst))
    v, bits, signed = np.ascontiguousarray(frame.values, np.int64), frame.bits_stored, frame.signed
    recon = np.full(v.shape, int(v.flat[0]), np.int64)
    jls = anchors.available()["jls"]
    out = []
    for k in ks:
        v2 = R.encode_residual(v, recon, k, bits, signed, version=2)
        ranged = R.encode_residual(v, recon, k, bits, signed, mixed=False)
        mixed1 = R.encode_residual(v, recon, k, bits, signed, mixed=True, mixer=1)
        mixed = R.encode_residual(v, recon, k, bits, signed, mixed=True)
        setting = anchors.LOSSLESS if k == 0 else anchors.AnchorSetting.near_lossless(k)
        for data in (mixed1, mixed):
            R.decode_residual(data, recon, k, bits, signed)  # compiled before timing
        ms = {name: [] for name in ("range", "mixed1", "mixed")}
        for _ in range(rounds):
            for name, data in (("range", ranged), ("mixed1", mixed1), ("mixed", mixed)):
                ms[name].append(_decode_ms(data, recon, k, bits, signed))
        out.append({"file": path.name, "modality": frame.modality, "shape": v.shape, "k": k, "v2": len(v2),
                    "range": len(ranged), "mixed1": len(mixed1), "mixed": len(mixed),
                    "jls": len(jls.encode(v, bits, signed, setting)),
                    **{f"ms_{name}": statistics.median(t) for name, t in ms.items()}})
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--ks", default="0,1,2,4,8,16")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    ks = tuple(int(k) for k in args.ks.split(","))
    print("file | mod | shape | k | v2 B | range B | mixer 1 B | mixed B | mixed/v2 | mixed/range | mixed/mixer 1 | "
          "mixed/JLS | range/JLS | decode ms range → mixer 1 → mixed")
    rows = []
    for path in args.files or default_files():
        for r in row(path, ks, args.rounds):
            rows.append(r)
            print(f"{r['file']} | {r['modality']} | {r['shape'][0]}x{r['shape'][1]} | {r['k']} | {r['v2']} | "
                  f"{r['range']} | {r['mixed1']} | {r['mixed']} | {r['mixed'] / r['v2']:.3f} | "
                  f"{r['mixed'] / r['range']:.3f} | {r['mixed'] / r['mixed1']:.3f} | {r['mixed'] / r['jls']:.3f} | "
                  f"{r['range'] / r['jls']:.3f} | {r['ms_range']:.0f} → {r['ms_mixed1']:.0f} → {r['ms_mixed']:.0f}",
                  flush=True)
    print("\ntotal | mod | k | mixed/v2 | mixed/range | mixed/mixer 1 | mixed/JLS | range/JLS | decode time "
          "mixed/range | mixed/mixer 1")
    for modality in sorted({r["modality"] for r in rows}):
        for k in ks:
            sel = [r for r in rows if r["modality"] == modality and r["k"] == k]
            s = {key: sum(r[key] for r in sel)
                 for key in ("v2", "range", "mixed1", "mixed", "jls", "ms_range", "ms_mixed1", "ms_mixed")}
            print(f"total | {modality} | {k} | {s['mixed'] / s['v2']:.3f} | {s['mixed'] / s['range']:.3f} | "
                  f"{s['mixed'] / s['mixed1']:.3f} | {s['mixed'] / s['jls']:.3f} | {s['range'] / s['jls']:.3f} | "
                  f"{s['ms_mixed'] / s['ms_range']:.2f} | {s['ms_mixed'] / s['ms_mixed1']:.2f}")


if __name__ == "__main__":
    main()
