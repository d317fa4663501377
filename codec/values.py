"""Stored values: the integer range a bit depth allows, and the one check that a frame fits it."""
from __future__ import annotations

import numpy as np

from codec.errors import CodecError


def value_range(bits_stored: int, signed: bool, error: type[Exception] = CodecError) -> tuple[int, int]:
    """(min, max) stored value of `bits_stored` bits, two's complement when signed; `error` for a bad depth."""
    if not 1 <= int(bits_stored) <= 32:
        raise error(f"bits_stored must be 1..32, got {bits_stored}")
    if signed:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def check_fits(values: np.ndarray, bits_stored: int, signed: bool, error: type[Exception] = CodecError) -> tuple[int, int]:
    """Raise `error` unless every value lies in value_range(bits_stored, signed); returns that range."""
    vmin, vmax = value_range(bits_stored, signed, error)
    lo, hi = int(values.min()), int(values.max())
    if lo < vmin or hi > vmax:
        raise error(f"values {lo}..{hi} exceed the BitsStored={bits_stored} {'signed' if signed else 'unsigned'} "
                    f"range {vmin}..{vmax}")
    return vmin, vmax
