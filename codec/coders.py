"""One coder per mode kind behind codec.api, found through one registry (as pydicom's pixel decoders are).

Adding a mode kind = a `Coder` subclass registered here (plus its kind in codec.modes and codec.bitstream).
  lossy                     the learned layer alone at rate point q (codec/learned.py)
  near-lossless, lossless   the residual layer over a flat image (codec/residual_raster.py): |e| <= k, k = 0
                            exact. Payloads of earlier releases may carry latents and a version 1 residual
                            (codec/residual.py); they keep decoding.
  wavelet                   the integer 9/7 wavelet coder (codec/wavelet.py) at rate point q, |e| <= the guard's
                            bound when it has one
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from codec import bitstream, learned, residual, residual_mixed, residual_raster, tiles, wavelet
from codec.bitstream import NO_LATENTS
from codec.errors import CodecError, ResidualError, WaveletError
from codec.modes import Mode


@dataclass(frozen=True)
class Slice:
    """One frame on its way in: stored values (int64), tile grid, the payload header so far; `memo`: what a coder
    settled for this frame in an earlier mode (codec.api.SliceEncoder shares it between the modes of one frame);
    `series`: what a coder settled for an earlier frame of the same series that this one may reuse."""

    values: np.ndarray
    grid: tiles.Grid
    header: bitstream.Header
    vmin: int
    vmax: int
    memo: dict = field(default_factory=dict, compare=False)
    series: dict = field(default_factory=dict, compare=False)

    @cached_property
    def x(self) -> np.ndarray:
        """The values normalised to 0..1 by the header's lo/hi: what the learned layer codes (lossy only)."""
        h = self.header
        return ((self.values - h.lo) / (h.hi - h.lo)).astype(np.float32)


class Coder:
    """Encode a Slice in a mode of its kinds; decode a parsed payload of those kinds to stored values (int64)."""

    kinds: tuple[str, ...] = ()

    def rate_point(self, model: learned.LearnedModel, mode: Mode) -> int:
        raise NotImplementedError

    def encode(self, s: Slice, model: learned.LearnedModel, mode: Mode) -> bytes:
        return self.encode_decoded(s, model, mode)[0]

    def encode_decoded(self, s: Slice, model: learned.LearnedModel, mode: Mode) -> tuple[bytes, np.ndarray | None]:
        """The payload and the stored values it decodes to where the encoder computed them on the way (the
        decoder's exact integer arithmetic, so they are what decode() returns), else None. What a coder implements."""
        raise NotImplementedError

    def needs_model(self, h: bitstream.Header) -> bool:
        return h.rate_point != NO_LATENTS

    def decode(self, p: bitstream.Payload, model: learned.LearnedModel | None, grid: tiles.Grid, vmin: int,
               vmax: int, exact: bool) -> np.ndarray:
        raise NotImplementedError

    def mode_text(self, h: bitstream.Header, payload: bytes) -> str:
        """The mode a payload was coded in (`payload`: the whole payload, for a kind whose stream says more)."""
        return f"{h.mode_kind}:{h.level}"


REGISTRY: dict[str, Coder] = {}


def register(cls: type[Coder]) -> type[Coder]:
    """Class decorator: one instance of `cls` codes every kind it lists."""
    coder = cls()
    for kind in cls.kinds:
        REGISTRY[kind] = coder
    return cls


def coder_for(kind: str) -> Coder:
    try:
        return REGISTRY[kind]
    except KeyError:
        raise CodecError(f"no coder for mode kind {kind!r}") from None


def latent_recon(p: bitstream.Payload, model: learned.LearnedModel, grid: tiles.Grid, vmin: int, vmax: int,
                 exact: bool = True) -> np.ndarray:
    """The learned layer's reconstruction of a payload's latents (stored values, int64)."""
    h = p.header
    if h.rate_point >= model.Q:
        raise CodecError("corrupted header: rate point or normalisation out of range")
    try:
        y_full = learned.decode_latents(model, p.chunks, grid)
    except (ValueError, RuntimeError, AssertionError) as exc:  # constriction asserts on words it cannot decode
        raise CodecError(f"corrupted latent stream: {exc}") from None
    return learned.reconstruct(model, y_full, grid, h.rate_point, h.lo, h.hi, vmin, vmax, exact=exact)


