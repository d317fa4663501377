"""Public codec entry points used by the archive flow and the bench.

`encode(values, mode, bits_stored, signed)` -> payload bytes; `decode(payload)` -> array of stored values.
A payload is self-describing (see codec/bitstream.py once the learned codec lands).

FOUNDATION PLACEHOLDER: until the learned codec lands this is a lossless zlib path with a small header, so the
archive pipeline runs end to end through the same calls the learned codec will serve.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib

import numpy as np

from codec.modes import Mode


class CodecError(ValueError):
    """A payload that cannot be decoded faithfully (foreign, truncated, corrupted, failed checksum)."""


_MAGIC = b"MZP0"


def _values_checksum(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def encode(values: np.ndarray, mode: Mode, bits_stored: int, signed: bool) -> bytes:
    if values.ndim != 2:
        raise CodecError(f"expected a 2-D frame, got shape {values.shape}")
    header = {
        "codec": "zlib-lossless",
        "mode": "lossless",
        "shape": list(values.shape),
        "dtype": values.dtype.str,
        "bits_stored": bits_stored,
        "signed": signed,
        "sha256": _values_checksum(values),
    }
    head = json.dumps(header, sort_keys=True).encode()
    body = zlib.compress(np.ascontiguousarray(values).tobytes(), 6)
    return _MAGIC + struct.pack("<I", len(head)) + head + body


def payload_info(payload: bytes) -> dict:
    if len(payload) < 8 or payload[:4] != _MAGIC:
        raise CodecError("not a medzip payload (bad magic)")
    (n,) = struct.unpack("<I", payload[4:8])
    try:
        return json.loads(payload[8 : 8 + n])
    except ValueError as exc:
        raise CodecError(f"corrupted payload header: {exc}") from None


def decode(payload: bytes) -> np.ndarray:
    info = payload_info(payload)
    (n,) = struct.unpack("<I", payload[4:8])
    try:
        raw = zlib.decompress(payload[8 + n :])
    except zlib.error as exc:
        raise CodecError(f"corrupted payload body: {exc}") from None
    values = np.frombuffer(raw, dtype=np.dtype(info["dtype"])).reshape(info["shape"]).copy()
    if _values_checksum(values) != info["sha256"]:
        raise CodecError("decoded values fail the payload checksum")
    return values
