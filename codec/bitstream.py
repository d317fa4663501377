"""The medzip payload: a self-describing binary header, one chunk per tile, an optional residual layer, a CRC.

    offset  field
    0       magic b"MZC1"
    4       u8  format version (FORMAT_VERSION)
    5       u8  mode kind (0 lossy, 1 near-lossless, 2 lossless, 3 wavelet), u8 level (q or k), u8 rate point of the
            latents (255: a payload without latents: the residual layer codes against a flat image, or a wavelet
            stream codes the slice)
    8       8 bytes  model hash (first 8 bytes of the weights file's sha256)
    16      3 bytes  numpy dtype string of the values (e.g. b"<u2"), u8 bits stored, u8 signed
    21      u32 rows, u32 columns, u16 tile size (pixels)
    31      i64 lo, i64 hi (normalisation: x = (v - lo) / (hi - lo))
    47      16 bytes  sha256 of the original stored values (as little-endian int64), truncated to 128 bits
    63      8 bytes   sha256 of the lossy reconstruction (near-lossless/lossless; zeros for lossy)
    71      varint per tile: chunk length; then the chunks; then varint residual length + residual bytes (a wavelet
            payload's stream, codec/wavelet.py, is in this section)
    end-4   u32 CRC-32 of everything before it

Anything that does not parse, fails the CRC, names another model/version, or decodes to values that fail the
checksum raises a codec.errors.CodecError.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from codec.errors import BitstreamError

MAGIC = b"MZC1"
FORMAT_VERSION = 2  # 2: synthesis zeroes activations beyond the slice border (1 did not)
_HEAD = struct.Struct("<4sBBBB8s3sBBIIHqq16s8s")
MODE_KINDS = ("lossy", "near-lossless", "lossless", "wavelet")  # byte 5's values (codec.modes.KINDS, in the order
# they were added: a new kind takes the next value, so earlier payloads keep theirs)
NO_LATENTS = 255  # rate point of a near-lossless/lossless payload that carries no latents (flat reconstruction)


def values_digest(values: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(values, dtype="<i8").tobytes()).digest()[:16]


def recon_digest(recon: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(recon, dtype="<i8").tobytes()).digest()[:8]


@dataclass
class Header:
    mode_kind: str
    level: int
    rate_point: int
    model_hash: bytes
    dtype: str
    bits_stored: int
    signed: bool
    rows: int
    cols: int
    tile: int
    lo: int
    hi: int
    values_sha: bytes
    recon_sha: bytes = b"\0" * 8
    version: int = FORMAT_VERSION


@dataclass
class Payload:
    header: Header
    chunks: list[bytes] = field(default_factory=list)
    residual: bytes = b""


def write_varints(values) -> bytes:
    """LEB128: 7 bits per byte, low bits first, high bit set on every byte but a value's last."""
    out = bytearray()
    for v in values:
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | 0x80 if v else b)
            if not v:
                break
    return bytes(out)


def read_varint(data: bytes, pos: int, what: str = "payload length field",
                error: type[Exception] = BitstreamError) -> tuple[int, int]:
    """The varint at data[pos:] and the position after it; `error` naming `what` if it is cut or too long."""
    v, shift = 0, 0
    while True:
        if pos >= len(data):
            raise error(f"{what} truncated")
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, pos
        if shift > 63:
            raise error(f"{what} corrupted: value too long")


def pack(p: Payload) -> bytes:
    h = p.header
    dt = h.dtype.encode()
    if len(dt) != 3:
        raise BitstreamError(f"unsupported dtype {h.dtype!r}")
    head = _HEAD.pack(MAGIC, h.version, MODE_KINDS.index(h.mode_kind), h.level, h.rate_point, h.model_hash, dt,
                      h.bits_stored, int(h.signed), h.rows, h.cols, h.tile, h.lo, h.hi, h.values_sha, h.recon_sha)
    body = bytearray(head)
    for c in p.chunks:
        body += write_varints([len(c)])
    for c in p.chunks:
        body += c
    body += write_varints([len(p.residual)]) + p.residual
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


def parse_header(data: bytes) -> Header:
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError("not a medzip learned-codec payload (bad magic)")
    if len(data) < _HEAD.size + 4:
        raise BitstreamError(f"truncated payload: {len(data)} bytes, the header alone needs {_HEAD.size + 4}")
    (_, ver, kind, level, rp, mh, dt, bits, signed, rows, cols, tile, lo, hi, vsha, rsha) = _HEAD.unpack_from(data)
    if ver != FORMAT_VERSION:
        raise BitstreamError(f"payload format version {ver} is not supported (this codec reads version {FORMAT_VERSION})")
    if kind >= len(MODE_KINDS):
        raise BitstreamError(f"corrupted header: mode kind {kind}")
    return Header(MODE_KINDS[kind], level, rp, mh, dt.decode("ascii", "replace"), bits, bool(signed), rows, cols,
                  tile, lo, hi, vsha, rsha, ver)


def unpack(data: bytes, n_tiles_of) -> Payload:
    """Full parse; n_tiles_of(header) gives the number of tile chunks. Checks the CRC first."""
    h = parse_header(data)
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        raise BitstreamError("payload corrupted or truncated (CRC-32 mismatch)")
    n = n_tiles_of(h)
    pos = _HEAD.size
    lengths = []
    for _ in range(n):
        ln, pos = read_varint(data, pos)
        lengths.append(ln)
    chunks = []
    for ln in lengths:
        if pos + ln > len(data) - 4:
            raise BitstreamError("truncated payload (tile chunk)")
        chunks.append(data[pos : pos + ln])
        pos += ln
    rl, pos = read_varint(data, pos)
    if pos + rl != len(data) - 4:
        raise BitstreamError("payload length does not match its sections")
    return Payload(h, chunks, data[pos : pos + rl])