def flat_recon(shape: tuple[int, int], lo: int, vmin: int, vmax: int) -> np.ndarray:
    """The reconstruction of a payload without latents: every pixel the slice's minimum."""
    return np.full(shape, min(max(lo, vmin), vmax), np.int64)


@register
class LossyCoder(Coder):
    kinds = ("lossy",)

    def rate_point(self, model, mode):
        if mode.level >= model.Q:
            raise CodecError(f"lossy:{mode.level}: this model has rate points 0..{model.Q - 1}")
        return mode.level

    def encode_decoded(self, s, model, mode):
        _, chunks = learned.encode_latents(model, s.x, s.grid, s.header.rate_point)
        return bitstream.pack(bitstream.Payload(s.header, chunks)), None  # its decode runs the exact synthesis

    def needs_model(self, h):
        return True

    def decode(self, p, model, grid, vmin, vmax, exact):
        """exact=False uses the compiled float synthesis (faster, may differ by one stored value between backends)."""
        return latent_recon(p, model, grid, vmin, vmax, exact=exact)


_PROBE_ROWS = 48  # k > 0: the two residual layers are compared on a centre band of this many rows across the width
# A centre crop of a CT body favours version 1 (on 693 the 96² crop coded 0.27-0.75x the raster layer's bytes, the
# whole slice 1.36-1.60x): the body is where version 1's interpolation does well, the air around it where the raster
# layer's contexts cost next to nothing; a band across the width sees both (python -m lab.layer_probe).
_V1_MARGIN = 0.97  # version 1 is tried whole only where it codes the probe in less than this share of the raster bytes
# On 216 bundled frame x k rows: 1.0023x the bytes of the better whole layer (CT 1.0040), probe + version 1 trials
# 34 s against the 96² crop's 84 s (1.0014x, CT 1.0192; most of its 70 whole trials lost); the raster layer whole: 41 s.
# lossless with a parity structure: a 64² centre crop costs half as much, and on the 7 such bundled frames it was right
# as often (128² picked version 2 on all 7, missing 693_UNCI, where version 1 is 20 % smaller; 64² catches it and sends
# the two MR2 frames to a version 1 trial that loses by 2.5 % and is dropped by the min() below)
_PROBE_LOSSLESS = 64


