"""Real bundled slices as the residual layer's tests code them."""
from __future__ import annotations

import numpy as np
import pydicom

from lab.realdata import find


def real_slice(name: str) -> tuple[np.ndarray, int, bool]:
    """The first frame of a bundled file as int64 stored values, with its BitsStored and signedness."""
    ds = pydicom.dcmread(find(name))
    v = ds.pixel_array.reshape((-1, ds.Rows, ds.Columns))[0].astype(np.int64)
    return v, int(ds.BitsStored), int(ds.PixelRepresentation) == 1


def flat(v: np.ndarray) -> np.ndarray:
    """A flat reconstruction under `v` (the residual layer's recon without latents)."""
    return np.full(v.shape, int(v.min()), np.int64)
