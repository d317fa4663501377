"""Measurement (issue 13, item 3 "trained on the residual's code length"): the context mixer started from a state
learned on training slices instead of from nothing.

The mixer of raster stream version 5 (codec/mixer_kernels.py, the latest model) starts every slice with its counters
at one half, its weights equal and its APM the identity, and learns online from the slice alone. A state learned
offline and shipped with the codec would start it where slices usually end. Training: the middle slice of every
training-folder series minus the held-out ones (as lab.count_priors), coded at k = 0, 2, 8, 20 one after another
with the mixer's state carried from each stream to the next: that state is what online learning on code length ends
in. Measured: held-out slices coded from that state, with the counters' counts capped at each --caps value (a count
sets how fast a counter still moves: the learned state at 255 barely moves), against the fresh start. Bytes are real
streams (the product decoder, which starts fresh, cannot read the learned-start ones: nothing ships).

    .venv/bin/python -m lab.mixer_start FILE... [--caps 255 4 0]          (about 1 minute)

Measured 4 December 2026 (model 2, 36 training slices; held-out 693, wg04 CT2, CT_small, MR_small, wg04 MR1 at
k = 0 and 4), bytes against the fresh start, counts as learned / capped at 4 / at 0:
  512² CT +0.7 ... +3.2 % / +0.7 ... +2.9 % / +0.7 ... +2.9 %; wg04 MR1 -0.1 % / -0.1 % / +0.1 %;
  CT_small 128² -0.5 % / -0.3 % / +0.5 ... +1.5 %; MR_small 64² -0.9 ... -1.0 % / -0.5 ... -0.7 % / +2.5 ... +3.6 %.
A 512² slice teaches the mixer what it needs, and a start learned elsewhere (the training folder's CT is one 12-bit
scanner) costs it; only slices of 128² or less gain, about 1 %.
"""
from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from codec import mixer_kernels as MK
from codec import residual_mixed as RM
from codec import residual_raster as R
from lab.count_priors import _load, _training_slices, readable_crops

KS = (0, 2, 8, 20)


@contextmanager
def started_from(state: tuple[np.ndarray, ...] | None):
    """Within the block, every mixed stream starts from `state` (the same arrays, so they carry what each stream
    learned to the next) or, with None, from a fresh state as the product does."""
    real = MK.new_state
    if state is not None:
        MK.new_state = lambda model: state
    try:
        yield
    finally:
        MK.new_state = real


def coded_bytes(v: np.ndarray, bits: int, signed: bool, k: int, state=None) -> int:
    """Bytes of the mixed stream of `v` at k, its mixer started from `state` (a fresh one when None)."""
    with started_from(None if state is None else tuple(a.copy() for a in state)):
        return len(R.encode_residual(v, np.full(v.shape, int(v.min()), np.int64), k, bits, signed, mixed=True))


def learn(paths: list[Path], ks: tuple[int, ...] = KS) -> tuple[np.ndarray, ...]:
    """The mixer's state after coding every slice of `paths` (centre 256² crops) at each k in turn."""
    state = MK.new_state(RM.MODEL)
    with started_from(state):
        for v, bits, signed in readable_crops(paths):
            for k in ks:
                R.encode_residual(v, np.full(v.shape, int(v.min()), np.int64), k, bits, signed, mixed=True)
    return state


def capped(state: tuple[np.ndarray, ...], cap: int) -> tuple[np.ndarray, ...]:
    prob, count, weights, apm = (a.copy() for a in state)
    return prob, np.minimum(count, cap).astype(count.dtype), weights, apm


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="held-out slices to measure on")
    ap.add_argument("--caps", type=int, nargs="+", default=[255, 4, 0])
    ap.add_argument("--ks", default="0,4")
    args = ap.parse_args(argv)
    train = _training_slices()
    state = learn(train)
    print(f"learned on {len(train)} training slices x k {KS}")
    ks = tuple(int(k) for k in args.ks.split(","))
    for path in args.files:
        v, bits, signed = _load(path)
        for k in ks:
            fresh = coded_bytes(v, bits, signed, k)
            cells = [f"cap {cap}: {100 * (coded_bytes(v, bits, signed, k, capped(state, cap)) / fresh - 1):+.2f} %"
                     for cap in args.caps]
            print(f"{path.name[:30]:30s} {v.shape[0]}x{v.shape[1]} k={k}: fresh {fresh} B; " + "; ".join(cells),
                  flush=True)


if __name__ == "__main__":
    main()