def _probe(values: np.ndarray, recon: np.ndarray, k: int, bits: int, signed: bool,
           predictor: residual_raster.Predictor, mixed: bool):
    """The residual layer worth coding whole: version 1 (interleaved levels) where it codes a centre band (k > 0; a
    centre crop for lossless) in less than _V1_MARGIN of the raster layer's bytes (with the whole slice's
    `predictor`, as it would code the slice), else the raster one (fast; better on most CT and MR)."""
    rows, cols = values.shape
    if k:
        r0, c0, height, width = max(0, (rows - _PROBE_ROWS) // 2) & ~1, 0, _PROBE_ROWS, cols
    else:  # even origins: the same pixel parities
        side = _PROBE_LOSSLESS
        r0, c0, height, width = max(0, (rows - side) // 2) & ~1, max(0, (cols - side) // 2) & ~1, side, side
    crop = np.ascontiguousarray(values[r0 : r0 + height, c0 : c0 + width])
    base = recon[: crop.shape[0], : crop.shape[1]]
    raster = len(residual_raster.encode_residual(crop, base, k, bits, signed, predictor, mixed=mixed))
    margin = _V1_MARGIN if k else 1.0
    return residual if len(residual.encode_residual(crop, base, k, bits, signed)) < margin * raster else residual_raster


# The context-mixed coder (codec/residual_mixed.py) must save this share of the range coder's bytes to be kept: where
# it saves less (noisy MR: 0.7-2 %) it would only cost decode time (up to 2.5x the range coder's on a 512² MR).
_MIXED_GAIN = 0.98
# ... and code the slice in at most this many bits a pixel. Its decode time grows with the decisions it takes, about
# 0.16 us a pixel + 0.06 us a coded bit on this project's 2-core machine (lab/mixed_coder.py: a 512² CT at 2.4 bits a
# pixel in 81 ms, a noisy 12-bit CT lossless at 4.0 in 112 ms against the range coder's 49 for 2.4 % fewer bytes);
# past 3.5 it would miss the budget of 100 ms a 512² slice (pro rata on other sizes). At the gates' k a slice takes
# 0.2-3 bits a pixel.
_MIXED_MAX_BPP = 3.5
# Slices over residual_mixed.MAX_PIXELS (radiographs) try it only from this k: at the gates' k = 20-40 each |q| takes
# a few decisions (DX 2-3 % fewer bytes at 1.1-1.9x the range coder's decode time), at k <= 8 about ten, for 0.3-0.7 %.
_MIXED_LARGE_K = 16


def _raster_stream(values: np.ndarray, recon: np.ndarray, k: int, bits: int, signed: bool,
                   predictor: residual_raster.Predictor, memo: dict, series: dict) -> tuple[bytes, np.ndarray]:
    """The raster layer, context-mixed or range-coded: both on the first residual attempt of a series' first frame
    (slices of up to residual_mixed.MAX_PIXELS, larger ones from k = _MIXED_LARGE_K), the mixed one kept where it is
    under _MIXED_GAIN of the other and _MIXED_MAX_BPP; the frame's later attempts (other k, from `memo`) and the
    series' later frames (from `series`) reuse that verdict, and fall back to the range coder where a mixed stream
    of theirs passes _MIXED_MAX_BPP."""
    if values.size > residual_mixed.MAX_PIXELS and k < _MIXED_LARGE_K:
        return residual_raster.encode_residual_decoded(values, recon, k, bits, signed, predictor, mixed=False)
    verdict = memo.get("mixed coder", series.get("mixed coder"))
    if verdict is not None:
        memo["mixed coder"] = verdict
        res = residual_raster.encode_residual_decoded(values, recon, k, bits, signed, predictor, mixed=verdict)
        if verdict and not _within_cap(res[0], values.size):  # e.g. lossless after a verdict at the gate's k
            res = residual_raster.encode_residual_decoded(values, recon, k, bits, signed, predictor, mixed=False)
        return res
    mixed = residual_raster.encode_residual_decoded(values, recon, k, bits, signed, predictor, mixed=True)
    ranged = residual_raster.encode_residual_decoded(values, recon, k, bits, signed, predictor, mixed=False)
    keep = len(mixed[0]) < _MIXED_GAIN * len(ranged[0]) and _within_cap(mixed[0], values.size)
    memo["mixed coder"] = series["mixed coder"] = keep
    return mixed if memo["mixed coder"] else ranged


def _within_cap(stream: bytes, pixels: int) -> bool:
    return 8 * len(stream) <= _MIXED_MAX_BPP * pixels


def _residual_stream(values: np.ndarray, recon: np.ndarray, k: int, bits: int, signed: bool, memo: dict,
                     series: dict) -> tuple[bytes, np.ndarray]:
    """The raster residual layer (stream version 5: version 4's walk where the slice has constant blocks and k > 0,
    else version 3's, under a compact header; versions 2-4 still decode), or version 1 where it codes the
    slice smaller. Version 1 is tried (a whole encode, ~0.3 s on 512²) only where a probe (~60 ms on 512²) favours
    it: for k > 0 always; lossless only when the raster layer finds a pixel-parity structure (upsampled,
    interleaved slices), so a plain lossless slice pays for the raster layer alone. The smaller whole stream is kept:
    a probe can misjudge the slice. The raster layer's predictor is fitted once, for probe and slice; its coder is
    _raster_stream's. `memo` keeps the first near-lossless verdict (the probe's, or raster once version 1 lost
    whole) for the frame's later k (codec.api.SliceEncoder). Returns the stream and the values it decodes to."""
    predictor = residual_raster.fit_predictor(np.ascontiguousarray(values, dtype=np.int64), k)
    res = _raster_stream(values, recon, k, bits, signed, predictor, memo, series)
    mixed = memo.get("mixed coder", False)  # the probe codes its crop as the slice's raster layer is coded
    if k == 0:
        layer = _probe(values, recon, k, bits, signed, predictor, mixed) if predictor.by_parity else residual_raster
    else:
        if "near-lossless layer" not in memo:
            memo["near-lossless layer"] = _probe(values, recon, k, bits, signed, predictor, mixed)
        layer = memo["near-lossless layer"]
    if layer is residual:
        v1 = residual.encode_residual_decoded(values, recon, k, bits, signed)
        if len(v1[0]) < len(res[0]):
            return v1
        if k:
            memo["near-lossless layer"] = residual_raster  # version 1 lost whole: later k need not try it again
    return res


@register
class ResidualCoder(Coder):
    kinds = ("near-lossless", "lossless")

    def rate_point(self, model, mode):
        return model.residual_q

    def encode_decoded(self, s, model, mode):
        """The residual layer alone over a flat reconstruction (rate point NO_LATENTS).

        Earlier releases also coded latents + residual and kept the smaller payload; on 25 distinct bundled frames
        (lossless and near-lossless:2) the latents never paid for themselves, so the candidate is no longer coded.
        The residual layer is the raster one (stream version 5), or version 1 where that is smaller
        (_residual_stream).
        """
        h, k = s.header, mode.max_error_bound
        recon = flat_recon(s.values.shape, h.lo, s.vmin, s.vmax)
        head = replace(h, rate_point=NO_LATENTS).compact(keep_values_sha=mode.kind == "lossless")
        res, decoded = _residual_stream(s.values, recon, k, h.bits_stored, h.signed, s.memo, s.series)
        return bitstream.pack(bitstream.Payload(head, [], res)), decoded

    def decode(self, p, model, grid, vmin, vmax, exact):
        h = p.header
        if h.rate_point == NO_LATENTS:
            recon = flat_recon((h.rows, h.cols), h.lo, vmin, vmax)
        else:
            recon = latent_recon(p, model, grid, vmin, vmax, exact=True)  # the residual needs the exact recon
        if h.recon_sha is not None and bitstream.recon_digest(recon) != h.recon_sha:  # version 2
            raise CodecError("the lossy layer's reconstruction differs from the encoder's (recon hash mismatch)")
        k = 0 if h.mode_kind == "lossless" else h.level
        layer = residual_raster if residual_raster.is_raster_stream(p.residual) else residual
        try:
            values = layer.decode_residual(p.residual, recon, k, h.bits_stored, h.signed)
        except ResidualError as exc:
            raise CodecError(f"residual layer: {exc}") from None
        values = np.asarray(values, np.int64)
        if h.mode_kind == "lossless" and bitstream.values_digest(values) != h.values_sha:  # None: corrupted
            raise CodecError("decoded values fail the payload checksum (lossless)")
        return values

    def mode_text(self, h, payload):
        return "lossless" if h.mode_kind == "lossless" else super().mode_text(h, payload)


@register
class WaveletCoder(Coder):
    kinds = ("wavelet",)

    def rate_point(self, model, mode):
        return NO_LATENTS

    def encode_decoded(self, s, model, mode):
        h = s.header
        stream, decoded = wavelet.encode_wavelet_decoded(s.values, mode.level, mode.bound, h.lo, h.hi)
        head = h.compact(keep_values_sha=wavelet.stream_bound(stream) == 0)
        return bitstream.pack(bitstream.Payload(head, [], stream)), decoded

    def decode(self, p, model, grid, vmin, vmax, exact):
        h = p.header
        if not vmin <= h.lo < h.hi <= vmax + 1:  # encode's hi is lo + 1 on a constant slice
            raise CodecError(f"corrupted header: value range {h.lo}..{h.hi} outside {vmin}..{vmax}")
        try:
            shape = wavelet.stream_shape(p.residual)
            if shape != (h.rows, h.cols):
                raise CodecError(f"wavelet stream of shape {shape} in a payload of {h.rows}x{h.cols}")
            values = wavelet.decode_wavelet(p.residual, h.lo, h.hi)
        except WaveletError as exc:
            raise CodecError(f"wavelet stream: {exc}") from None
        if wavelet.stream_bound(p.residual) == 0 and bitstream.values_digest(values) != h.values_sha:
            raise CodecError("decoded values fail the payload checksum (wavelet with guard bound 0)")
        return values

    def mode_text(self, h, payload):
        try:
            bound = wavelet.stream_bound(bitstream.unpack(payload, lambda _: 0).residual)
        except (bitstream.BitstreamError, WaveletError) as exc:
            raise CodecError(f"wavelet payload: {exc}") from None
        return f"wavelet:{h.level}" if bound is None else f"wavelet:{h.level}/{bound}"
