"""Measurement: lossy plus residual with the wavelet as the lossy layer, where the gate's max error binds.

DLPR's recipe with a good transform under it: the slice coded by wavelet:q (no guard), then the difference
original − wavelet decode coded near-losslessly at the gate's max error k by the raster residual layer (the
difference offset to >= 0 over a flat reconstruction), so |original − decoded| <= k as near-lossless:k alone. Bytes of
both parts against near-lossless:k alone (codec.residual_raster), q from 60 to 120:

    .venv/bin/python -m lab.wavelet_hybrid [--qs 60 80 100 120]        (about a minute on 2 shared cores)

Measured 2026-12-02 (k = the default gate's max error, where auto stores near-lossless:k):
  slice                 k   near-lossless   q 60     q 80     q 100    q 120    (base + residual bytes)
  wg04 MR1 512²        20          57,943   59,798   60,532   61,977   63,689
  Siemens fMRI 384²    20          44,411   49,847   51,407   52,994   54,875
  CT 693 512²          30           9,543   21,461   20,461   19,044   17,999
  wg04 MR4 512²        20           7,589    9,144    8,797    8,240    7,249   (q 130: 7,393; 140: 7,615)
The residual after a good wavelet base is the slice's noise, which the residual layer codes no cheaper than it codes
the slice itself, and the base costs bytes on top: only the smooth MR4 gains (−4.5 % at q 120). As with the learned
latents of codec/MODEL_CARD.md, a lossy layer under the residual does not pay where the max error binds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codec import residual_raster, wavelet
from lab.wavelet_proto import _load

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
FILES = (("693_UNCR.dcm", 30), (str(TRAIN / "MR/wg04/MR1_UNC.dcm"), 20), (str(TRAIN / "MR/wg04/MR4_UNC.dcm"), 20),
         (str(TRAIN / "MR/dcm_qa_sag/2_fmri_SagAP__i00001.dcm"), 20))


def hybrid_bytes(v: np.ndarray, q: int, k: int) -> tuple[int, int]:
    """(bytes of wavelet:q, bytes of the near-lossless:k residual against its decode)."""
    lo, hi = int(v.min()), int(v.max())
    base = wavelet.encode_wavelet(v, q, None, lo, hi)
    diff = v - wavelet.decode_wavelet(base, lo, hi)
    diff -= diff.min()
    bits = max(1, int(diff.max()).bit_length())
    return len(base), len(residual_raster.encode_residual(diff, np.zeros(v.shape, np.int64), k, bits, False))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qs", type=int, nargs="+", default=[60, 80, 100, 120])
    args = ap.parse_args(argv)
    for name, k in FILES:
        frame = _load(name)
        if frame is None:
            continue
        v = frame.values.astype(np.int64)
        flat = np.full(v.shape, int(v.min()), np.int64)
        alone = len(residual_raster.encode_residual(v, flat, k, frame.bits_stored, frame.signed))
        totals = "  ".join(f"q {q}: {sum(hybrid_bytes(v, q, k)):,}" for q in args.qs)
        print(f"{Path(name).name:32s} k {k:2d}  near-lossless {alone:,}  hybrid {totals}", flush=True)


if __name__ == "__main__":
    main()
