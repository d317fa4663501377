"""Public codec entry points used by the archive flow and the bench.

`encode(values, mode, bits_stored, signed)` -> payload bytes; `SliceEncoder(values, bits_stored, signed)` encodes one
frame in several modes; `decode(payload)` -> array of stored values;
`payload_info(payload)` -> dict; `codec_identity()` -> "model name:weights hash".

Modes (codec/modes.py), each coded by the coder registered for its kind (codec/coders.py):
  lossy:q          learned hyperprior codec at rate point q (0 = smallest, Q-1 = best quality)
  near-lossless:k  the residual layer over a flat image (codec/residual_raster.py), |e| <= k
  lossless         the same with k = 0, bit-exact, verified against the checksum of the original values
  wavelet:q/e      the integer 9/7 wavelet coder (codec/wavelet.py) at rate point q, |e| <= e by its guard
Stream format: codec/bitstream.py. Decoding never depends on floating point: see codec/learned.py and codec/fixed.py.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from codec import bitstream, coders, learned, tiles
from codec.bitstream import NO_LATENTS
from codec.errors import CodecError, ModelError
from codec.modes import Mode
from codec.values import check_fits, value_range

__all__ = ["CodecError", "NO_LATENTS", "SliceEncoder", "codec_identity", "decode", "encode", "encode_decoded",
           "encode_many", "payload_info", "sections"]


def _model() -> learned.LearnedModel:
    try:
        return learned.load_model()
    except ModelError as exc:
        raise CodecError(str(exc)) from None


def codec_identity() -> str:
    """'medzip-hp-v1:<first 16 hex of the weights sha256>' - what an archive records to know its decoder."""
    return _model().identity


def _check_values(values: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2:
        raise CodecError(f"expected a 2-D frame, got shape {values.shape}")
    if values.size == 0:
        raise CodecError(f"empty frame of shape {values.shape}")
    if values.dtype.kind not in "iub":
        raise CodecError(f"stored values must be integers, got dtype {values.dtype}")
    if max(values.shape) > bitstream.MAX_SIDE:
        raise CodecError(f"a {values.shape[0]}x{values.shape[1]} frame: at most {bitstream.MAX_SIDE} a side")
    check_fits(values, bits_stored, signed)
    return values


def _dtype_code(dt: np.dtype) -> str:
    s = np.dtype(dt).str
    if s[0] == "=":
        s = ("<" if np.little_endian else ">") + s[1:]
    return s


def encode(values: np.ndarray, mode: Mode | str, bits_stored: int, signed: bool, tile: int = tiles.DEFAULT_TILE) -> bytes:
    """One 2-D frame of stored integer values (`bits_stored` bits, two's complement when `signed`) -> a
    self-describing payload in `mode`. Raises CodecError for values that do not fit or a mode the model lacks."""
    return SliceEncoder(values, bits_stored, signed, tile).encode_decoded(mode)[0]


def encode_decoded(values: np.ndarray, mode: Mode | str, bits_stored: int, signed: bool,
                   tile: int = tiles.DEFAULT_TILE) -> tuple[bytes, np.ndarray | None]:
    """encode() and the stored values the payload decodes to (decode()'s array, same dtype) where the coder
    computes them on the way: the residual and wavelet coders run the decoder's integer arithmetic at encode. None
    for the learned lossy layer (decode the payload to know). A search that judges many candidates saves their
    decodes; what is kept is still decoded from where it is stored (flows.chunk_work.confirm_chunk)."""
    return SliceEncoder(values, bits_stored, signed, tile).encode_decoded(mode)


class SliceEncoder:
    """One frame encoded in as many modes as a search asks for (`auto`): what does not depend on the mode (the
    checks, the value range and checksum) is done once, and the residual coder settles the slice's layer once: its
    first near-lossless encode probes whether the interleaved version 1 layer may pay (codec/coders.py), and the
    later ones at other k keep that verdict instead of probing again (~40 ms a 512² encode; on 11 CT and MR slices
    the verdict never changed with k); it codes the frame's first residual with both entropy coders and keeps the
    context-mixed one where it pays, and `series` (a dict shared by consecutive frames of one series) lets later
    frames reuse that choice. So a payload may differ from a lone encode() at the same mode; both decode exactly as
    their streams say."""

    def __init__(self, values: np.ndarray, bits_stored: int, signed: bool, tile: int = tiles.DEFAULT_TILE,
                 series: dict | None = None):
        values = _check_values(values, bits_stored, signed)
        self._model = _model()
        v64 = values.astype(np.int64)
        lo, hi = int(v64.min()), int(v64.max())
        if hi <= lo:
            hi = lo + 1
        tile = min(int(tile), 64 * -(-max(values.shape) // 64))  # a small slice gets one small tile
        self._vrange = value_range(bits_stored, signed)
        self._grid = tiles.Grid(values.shape[0], values.shape[1], tile)
        self._header = bitstream.Header(
            mode_kind="lossless", level=0, rate_point=0, model_hash=self._model.hash8,
            dtype=_dtype_code(values.dtype), bits_stored=int(bits_stored), signed=bool(signed), rows=values.shape[0],
            cols=values.shape[1], tile=tile, lo=lo, hi=hi, values_sha=bitstream.values_digest(v64))
        self._values = v64
        self._memo: dict = {}
        self._series = {} if series is None else series

    def encode_decoded(self, mode: Mode | str) -> tuple[bytes, np.ndarray | None]:
        """This frame in `mode`: the payload and, as encode_decoded() above, the values it decodes to or None."""
        mode = Mode.parse(mode)
        coder = coders.coder_for(mode.kind)
        q = coder.rate_point(self._model, mode)
        header = replace(self._header, mode_kind=mode.kind, level=mode.level, rate_point=q)
        s = coders.Slice(self._values, self._grid, header, *self._vrange, memo=self._memo, series=self._series)
        payload, decoded = coder.encode_decoded(s, self._model, mode)
        return payload, (None if decoded is None else decoded.astype(np.dtype(header.dtype)))


def encode_many(frames: Sequence[np.ndarray], mode: Mode | str, bits_stored: int, signed: bool) -> list[bytes]:
    """encode() of each frame (all of one bit depth and signedness) at one mode, in order."""
    return [encode(f, mode, bits_stored, signed) for f in frames]


def _header(payload: bytes) -> bitstream.Header:
    try:
        return bitstream.parse_header(bytes(payload))
    except bitstream.BitstreamError as exc:
        raise CodecError(str(exc)) from None


def sections(payload: bytes) -> bitstream.Payload:
    """The payload parsed into header, tile chunks and residual bytes (CRC checked; no model needed)."""
    payload = bytes(payload)
    head = _header(payload)
    try:
        grid = tiles.Grid(head.rows, head.cols, head.tile)
        return bitstream.unpack(payload, lambda h: 0 if h.rate_point == NO_LATENTS else grid.n_tiles)
    except (bitstream.BitstreamError, ValueError) as exc:
        raise CodecError(str(exc)) from None


def _model_for(head: bitstream.Header) -> learned.LearnedModel:
    if head.model_hash is None:
        raise CodecError("corrupted header: a payload that needs a model names none")
    model = learned.model_for_hash(head.model_hash)
    if model is None or model.hash8 != head.model_hash:
        raise CodecError(
            f"payload was encoded by model {head.model_hash.hex()}, which is not among the weights here "
            f"(searched {', '.join(str(d) for d in learned.search_dirs())}): put that weights file in one of "
            "them or in a folder named by MEDZIP_CODEC_WEIGHTS_PATH"
        )
    return model


def _codec_name(h: bitstream.Header) -> str:
    if h.mode_kind == "wavelet":
        return "medzip-wavelet"
    return "medzip-learned" if h.rate_point != NO_LATENTS else "medzip-residual"


def payload_info(payload: bytes) -> dict:
    """What a payload's header says (codec, format version, model hash, mode, rate point, shape, dtype, bit depth,
    normalisation, truncated sha256 of the original values) and its size; reads the header (and a wavelet stream's
    own header, for its guard bound), needs no model."""
    h = _header(payload)
    mode = coders.coder_for(h.mode_kind).mode_text(h, payload)
    return {
        "codec": _codec_name(h), "format_version": h.version,
        "model_hash": None if h.model_hash is None else h.model_hash.hex(), "mode": mode,
        "rate_point": None if h.rate_point == NO_LATENTS else h.rate_point, "latents": h.rate_point != NO_LATENTS,
        "shape": [h.rows, h.cols], "dtype": h.dtype, "bits_stored": h.bits_stored,
        "signed": h.signed, "tile": h.tile, "lo": h.lo, "hi": h.hi,
        "sha256_128": None if h.values_sha is None else h.values_sha.hex(), "bytes": len(payload),
    }


def decode(payload: bytes, exact: bool = True) -> np.ndarray:
    """Stored values of the payload. exact=False (lossy only) uses the compiled float synthesis: faster, but its
    result may differ by one stored value on a few pixels between backends; near-lossless/lossless always decode
    exactly."""
    payload = bytes(payload)
    head = _header(payload)
    coder = coders.coder_for(head.mode_kind)
    model = _model_for(head) if coder.needs_model(head) else None
    p = sections(payload)
    h = p.header
    try:
        vmin, vmax = value_range(h.bits_stored, h.signed)
        dtype = np.dtype(h.dtype)
    except TypeError:
        raise CodecError(f"corrupted header: dtype {h.dtype!r}") from None
    if not vmin <= h.lo < h.hi <= vmax + 1:  # encode's hi is lo + 1 on a constant slice
        raise CodecError(f"corrupted header: value range {h.lo}..{h.hi} outside {vmin}..{vmax}")
    values = coder.decode(p, model, tiles.Grid(h.rows, h.cols, h.tile), vmin, vmax, exact)
    return values.astype(dtype)
