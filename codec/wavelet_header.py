"""The wavelet stream's header: version 1's fixed fields (MZW1, still decoded) and version 2's varints (MZW2, written).

Version 1 spent 34 bytes on its header and 4 on each band's step (10 bands on 64², 16 on 256² and larger): 74-98
bytes, 4 % of a 64² MR slice's stream at the gate. The steps are one global step D over each band's synthesis
gain, and the gains depend on the number of levels alone (codec.wavelet.gains), so version 2 writes the first
band's step and predicts each other one from it with STEP_RATIOS: the prediction misses by a rounding, one byte a
band. Version 2:

    magic MZW2, varints: rows, cols, q, offset in 1/256 (zigzag), max bits, guard bound + 1 (0: no guard), range
    coder words, raw bit bytes; CRC-32 of the decoded values (u32); the first band's step (varint, 1/256) and each
    other band's step minus its prediction (zigzag varints), coarse to fine; then the words, raw bits and guard as
    in version 1.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from codec import bitstream
from codec import wavelet_kernels as K
from codec.errors import WaveletError

MAGIC1, MAGIC2 = b"MZW1", b"MZW2"
HEAD1 = struct.Struct("<4sIIHhBBIIII")  # magic, rows, cols, q, offset/256, levels, max bits, bound, crc, words, raw
NO_GUARD = 0xFFFFFFFF
MAX_PIXELS = 1 << 28
MAX_BITS = 40
MAX_BOUND = 1 << 31
_U32 = struct.Struct("<I")

# sqrt(g_0 / g_b) in 1/65536 for each band b (coarse to fine) of a transform of L levels: round(65536 sqrt(g_0 /
# g_b)) of codec.wavelet.gains, written out as integers so the prediction is the same on every CPU (a test checks
# them against gains()).
STEP_RATIOS = {
    0: (65536,),
    1: (65536, 84185, 84185, 108141),
    2: (65536, 89405, 89405, 121967, 116652, 116652, 149846),
    3: (65536, 87129, 87129, 115838, 120620, 120620, 164551, 157380, 157380, 202165),
    4: (65536, 85939, 85939, 112693, 115848, 115848, 154018, 160377, 160377, 218788, 209254, 209254, 268800),
    5: (65536, 85581, 85581, 111757, 113756, 113756, 149170, 153346, 153346, 203872, 212290, 212290, 289607, 276987,
        276987, 355807),
}


@dataclass(frozen=True)
class Head:
    version: int
    rows: int
    cols: int
    q: int
    offset: int  # reconstruction offset - THETA, in 1/256
    levels: int
    maxbits: int
    bound: int  # NO_GUARD: none
    crc: int  # CRC-32 of the decoded values
    words: int  # range coder words (u32 each)
    raw: int  # raw bit bytes
    steps: np.ndarray  # int64, one a band in 1/256, coarse to fine
    body: int  # where the words start

    @property
    def bands(self) -> int:
        return 3 * self.levels + 1


def predicted(first: int, levels: int) -> list[int]:
    """Each band's step as version 2 predicts it from the first band's."""
    return [(first * r + (1 << 15)) >> 16 for r in STEP_RATIOS[levels]]


def write(rows: int, cols: int, q: int, offset: int, maxbits: int, bound: int | None, crc: int, words: int,
          raw: int, steps: np.ndarray) -> bytes:
    """A version 2 header (the steps included)."""
    levels = len(K.sizes((rows, cols))[0]) - 1
    steps = [int(s) for s in steps]
    if len(steps) != 3 * levels + 1:
        raise WaveletError(f"{len(steps)} steps for {3 * levels + 1} bands")
    guard = 0 if bound is None else bound + 1
    out = bytearray(MAGIC2)
    out += bitstream.write_varints((rows, cols, q, bitstream.zigzag(offset), maxbits, guard, words, raw))
    out += _U32.pack(crc)
    pred = predicted(steps[0], levels)
    out += bitstream.write_varints([steps[0]] + [bitstream.zigzag(s - p) for s, p in zip(steps[1:], pred[1:])])
    return bytes(out)


def parse(data: bytes) -> Head:
    """The header of a version 1 or 2 stream, its fields checked against each other and the stream's length."""
    magic = bytes(data[:4])
    if magic == MAGIC2:
        head = _parse2(data)
    elif magic == MAGIC1:
        head = _parse1(data)
    else:
        raise WaveletError(f"not a wavelet stream (magic {magic!r})")
    if head.q > 255 or not -256 < head.offset < 256 or not 1 <= head.maxbits <= MAX_BITS:
        raise WaveletError(f"wavelet stream corrupted: q {head.q}, offset {head.offset}/256, {head.maxbits} bits")
    if head.bound != NO_GUARD and head.bound >= MAX_BOUND:
        raise WaveletError(f"wavelet stream corrupted: guard bound {head.bound}")
    if len(data) < head.body + 4 * head.words + head.raw:
        raise WaveletError(f"wavelet stream truncated: {len(data)} bytes")
    if not (head.steps > 0).all() or (head.steps > NO_GUARD).any():
        raise WaveletError("wavelet stream corrupted: a band step of 0 or out of range")
    return head


def _levels(rows: int, cols: int) -> int:
    if not (1 <= rows and 1 <= cols and rows * cols <= MAX_PIXELS):
        raise WaveletError(f"wavelet stream corrupted: {rows}x{cols} values")
    return len(K.sizes((rows, cols))[0]) - 1


def _parse1(data: bytes) -> Head:
    if len(data) < HEAD1.size:
        raise WaveletError(f"wavelet stream truncated: {len(data)} bytes")
    _, rows, cols, q, off, levels, maxbits, bound, crc, words, raw = HEAD1.unpack_from(data)
    n_levels = _levels(rows, cols)
    if levels != n_levels:
        raise WaveletError(f"wavelet stream corrupted: {levels} levels where {rows}x{cols} has {n_levels}")
    n_bands = 3 * levels + 1
    if len(data) < HEAD1.size + 4 * n_bands:
        raise WaveletError(f"wavelet stream truncated: {len(data)} bytes")
    steps = np.frombuffer(data, "<u4", n_bands, HEAD1.size).astype(np.int64)
    return Head(1, rows, cols, q, off, levels, maxbits, bound, crc, words, raw, steps, HEAD1.size + 4 * n_bands)


def _parse2(data: bytes) -> Head:
    r = bitstream.Reader(data, 4, "wavelet stream header", WaveletError)
    rows, cols, q, off, maxbits, guard, words, raw = (r.varint() for _ in range(8))
    off = bitstream.unzigzag(off)
    levels = _levels(rows, cols)
    if guard > MAX_BOUND or q > 255 or maxbits > MAX_BITS:
        raise WaveletError(f"wavelet stream corrupted: guard {guard - 1}, q {q}, {maxbits} bits")
    (crc,) = r.fixed(_U32)
    first = r.varint()
    if not 0 < first <= NO_GUARD:
        raise WaveletError("wavelet stream corrupted: a band step of 0 or out of range")
    steps = [first]
    for p in predicted(first, levels)[1:]:
        steps.append(p + r.signed())
        if not 0 < steps[-1] <= NO_GUARD:  # here, before np.array: a varint may hold more than int64
            raise WaveletError("wavelet stream corrupted: a band step of 0 or out of range")
    steps = np.array(steps, np.int64)
    bound = NO_GUARD if guard == 0 else guard - 1
    return Head(2, rows, cols, q, off, levels, maxbits, bound, crc, words, raw, steps, r.at)
