"""Measurement: auto's search with one of its shortcuts against without it, interleaved A/B in one process.

This machine is noisy: same-run ratios only. `rounds` times over the files' first frames, at their modality's
default gate, A = lab.gate_bytes.ours as the flow runs it, B = the same search without the shortcut (`--what`):

  reconstruction  B decodes every candidate but a lossless one (lossless is judged on the original values either
                  way) instead of measuring the encoder's own reconstruction (codec.api.SliceEncoder)
  layer-memo      B probes the residual layer (raster or version 1) at every near-lossless k instead of once per
                  frame (codec/coders.py, _residual_stream's memo)

Prints both times and the modes and bytes each chose; `reconstruction` asserts they are the same (it cannot change
them), `layer-memo` reports any frame where they differ (a probe verdict that would have changed with k).

    .venv/bin/python -m lab.auto_ab FILE... [--what reconstruction|layer-memo] [--rounds 2]

2 December 2026 (then lab/auto_recon_ab.py), reconstruction, the 13 CT and MR slices of the stop-20
lab.gate_bytes run (693_UNCR, CT_small, wg04 CT2, petct IM-0001-0080, MR2_UNCR, MR_small, wg04 MR1/MR3/MR4, a GE
MP-RAGE, a Philips DWI, a Siemens fMRI and EPI slice), two rounds: A 15.87 s, B 20.50 s (0.77x), same modes and
bytes. (A first version of B also decoded the lossless attempt, which the flow never did, and read 0.71x.)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from codec import api
from codec.modes import Mode
from configs import load_config
from lab import gate_bytes
from lab.frames import frames_of, instance


def _without(what: str):
    """SliceEncoder.encode_decoded as it ran before the shortcut `what`."""
    real = api.SliceEncoder.encode_decoded

    def decode_each(self, mode):
        payload, decoded = real(self, mode)
        return payload, (decoded if Mode.parse(mode).is_lossless else None)

    def probe_each(self, mode):
        self._memo.clear()
        return real(self, mode)

    return {"reconstruction": decode_each, "layer-memo": probe_each}[what]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--what", choices=("reconstruction", "layer-memo"), default="layer-memo")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    config = load_config()
    real, without = api.SliceEncoder.encode_decoded, _without(args.what)
    frames = []
    for path in args.files:
        inst, why = instance(path)
        if inst is not None:
            frames.append(next(frames_of(inst)))
    for fr in frames:  # warm the compiled kernels
        gate_bytes.ours(fr, config.gate_for(fr.modality))
    spent, chose = {"A": 0.0, "B": 0.0}, {"A": 0, "B": 0}
    try:
        for r in range(args.rounds):
            for fr in frames:
                gate = config.gate_for(fr.modality)
                chosen = {}
                for key, fn in (("A", real), ("B", without)) if r % 2 == 0 else (("B", without), ("A", real)):
                    api.SliceEncoder.encode_decoded = fn
                    start = time.perf_counter()
                    chosen[key] = gate_bytes.ours(fr, gate)
                    spent[key] += time.perf_counter() - start
                    if r == 0:
                        chose[key] += chosen[key][0]
                if chosen["A"] != chosen["B"]:
                    assert args.what != "reconstruction", (fr.path.name, chosen)
                    print(f"{fr.path.name}: A {chosen['A']}, B {chosen['B']}")
    finally:
        api.SliceEncoder.encode_decoded = real
    a, b = spent["A"], spent["B"]
    print(f"{args.what}: {len(frames)} slices x {args.rounds}: A (shortcut) {a:.2f} s, B (without) {b:.2f} s, ratio "
          f"{a / b:.3f}; bytes A {chose['A']:,d}, B {chose['B']:,d}")


if __name__ == "__main__":
    main()
