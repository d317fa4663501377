"""The escalation ladder of docs/design.md: a slice failing its gate is re-encoded at the next stricter mode.

lossy:q -> near-lossless:k -> lossless, never past the config's `codec.escalate_to`. k is the gate's max_error_max
when it sets one (capped at DEFAULT_K), else DEFAULT_K.
"""
from __future__ import annotations

from codec.modes import Mode
from configs import Gate

DEFAULT_K = 2  # |error| <= 2 stored values: > 60 dB PSNR on 12-bit data, above every default gate


def strictness(mode: Mode) -> tuple[int, int]:
    """Order modes from loosest to strictest: lossy (higher q stricter) < near-lossless (smaller k stricter) < lossless."""
    if mode.kind == "lossy":
        return (0, mode.level)
    if mode.kind == "near-lossless":
        return (1, -mode.level)
    return (2, 0)


def near_lossless_k(gate: Gate) -> int:
    if gate.max_error_max is not None:
        return min(gate.max_error_max, DEFAULT_K)
    return DEFAULT_K


def next_mode(current: Mode, gate: Gate, ceiling: Mode) -> Mode | None:
    """The next stricter mode after `current` for a slice under `gate`, or None when no stricter one is allowed."""
    if strictness(current) >= strictness(ceiling):
        return None
    k = near_lossless_k(gate)
    candidate = Mode("near-lossless", k) if k > 0 else Mode("lossless", 0)
    if strictness(candidate) <= strictness(current):
        candidate = Mode("lossless", 0)
    return candidate if strictness(candidate) <= strictness(ceiling) else ceiling
