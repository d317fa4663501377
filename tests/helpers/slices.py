"""Real bundled slices as the residual layer's tests code them, and its kept streams."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

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


KEPT = Path(__file__).parents[1] / "data" / "payloads"


def sha256_i8(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).astype("<i8").tobytes()).hexdigest()


def kept_693_crop(stem: str, magic: bytes, decode) -> tuple[np.ndarray, np.ndarray, dict]:
    """A kept stream of the 693_UNCR crop rows 0:128, columns 32:160 decoded by `decode(data, recon, k, bits,
    signed)`: (decoded values, the crop, its meta), with the stream's magic and both SHA-256s checked."""
    meta = json.loads((KEPT / f"{stem}.json").read_text())
    data = (KEPT / f"{stem}.bin").read_bytes()
    assert data[:4] == magic
    recon = np.full(meta["shape"], meta["base"], np.int64)
    values = decode(data, recon, meta["k"], meta["bits"], meta["signed"])
    assert sha256_i8(values) == meta["decoded_sha256"]
    crop = real_slice("693_UNCR.dcm")[0][0:128, 32:160]
    assert sha256_i8(crop) == meta["values_sha256"]
    return values, crop, meta


def decodes_of_bit_flips(decode, data: bytes, error: type[Exception], start: int, seed: int, flips: int = 20):
    """Flip one random bit of `data` past `start`, `flips` times, and yield what decode(bad) returns where it does
    not raise `error` (for the caller to check against the bound)."""
    rng = np.random.default_rng(seed)
    for _ in range(flips):
        bad = bytearray(data)
        pos = int(rng.integers(start, len(bad)))
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            yield decode(bytes(bad))
        except error:
            continue
