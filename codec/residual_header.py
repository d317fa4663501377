"""The compact header of raster residual stream version 5: version 3 or 4's walk and coder, its header in varints.

Versions 2-4 spend 43 bytes on their header, 48 on each weight set and 16 on the intensity thresholds: 91-203 bytes,
10-20 % of a 64² or 80² MR slice's near-lossless payload. Version 5 writes the same fields as LEB128 varints
(signed ones zigzagged), drops the recon's CRC (the recon under a raster stream is flat: its value and shape say
everything) and keeps the CRC-32 of the decoded values:

    magic MZR5, flags (bit 0 signed, bit 1 exact block map follows, bits 2-3 the weight sets: 0 one, 1 four, 2 three
    intensity classes, bit 4 the context-mixed coder of codec/residual_mixed.py in place of the range coder, bit 5 with
    bit 4: its mixer model 2, since 4 December 2026), bits stored (u8), k, rows, cols, base (zigzag), top (zigzag),
    CRC-32 of the decoded values (u32), the weights (zigzag, 12 a set), the two intensity thresholds (zigzag,
    three-class streams only), then (with bit 1) the exact block map as varint length + zlib data, then the range
    coder's words (with bit 4: the binary arithmetic coder's bytes).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from codec import bitstream
from codec.bitstream import write_varints, zigzag
from codec.errors import ResidualError

MAGIC5 = b"MZR5"
_SETS_CODE = {1: 0, 4: 1, 3: 2}
_SETS_OF = {code: n for n, code in _SETS_CODE.items()}
_U32 = struct.Struct("<I")


def reader(data: bytes, at: int = 0) -> bitstream.Reader:
    return bitstream.Reader(data, at, "residual stream header", ResidualError)


@dataclass(frozen=True)
class Compact:
    k: int
    bits: int
    signed: bool
    rows: int
    cols: int
    base: int
    top: int
    crc_decoded: int
    weights: np.ndarray  # (sets, N_NEIGHBOURS) int64
    thresholds: np.ndarray  # () or (2,) int64
    exact_map: bytes | None  # zlib data of the packed block map (walk version 4), None for version 3
    mixed: int = 0  # coded by the context mixer (codec/residual_mixed.py): its model, 1 or 2; 0: the range coder


def pack(h: Compact) -> bytes:
    sets = len(h.weights)
    if sets not in _SETS_CODE:
        raise ResidualError(f"stream version 5 carries 1, 3 or 4 weight sets, not {sets}")
    if h.mixed not in (0, 1, 2):
        raise ResidualError(f"stream version 5 names mixer model 1 or 2, not {h.mixed!r}")
    flags = int(h.signed) | (2 if h.exact_map is not None else 0) | (_SETS_CODE[sets] << 2) | (16 if h.mixed else 0) \
        | (32 if h.mixed == 2 else 0)
    out = bytearray(MAGIC5)
    out += bytes((flags, h.bits))
    out += write_varints((h.k, h.rows, h.cols, zigzag(h.base), zigzag(h.top)))
    out += _U32.pack(h.crc_decoded)
    numbers = np.asarray(h.weights, np.int64).ravel().tolist() + np.asarray(h.thresholds, np.int64).tolist()
    out += write_varints(zigzag(int(w)) for w in numbers)
    if h.exact_map is not None:
        out += write_varints((len(h.exact_map),)) + h.exact_map
    return bytes(out)


def parse(data: bytes, n_neighbours: int, intensity_classes: int) -> tuple[Compact, bytes]:
    """The header of a version 5 stream and the coder's bytes after it."""
    r = reader(bytes(data))
    if r.take(4) != MAGIC5:
        raise ResidualError("not a version 5 residual stream")
    flags, bits = r.take(2)
    code = (flags >> 2) & 3
    if flags & ~0x3F or code not in _SETS_OF or (flags & 0x30) == 0x20:
        raise ResidualError(f"residual stream corrupted (header flags {flags:#x})")
    sets = _SETS_OF[code]
    k, rows, cols, base, top = r.varint(), r.varint(), r.varint(), r.signed(), r.signed()
    (crc,) = r.fixed(_U32)
    weights = np.array([r.signed() for _ in range(sets * n_neighbours)], np.int64).reshape(sets, n_neighbours)
    if np.any(np.abs(weights) >= 1 << 31):
        raise ResidualError("residual stream corrupted (a predictor weight out of range)")
    thresholds = np.array([r.signed() for _ in range(intensity_classes - 1)] if sets == intensity_classes else [],
                          np.int64)
    exact = r.take(r.varint()) if flags & 2 else None
    mixed = (2 if flags & 32 else 1) if flags & 16 else 0
    head = Compact(k, bits, bool(flags & 1), rows, cols, base, top, crc, weights, thresholds, exact, mixed)
    return head, r.rest()
