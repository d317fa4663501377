"""The escalation ladder of docs/design.md: a slice failing its gate is re-encoded at the next stricter mode.

lossy:q -> near-lossless:k -> lossless, never past the config's `codec.escalate_to`. k is the gate's max_error_max
when it sets one (capped at DEFAULT_K), else DEFAULT_K. A slice that failed at a larger k (the `auto` policy starts at
the largest k its gate admits) halves k down to that one first. "Stricter" is Mode's own order (codec.modes).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from codec.modes import Mode
from quality.auto import next_stricter

if TYPE_CHECKING:
    from configs import Gate

DEFAULT_K = 2  # |error| <= 2 stored values: > 60 dB PSNR on 12-bit data, above every default gate


def near_lossless_k(gate: Gate) -> int:
    if gate.max_error_max is not None:
        return min(gate.max_error_max, DEFAULT_K)
    return DEFAULT_K


def next_mode(current: Mode, gate: Gate, ceiling: Mode) -> Mode | None:
    """The next stricter mode after `current` for a slice under `gate`, or None when no stricter one is allowed."""
    if current >= ceiling:
        return None
    if current.is_lossy:
        candidate = Mode.near_lossless(near_lossless_k(gate))  # k = 0 is lossless
    else:
        candidate = next_stricter(current, floor_k=near_lossless_k(gate))
    if candidate is None or candidate <= current:
        candidate = Mode.lossless()
    return min(candidate, ceiling)
