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

Format version 3 (COMPACT_VERSION) is the header of a payload without latents (near-lossless, lossless, wavelet):
those need no model, no tiles and no lossy reconstruction, so version 2's fixed 71 bytes (model hash, recon hash,
u32/i64 fields) were 3-5 % of a 64²-128² slice's payload at the gate. Version 3 keeps the fields that still say
something:

    0       magic b"MZC1", u8 version 3, u8 mode kind, u8 level
    7       u8 flags (bit 0 signed, bit 1 the values' sha256 follows), 3 bytes dtype string, u8 bits stored
    12      varints: rows, columns, tile / 64, lo (zigzag), hi - lo
    then    16 bytes sha256 of the original values (flag bit 1: where the decode must reproduce them: lossless, a
            wavelet stream with guard bound 0), the stream to the end, u32 CRC-32 of everything before it

Payloads with latents keep version 2; both versions decode.

Anything that does not parse, fails the CRC, names another model/version, or decodes to values that fail the
checksum raises a codec.errors.CodecError.
"""
from __future__ import annotations

import hashlib
import re
import struct
import zlib
from dataclasses import dataclass, field, replace

import numpy as np

from codec.errors import BitstreamError

MAGIC = b"MZC1"
FORMAT_VERSION = 2  # 2: synthesis zeroes activations beyond the slice border (1 did not)
COMPACT_VERSION = 3  # 3: the compact header of a payload without latents
VERSIONS = (FORMAT_VERSION, COMPACT_VERSION)
_HEAD = struct.Struct("<4sBBBB8s3sBBIIHqq16s8s")
MODE_KINDS = ("lossy", "near-lossless", "lossless", "wavelet")  # byte 5's values (codec.modes.KINDS, in the order
# they were added: a new kind takes the next value, so earlier payloads keep theirs)
NO_LATENTS = 255  # rate point of a near-lossless/lossless payload that carries no latents (flat reconstruction)
MAX_SIDE = 0xFFFF  # rows and columns a payload may declare (DICOM's are 16-bit): a decode never allocates more
_DTYPE = re.compile(r"[<>|=][iub][1248]")  # the integer dtypes the encoder writes (codec.api)


def values_digest(values: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(values, dtype="<i8").tobytes()).digest()[:16]


def recon_digest(recon: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(recon, dtype="<i8").tobytes()).digest()[:8]


@dataclass
class Header:
    mode_kind: str
    level: int
    rate_point: int
    model_hash: bytes | None  # None in version 3 (no latents, no model)
    dtype: str
    bits_stored: int
    signed: bool
    rows: int
    cols: int
    tile: int
    lo: int
    hi: int
    values_sha: bytes | None  # None: not recorded (a version 3 payload whose decode need not equal the original)
    recon_sha: bytes | None = b"\0" * 8  # None in version 3 (no latents: the reconstruction is flat)
    version: int = FORMAT_VERSION

    def compact(self, keep_values_sha: bool) -> Header:
        """This header as version 3 (a payload without latents); the values' hash kept only if asked."""
        if self.rate_point != NO_LATENTS:
            raise BitstreamError("only a payload without latents has a compact (version 3) header")
        return replace(self, model_hash=None, recon_sha=None, values_sha=self.values_sha if keep_values_sha else None,
                       version=COMPACT_VERSION)


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


def zigzag(x: int) -> int:
    return (x << 1) if x >= 0 else ((-x << 1) - 1)


def unzigzag(u: int) -> int:
    return (u >> 1) if not u & 1 else -((u + 1) >> 1)


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


class Reader:
    """Varints and fixed fields read off a stream, each read checked against its end; `error` naming `what`."""

    def __init__(self, data: bytes, at: int = 0, what: str = "payload header", error: type[Exception] = BitstreamError):
        self.data, self.at, self.what, self.error = data, at, what, error

    def varint(self) -> int:
        u, self.at = read_varint(self.data, self.at, self.what, self.error)
        return u

    def signed(self) -> int:
        return unzigzag(self.varint())

    def fixed(self, st: struct.Struct) -> tuple:
        return struct.unpack(st.format, self.take(st.size))

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise self.error(f"{self.what} truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def rest(self) -> bytes:
        return self.data[self.at :]


_COMPACT = struct.Struct("<4sBBBB3sB")  # magic, version, kind, level, flags, dtype, bits stored
_SIGNED, _HAS_SHA = 1, 2


def _pack_compact(h: Header, dt: bytes, stream: bytes) -> bytes:
    if h.tile % 64 or h.tile <= 0 or h.hi <= h.lo:
        raise BitstreamError(f"cannot pack tile {h.tile} or value range {h.lo}..{h.hi}")
    flags = (_SIGNED if h.signed else 0) | (_HAS_SHA if h.values_sha is not None else 0)
    head = _COMPACT.pack(MAGIC, COMPACT_VERSION, MODE_KINDS.index(h.mode_kind), h.level, flags, dt, h.bits_stored)
    head += write_varints((h.rows, h.cols, h.tile // 64, zigzag(h.lo), h.hi - h.lo))
    return head + (h.values_sha or b"") + stream


def _parse_compact(data: bytes) -> tuple[Header, int]:
    r = Reader(data[:-4])
    _, ver, kind, level, flags, dt, bits = r.fixed(_COMPACT)
    rows, cols, tile64, lo, span = r.varint(), r.varint(), r.varint(), r.signed(), r.varint()
    if flags & ~(_SIGNED | _HAS_SHA) or not span or not tile64:
        raise BitstreamError("corrupted header: flags, tile or value range")
    if _kind(kind) == "lossy":
        raise BitstreamError("corrupted header: a compact (version 3) payload carries no latents, so no lossy mode")
    sha = r.take(16) if flags & _HAS_SHA else None
    head = Header(_kind(kind), level, NO_LATENTS, None, dt.decode("ascii", "replace"), bits, bool(flags & _SIGNED),
                  rows, cols, 64 * tile64, lo, lo + span, sha, None, COMPACT_VERSION)
    return _checked(head), r.at


def _checked(h: Header) -> Header:
    """A parsed header whose shape and dtype a decode may allocate (a corrupted one, CRC and all, is refused)."""
    if not (0 < h.rows <= MAX_SIDE and 0 < h.cols <= MAX_SIDE):
        raise BitstreamError(f"corrupted header: {h.rows}x{h.cols} values")
    if not _DTYPE.fullmatch(h.dtype) or 8 * int(h.dtype[2]) < h.bits_stored:
        raise BitstreamError(f"corrupted header: dtype {h.dtype!r} for {h.bits_stored} bits")
    return h


def _kind(byte: int) -> str:
    if byte >= len(MODE_KINDS):
        raise BitstreamError(f"corrupted header: mode kind {byte}")
    return MODE_KINDS[byte]


def pack(p: Payload) -> bytes:
    h = p.header
    dt = h.dtype.encode()
    if len(dt) != 3:
        raise BitstreamError(f"unsupported dtype {h.dtype!r}")
    if h.version == COMPACT_VERSION:
        if p.chunks:
            raise BitstreamError("a compact (version 3) payload carries no latents")
        body = _pack_compact(h, dt, p.residual)
        return body + struct.pack("<I", zlib.crc32(body))
    head = _HEAD.pack(MAGIC, h.version, MODE_KINDS.index(h.mode_kind), h.level, h.rate_point, h.model_hash, dt,
                      h.bits_stored, int(h.signed), h.rows, h.cols, h.tile, h.lo, h.hi, h.values_sha, h.recon_sha)
    body = bytearray(head)
    for c in p.chunks:
        body += write_varints([len(c)])
    for c in p.chunks:
        body += c
    body += write_varints([len(p.residual)]) + p.residual
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


def _parse(data: bytes) -> tuple[Header, int]:
    """The header and where the sections after it start."""
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError("not a medzip learned-codec payload (bad magic)")
    if len(data) < _COMPACT.size + 4:
        raise BitstreamError(f"truncated payload: {len(data)} bytes")
    ver = data[4]
    if ver not in VERSIONS:
        raise BitstreamError(f"payload format version {ver} is not supported (this codec reads versions "
                             f"{', '.join(map(str, VERSIONS))})")
    if ver == COMPACT_VERSION:
        return _parse_compact(data)
    if len(data) < _HEAD.size + 4:
        raise BitstreamError(f"truncated payload: {len(data)} bytes, the header alone needs {_HEAD.size + 4}")
    (_, ver, kind, level, rp, mh, dt, bits, signed, rows, cols, tile, lo, hi, vsha, rsha) = _HEAD.unpack_from(data)
    return _checked(Header(_kind(kind), level, rp, mh, dt.decode("ascii", "replace"), bits, bool(signed), rows, cols,
                           tile, lo, hi, vsha, rsha, ver)), _HEAD.size


def parse_header(data: bytes) -> Header:
    return _parse(data)[0]


def unpack(data: bytes, n_tiles_of) -> Payload:
    """Full parse; n_tiles_of(header) gives the number of tile chunks. Checks the CRC first."""
    (crc,) = struct.unpack("<I", data[-4:]) if len(data) >= 4 else (None,)
    if crc is None or zlib.crc32(data[:-4]) != crc:
        raise BitstreamError("payload corrupted or truncated (CRC-32 mismatch)")
    h, pos = _parse(data)
    if h.version == COMPACT_VERSION:
        return Payload(h, [], data[pos:-4])
    n = n_tiles_of(h)
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
