"""The escalation ladder of docs/design.md: a slice failing its gate is re-encoded at the next stricter mode.

lossy:q or wavelet:q/e -> near-lossless:k -> lossless, never past the config's `codec.escalate_to`. k is the gate's
max_error_max when it sets one (capped at DEFAULT_K), else DEFAULT_K. A slice that failed at a larger k (the `auto`
policy starts at the largest k its gate admits) halves k down to that one first. "Stricter" is Mode's own order
(codec.modes).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np

from codec.modes import Mode
from quality import wavelet_search
from quality.auto import Auto, Outcome, next_stricter, search

if TYPE_CHECKING:
    from configs import Gate

T = TypeVar("T")

DEFAULT_K = 2  # |error| <= 2 stored values: > 60 dB PSNR on 12-bit data, above every default gate
# `auto` also searches the wavelet coder where the near-lossless k it found is below this share of the gate's max
# error: there PSNR or SSIM held k down, and a transform coder meets them in fewer bytes than an error spread up to k
# everywhere (wg04 MR3, k = 13 of 20: 29,572 B against 31,352; RG2, k = 7 of 40: 353,369 against 439,907; a CR
# 2500x2048, k = 34 of 40: 434,691 against 447,970); where the max error binds, the residual layer is far smaller
# (wg04 MR1, k = 20 of 20: 58,021 against >= 74,451; CT 693, k = 30 of 30: 9,620 against >= 18,040; J2K_pixelrep,
# k = 29 of 30: 11,751 against >= 17,328) and the search would cost encodes for nothing.
WAVELET_BELOW = 0.9


def near_lossless_k(gate: Gate) -> int:
    if gate.max_error_max is not None:
        return min(gate.max_error_max, DEFAULT_K)
    return DEFAULT_K


def next_mode(current: Mode, gate: Gate, ceiling: Mode) -> Mode | None:
    """The next stricter mode after `current` for a slice under `gate`, or None when no stricter one is allowed."""
    if current >= ceiling:
        return None
    if current.is_transform:
        candidate = Mode.near_lossless(near_lossless_k(gate))  # k = 0 is lossless
    else:
        candidate = next_stricter(current, floor_k=near_lossless_k(gate))
    if candidate is None or candidate <= current:
        candidate = Mode.lossless()
    return min(candidate, ceiling)


def wavelet_worth(found: Outcome, gate: Gate, ceiling: Mode) -> bool:
    """Whether `auto` searches the wavelet coder after the near-lossless search (and the ladder) found `found`: a
    passing near-lossless k below WAVELET_BELOW of the gate's max error, or lossless where the gate allows an error
    (a slice of small range, where the error model admits no k: a GE MPRAGE 256² of values 0..165 stored lossless in
    4,228 B passes as a wavelet in 1,794 B)."""
    if not found.passed or found.integrity or ceiling.is_transform or found.mode.kind not in ("near-lossless",
                                                                                              "lossless"):
        return False
    if gate.max_error_max is None:
        return True
    return gate.max_error_max > 0 and found.mode.level < WAVELET_BELOW * gate.max_error_max


def settle(policy: Mode | Auto, original: np.ndarray, gate: Gate, peak: float, ceiling: Mode,
           attempt: Callable[[Mode], T], outcome: Callable[[T], Outcome]) -> tuple[T, list[T], T | None]:
    """What one slice is stored as: (the attempt kept, the failed attempts before it in order, under `auto` the
    lossless attempt measured for its size or None). The policy's mode (or `auto`'s near-lossless search) first,
    then stricter modes while the gate fails and the ladder allows; an integrity problem stops it. `auto` then
    searches the wavelet where wavelet_worth says and keeps the smaller passing payload. `auto` also codes the slice
    lossless, to record what it saved, and keeps that payload where it is not larger (lossless always passes)."""
    if isinstance(policy, Auto):
        done, failed = search(original, gate, peak, ceiling, attempt, outcome)
    else:
        done, failed = attempt(policy), []
    while not outcome(done).passed and not outcome(done).integrity:
        stricter = next_mode(outcome(done).mode, gate, ceiling)
        if stricter is None:
            break
        failed.append(done)
        done = attempt(stricter)
    measured_lossless = done if outcome(done).mode.is_lossless else None
    if isinstance(policy, Auto) and wavelet_worth(outcome(done), gate, ceiling):
        other = wavelet_search.search(gate, peak, attempt, outcome)
        if other is not None and (outcome(other).integrity or outcome(other).size < outcome(done).size):
            done, failed = other, []
    lossless = None
    if isinstance(policy, Auto) and outcome(done).passed:
        lossless = measured_lossless if measured_lossless is not None else attempt(Mode.lossless())
        if outcome(lossless).size <= outcome(done).size:
            done = lossless
    return done, failed, lossless
