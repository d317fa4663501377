"""archive.checksums: the SHA-256 of stored values is canonical (byte order, memory layout, dtype width)."""
from __future__ import annotations

import numpy as np
import pytest

from archive import values_sha256


def test_values_sha256_is_canonical():
    a = np.arange(12, dtype="<u2").reshape(3, 4)
    assert values_sha256(a) == values_sha256(a.astype(">u2")) == values_sha256(np.asfortranarray(a))
    assert values_sha256(a) != values_sha256(a.T)  # C order of the given shape
    assert values_sha256(a.astype(np.int64), "<u2") == values_sha256(a)
    with pytest.raises(ValueError):
        values_sha256(np.array([70000]), "<u2")
