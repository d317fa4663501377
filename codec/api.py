"""Public codec entry points used by the archive flow and the bench.

`encode(values, mode, bits_stored, signed)` -> payload bytes; `decode(payload)` -> array of stored values;
`payload_info(payload)` -> dict; `codec_identity()` -> "model name:weights hash".

Modes (codec/modes.py):
  lossy:q          learned hyperprior codec at rate point q (0 = smallest, Q-1 = best quality)
  near-lossless:k  learned layer at the model's residual rate point + residual layer (codec/residual.py), |e| <= k
  lossless         the same with k = 0, bit-exact, verified against the checksum of the original values
Stream format: codec/bitstream.py. Decoding never depends on floating point: see codec/engine.py and codec/fixed.py.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from codec import bitstream, engine, entropy, tiles
from codec.errors import CodecError
from codec.modes import Mode
from codec.values import check_fits, value_range


def _model() -> engine.Model:
    try:
        return engine.load_model()
    except engine.ModelError as exc:
        raise CodecError(str(exc)) from None


def codec_identity() -> str:
    """'medzip-hp-v1:<first 16 hex of the weights sha256>' - what an archive records to know its decoder."""
    return _model().identity


def _residual():
    from codec import residual  # the residual helper's layer

    return residual


def _check_values(values: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2:
        raise CodecError(f"expected a 2-D frame, got shape {values.shape}")
    if values.size == 0:
        raise CodecError(f"empty frame of shape {values.shape}")
    if values.dtype.kind not in "iub":
        raise CodecError(f"stored values must be integers, got dtype {values.dtype}")
    check_fits(values, bits_stored, signed)
    return values


def _dtype_code(dt: np.dtype) -> str:
    s = np.dtype(dt).str
    if s[0] == "=":
        s = ("<" if np.little_endian else ">") + s[1:]
    return s


def encode(values: np.ndarray, mode: Mode | str, bits_stored: int, signed: bool, tile: int = tiles.DEFAULT_TILE) -> bytes:
    if isinstance(mode, str):
        mode = Mode.parse(mode)
    values = _check_values(values, bits_stored, signed)
    model = _model()
    if mode.kind == "lossy":
        if mode.level >= model.Q:
            raise CodecError(f"lossy:{mode.level}: this model has rate points 0..{model.Q - 1}")
        q = mode.level
    else:
        q = model.residual_q
    vmin, vmax = value_range(bits_stored, signed)
    v64 = values.astype(np.int64)
    lo, hi = int(v64.min()), int(v64.max())
    if hi <= lo:
        hi = lo + 1
    x = ((v64 - lo) / (hi - lo)).astype(np.float32)
    tile = min(int(tile), 64 * -(-max(values.shape) // 64))  # a small slice gets one small tile
    grid = tiles.Grid(values.shape[0], values.shape[1], tile)
    header = bitstream.Header(
        mode_kind=mode.kind, level=mode.level, rate_point=q, model_hash=model.hash8, dtype=_dtype_code(values.dtype),
        bits_stored=int(bits_stored), signed=bool(signed), rows=values.shape[0], cols=values.shape[1], tile=tile,
        lo=lo, hi=hi, values_sha=bitstream.values_digest(v64),
    )
    if mode.kind == "lossy":
        _, chunks = engine.encode_latents(model, x, grid, q)
        return bitstream.pack(bitstream.Payload(header, chunks))
    # near-lossless / lossless: learned layer at the residual rate point + residual layer, or - when that is
    # smaller for this slice - the residual layer alone on a flat reconstruction (rate point NO_LATENTS).
    k = mode.max_error_bound
    y_full, chunks = engine.encode_latents(model, x, grid, q)
    candidates = [(q, chunks, engine.reconstruct(model, y_full, grid, q, lo, hi, vmin, vmax)),
                  (NO_LATENTS, [], _flat_recon(values.shape, lo, vmin, vmax))]
    best = None
    for rp, ch, recon in candidates:
        h = bitstream.Header(**{**header.__dict__, "rate_point": rp, "recon_sha": bitstream.recon_digest(recon)})
        res = _residual().encode_residual(v64, recon, k, int(bits_stored), bool(signed))
        out = bitstream.pack(bitstream.Payload(h, ch, res))
        if best is None or len(out) < len(best):
            best = out
    return best


NO_LATENTS = 255  # rate point of a near-lossless/lossless payload that carries no latents (flat reconstruction)


def _flat_recon(shape, lo: int, vmin: int, vmax: int) -> np.ndarray:
    return np.full(shape, min(max(lo, vmin), vmax), np.int64)


def encode_many(frames: Sequence[np.ndarray], mode: Mode | str, bits_stored: int, signed: bool) -> list[bytes]:
    return [encode(f, mode, bits_stored, signed) for f in frames]


def _residual_only(h: bitstream.Header) -> bool:
    """A near-lossless/lossless payload without latents: a flat reconstruction plus the residual, no model."""
    return h.rate_point == NO_LATENTS and h.mode_kind != "lossy"


def _parse(payload: bytes) -> tuple[bitstream.Payload, engine.Model | None, tiles.Grid]:
    payload = bytes(payload)
    try:
        head = bitstream.parse_header(payload)
    except bitstream.BitstreamError as exc:
        raise CodecError(str(exc)) from None
    model = None
    if not _residual_only(head):
        model = engine.model_for_hash(head.model_hash)
        if model is None or model.hash8 != head.model_hash:
            raise CodecError(
                f"payload was encoded by model {head.model_hash.hex()}, which is not among the weights here "
                f"(searched {', '.join(str(d) for d in engine.search_dirs())}): put that weights file in one of "
                "them or in a folder named by MEDZIP_CODEC_WEIGHTS_PATH"
            )
    try:
        grid = tiles.Grid(head.rows, head.cols, head.tile)
        p = bitstream.unpack(payload, lambda h: 0 if h.rate_point == NO_LATENTS else grid.n_tiles)
    except (bitstream.BitstreamError, ValueError) as exc:
        raise CodecError(str(exc)) from None
    return p, model, grid


def payload_info(payload: bytes) -> dict:
    try:
        h = bitstream.parse_header(bytes(payload))
    except bitstream.BitstreamError as exc:
        raise CodecError(str(exc)) from None
    mode = "lossless" if h.mode_kind == "lossless" else f"{h.mode_kind}:{h.level}"
    return {
        "codec": "medzip-learned", "format_version": h.version, "model_hash": h.model_hash.hex(), "mode": mode,
        "rate_point": None if h.rate_point == NO_LATENTS else h.rate_point, "latents": h.rate_point != NO_LATENTS,
        "shape": [h.rows, h.cols], "dtype": h.dtype, "bits_stored": h.bits_stored,
        "signed": h.signed, "tile": h.tile, "lo": h.lo, "hi": h.hi, "sha256_128": h.values_sha.hex(),
        "bytes": len(payload),
    }


def decode(payload: bytes, exact: bool = True) -> np.ndarray:
    """Stored values of the payload. exact=False (lossy only) uses the compiled float synthesis: faster, but its
    result may differ by one stored value on a few pixels between backends; near-lossless/lossless always decode
    exactly."""
    p, model, grid = _parse(payload)
    h = p.header
    try:
        vmin, vmax = value_range(h.bits_stored, h.signed)
        dtype = np.dtype(h.dtype)
    except TypeError:
        raise CodecError(f"corrupted header: dtype {h.dtype!r}") from None
    no_latents = _residual_only(h)
    if (not no_latents and h.rate_point >= model.Q) or h.hi <= h.lo:
        raise CodecError("corrupted header: rate point or normalisation out of range")
    if no_latents:
        recon = _flat_recon((h.rows, h.cols), h.lo, vmin, vmax)
    else:
        try:
            y_full = engine.decode_latents(model, p.chunks, grid)
        except (entropy.EntropyError, ValueError, RuntimeError) as exc:
            raise CodecError(f"corrupted latent stream: {exc}") from None
        fast = not exact and h.mode_kind == "lossy"
        recon = engine.reconstruct(model, y_full, grid, h.rate_point, h.lo, h.hi, vmin, vmax, exact=not fast)
    if h.mode_kind == "lossy":
        return recon.astype(dtype)
    if bitstream.recon_digest(recon) != h.recon_sha:
        raise CodecError("the lossy layer's reconstruction differs from the encoder's (recon hash mismatch)")
    k = 0 if h.mode_kind == "lossless" else h.level
    res = _residual()
    try:
        values = res.decode_residual(p.residual, recon, k, h.bits_stored, h.signed)
    except res.ResidualError as exc:
        raise CodecError(f"residual layer: {exc}") from None
    values = np.asarray(values, np.int64)
    if h.mode_kind == "lossless" and bitstream.values_digest(values) != h.values_sha:
        raise CodecError("decoded values fail the payload checksum (lossless)")
    return values.astype(dtype)
