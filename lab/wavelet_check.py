"""Measurement: codec.wavelet (integer lifting, fixed-point steps, numba guard) against lab/wavelet_proto.py.

For each file: the proto's rate search at the modality's default gate (both offsets) gives D and r; the product
codes the same slice at that D and r with the guard at the gate's max error (bytes ratio product / proto), then
searches q itself at the gate with offset 0.5, 0.375 and None (the product's rule) for the bytes each lands on.
Last, encode/decode ms of the product on 693_UNCR (min of 3 after warm-up).

    .venv/bin/python -m lab.wavelet_check [--files ...]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from codec import wavelet as W
from codec import wavelet_header
from lab import wavelet_proto as P

FILES = ("693_UNCR.dcm", "MR_small.dcm", str(P.TRAIN / "MR/wg04/MR1_UNC.dcm"))


def q_search(frame, gate, offset: float | None) -> tuple[int, int] | None:
    """The smallest passing stream over q: every 8th q, then each q around the best (bytes are not monotone in q
    under a guard: coarse q grows the guard): (bytes, q)."""
    v = frame.values.astype(np.int64)
    lo, hi = int(v.min()), int(v.max())
    bound = gate.max_error_max
    got: dict[int, int | None] = {}

    def size(q: int) -> int | None:
        if q not in got:
            s = W.encode_wavelet(v, q, bound, lo, hi, offset)
            got[q] = len(s) if P._passes(frame, W.decode_wavelet(s, lo, hi), gate) else None
        return got[q]

    coarse = [(size(q), q) for q in range(0, 256, 8)]
    passing = [c for c in coarse if c[0] is not None]
    if not passing:
        return None
    q0 = min(passing)[1]
    fine = [(size(q), q) for q in range(max(q0 - 7, 0), min(q0 + 8, 256))]
    return min(c for c in coarse + fine if c[0] is not None)


def speed(name: str = "693_UNCR.dcm", q: int = 170, bound: int = 30) -> tuple[float, float]:
    v = P._load(name).values.astype(np.int64)
    lo, hi = int(v.min()), int(v.max())
    s = W.encode_wavelet(v, q, bound, lo, hi)
    W.decode_wavelet(s, lo, hi)
    te, td = [], []
    for _ in range(3):
        t = time.perf_counter()
        s = W.encode_wavelet(v, q, bound, lo, hi)
        te.append(time.perf_counter() - t)
        t = time.perf_counter()
        W.decode_wavelet(s, lo, hi)
        td.append(time.perf_counter() - t)
    return 1000 * min(te), 1000 * min(td)


def main(argv: list[str] | None = None) -> None:
    from configs import load_config
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", nargs="+", default=list(FILES))
    args = ap.parse_args(argv)
    config = load_config()
    for name in args.files:
        frame = P._load(name)
        gate = config.gate_for(frame.modality)
        v = frame.values.astype(np.int64)
        lo, hi = int(v.min()), int(v.max())
        found = [(P.search(frame, gate, r), r) for r in W.OFFSETS]
        (pbytes, D, pguard), r = min((f, r) for f, r in found if f)
        ours = W.encode_wavelet(v, 0, gate.max_error_max, lo, hi, r, step=D)
        h = wavelet_header.parse(ours)
        guard = len(ours) - h.body - 4 * h.words - h.raw
        print(f"{frame.path.name:16s} {frame.modality} D {D:.4g} r {r}: proto {pbytes:,d} (guard {pguard:,d}), "
              f"product {len(ours):,d} (guard {guard:,d}, raw {h.raw:,d}), ratio {len(ours) / pbytes:.4f}",
              flush=True)
        got = {str(o): q_search(frame, gate, o) for o in (0.5, 0.375, None)}
        print("   at the gate over q: " + ", ".join(f"r={o}: {g[0]:,d} (q {g[1]})" if g else f"r={o}: none"
                                                     for o, g in got.items()), flush=True)
    enc_ms, dec_ms = speed()
    print(f"speed 693_UNCR 512x512 q 170 bound 30: encode {enc_ms:.0f} ms, decode {dec_ms:.0f} ms", flush=True)


if __name__ == "__main__":
    main()
