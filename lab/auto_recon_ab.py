"""Measurement: auto's search judging candidates on the encoder's reconstruction against decoding each one.

Interleaved A/B in one process (this machine is noisy: same-run ratios only), `rounds` times over the files' first
frames, at their modality's default gate: A = lab.gate_bytes.ours as the flow runs it (codec.api.encode_decoded's
values), B = what ran before: every candidate but a lossless one decoded (lossless is judged on the original values
either way). Asserts that both choose the same mode and bytes.

    .venv/bin/python -m lab.auto_recon_ab FILE... [--rounds 2]

2 December 2026, the 13 CT and MR slices of the stop-20 lab.gate_bytes run (693_UNCR, CT_small, wg04 CT2, petct
IM-0001-0080, MR2_UNCR, MR_small, wg04 MR1/MR3/MR4, a GE MP-RAGE, a Philips DWI, a Siemens fMRI and EPI slice),
two rounds: A 15.87 s, B 20.50 s (0.77x), same modes and bytes. (A first version of B also decoded the lossless
attempt, which the flow never did, and read 0.71x; a review caught it.)
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    config = load_config()
    real = api.encode_decoded

    def decode_each(values, mode, *a, **k):
        payload, decoded = real(values, mode, *a, **k)
        return payload, (decoded if Mode.parse(mode).is_lossless else None)

    frames = []
    for path in args.files:
        inst, why = instance(path)
        if inst is not None:
            frames.append(next(frames_of(inst)))
    for fr in frames:  # warm the compiled kernels
        gate_bytes.ours(fr, config.gate_for(fr.modality))
    spent = {"reconstruction": 0.0, "decode": 0.0}
    try:
        for _ in range(args.rounds):
            for fr in frames:
                gate = config.gate_for(fr.modality)
                chosen = []
                for key, fn in (("reconstruction", real), ("decode", decode_each)):
                    api.encode_decoded = fn
                    start = time.perf_counter()
                    chosen.append(gate_bytes.ours(fr, gate))
                    spent[key] += time.perf_counter() - start
                assert chosen[0] == chosen[1], (fr.path.name, chosen)
    finally:
        api.encode_decoded = real
    a, b = spent["reconstruction"], spent["decode"]
    print(f"{len(frames)} slices x {args.rounds}: encoder's reconstruction {a:.2f} s, decode each candidate {b:.2f} s, "
          f"ratio {a / b:.3f} (same modes and bytes)")


if __name__ == "__main__":
    main()
