"""Classical anchors for the bench: JPEG 2000, JPEG-LS, JPEG-XL and HTJ2K on 2-D arrays of stored values.

Every anchor takes a frame of stored values (``bits_stored`` bits, signed or not) and returns the bare codestream;
``decode`` gives back the same dtype. Payload sizes are the codestreams alone: the sign offset below is a pure
function of (bits_stored, signed), which a DICOM header already carries, so it costs no payload bytes.

Library facts that shape this module (imagecodecs 2026.3.6, pyjpegls 1.5.1):
- OpenJPEG (JPEG 2000) and OpenJPH (HTJ2K) take int16 natively, so signed frames go in as they are.
- CharLS (JPEG-LS) and libjxl (JPEG-XL) take unsigned samples only: signed frames are offset by 2**(bits_stored-1)
  into [0, 2**bits_stored) before coding and shifted back after decoding (``Anchor.offset``).
- None of the four takes more than 16 bits per sample through these wrappers: deeper frames raise AnchorError.
- JPEG-LS goes through pyjpegls (CharLS) rather than imagecodecs, because imagecodecs always declares the sample
  precision as the container width (P=16 for a 12-bit frame), which sets CharLS's thresholds for 16-bit data;
  pyjpegls declares the true BitsStored, as a DICOM JPEG-LS encoder does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import imagecodecs
import jpeg_ls
import numpy as np

from codec.values import check_fits, value_range
from quality import metrics


class AnchorError(ValueError):
    """A frame an anchor cannot code (bit depth, shape, mode), or a codestream it cannot decode."""


@dataclass(frozen=True)
class AnchorSetting:
    """One operating point of a classical anchor (not a medzip Mode): lossless, near-lossless with bound k, or lossy
    at the anchor library's own quality parameter (JPEG 2000: target PSNR in dB, JPEG-XL: distance)."""

    kind: str  # "lossless" | "near-lossless" | "lossy"
    k: int = 0  # near-lossless: the bound on |original - decoded|
    param: float = 0.0  # lossy: the library's parameter

    @classmethod
    def lossless(cls) -> "AnchorSetting":
        return cls("lossless")

    @classmethod
    def near_lossless(cls, k: int) -> "AnchorSetting":
        return cls("near-lossless", k=int(k))

    @classmethod
    def lossy(cls, param: float) -> "AnchorSetting":
        return cls("lossy", param=float(param))

    def __str__(self) -> str:
        if self.kind == "lossless":
            return "lossless"
        if self.kind == "near-lossless":
            return f"near-lossless:{self.k}"
        return f"lossy:{self.param:g}"


LOSSLESS = AnchorSetting.lossless()


def _container(bits_stored: int, signed: bool) -> np.dtype:
    if bits_stored > 16:
        raise AnchorError(f"{bits_stored}-bit samples: the classical anchors take at most 16 bits")
    size = 1 if bits_stored <= 8 else 2
    return np.dtype(f"{'i' if signed else 'u'}{size}")


def _check(values: np.ndarray, bits_stored: int) -> None:
    if values.ndim != 2:
        raise AnchorError(f"expected a 2-D frame, got shape {values.shape}")
    if values.dtype.kind not in "iu":
        raise AnchorError(f"expected integer stored values, got dtype {values.dtype}")
    if not 2 <= bits_stored <= 16:
        raise AnchorError(f"BitsStored {bits_stored} outside 2..16, which the classical anchors take")


def _resolutions(shape: tuple[int, ...]) -> int:
    """Wavelet resolutions (decomposition levels + 1): OpenJPEG's default 6, fewer for tiny frames."""
    return max(1, min(6, int(math.log2(max(1, min(shape)))) + 1))


@dataclass(frozen=True)
class Anchor:
    key: str
    name: str
    library: str
    native_signed: bool
    near_lossless: bool
    # lossy: parameter search interval, whether the search runs on log(param), whether bpp rises with param
    lossy_range: tuple[float, float] | None
    lossy_log: bool = False
    lossy_increasing: bool = True
    lossy_start: tuple[float, float] = (0.0, 0.0)
    _enc: Callable[[np.ndarray, int, AnchorSetting], bytes] = field(default=None, repr=False)
    _dec: Callable[[bytes], np.ndarray] = field(default=None, repr=False)

    @property
    def lossy(self) -> bool:
        return self.lossy_range is not None

    def supports(self, setting: AnchorSetting) -> bool:
        return (
            setting.kind == "lossless"
            or (setting.kind == "near-lossless" and self.near_lossless)
            or (setting.kind == "lossy" and self.lossy)
        )

    def offset(self, bits_stored: int, signed: bool) -> int:
        """What is added to stored values before coding (0 unless signed data meets an unsigned-only codec)."""
        return (1 << (bits_stored - 1)) if signed and not self.native_signed else 0

    def encode(self, values: np.ndarray, bits_stored: int, signed: bool, setting: AnchorSetting = LOSSLESS) -> bytes:
        _check(values, bits_stored)
        if not self.supports(setting):
            raise AnchorError(f"{self.name} has no {setting.kind} mode")
        off = self.offset(bits_stored, signed)
        dtype = _container(bits_stored, signed and self.native_signed)
        v = values.astype(np.int64) + off if off else values
        check_fits(values, bits_stored, signed, AnchorError)
        try:
            return bytes(self._enc(np.ascontiguousarray(v.astype(dtype)), bits_stored, setting))
        except AnchorError:
            raise
        except Exception as exc:  # library errors carry no type we could name in advance
            raise AnchorError(f"{self.name} {setting} encode failed: {exc}") from exc

    def decode(self, payload: bytes, bits_stored: int, signed: bool, dtype: np.dtype) -> np.ndarray:
        try:
            out = np.asarray(self._dec(payload))
        except Exception as exc:
            raise AnchorError(f"{self.name} decode failed: {exc}") from exc
        if out.ndim != 2:
            raise AnchorError(f"{self.name} decoded shape {out.shape}, expected 2-D")
        out = out.astype(np.int64)
        off = self.offset(bits_stored, signed)
        if off:
            out -= off
        return np.clip(out, *value_range(bits_stored, signed, AnchorError)).astype(dtype)


# --- the four codecs -------------------------------------------------------------------------------------------


def _j2k_enc(v: np.ndarray, bits: int, s: AnchorSetting) -> bytes:
    common = dict(codecformat="J2K", resolutions=_resolutions(v.shape), bitspersample=bits)
    if s.kind == "lossless":
        return imagecodecs.jpeg2k_encode(v, reversible=True, **common)
    # imagecodecs' `level` is OpenJPEG's fixed-quality target (PSNR, dB) with the 9/7 irreversible transform
    return imagecodecs.jpeg2k_encode(v, level=s.param, reversible=False, **common)


def _htj2k_enc(v: np.ndarray, bits: int, s: AnchorSetting) -> bytes:
    return imagecodecs.htj2k_encode(v, reversible=True, resolutions=_resolutions(v.shape))


def _jls_enc(v: np.ndarray, bits: int, s: AnchorSetting) -> bytes:
    k = s.k if s.kind == "near-lossless" else 0
    rows, cols = v.shape
    return jpeg_ls.encode_buffer(v.tobytes(), rows, cols, 1, bits, lossy_error=k)


def _jls_dec(payload: bytes) -> np.ndarray:
    raw, info = jpeg_ls.decode_buffer(payload)
    dtype = np.uint8 if info["bits_per_sample"] <= 8 else np.uint16
    return np.frombuffer(bytes(raw), dtype=dtype).reshape(info["height"], info["width"])


def _jxl_enc(v: np.ndarray, bits: int, s: AnchorSetting) -> bytes:
    if s.kind == "lossless":
        return imagecodecs.jpegxl_encode(v, lossless=True, bitspersample=bits)
    return imagecodecs.jpegxl_encode(v, lossless=False, distance=s.param, bitspersample=bits)


def _version(name: str) -> str:
    text = imagecodecs.version()
    for part in text.split(","):
        if part.strip().startswith(name + "-"):
            return part.strip().split("-", 1)[1]
    return "?"


def _pyjpegls_version() -> str:
    from importlib.metadata import version

    return version("pyjpegls")


ALL_ANCHORS: dict[str, Anchor] = {
    a.key: a
    for a in (
        Anchor(
            "j2k", "JPEG 2000", f"OpenJPEG {_version('openjpeg')} via imagecodecs", True, False,
            lossy_range=(15.0, 110.0), lossy_start=(50.0, 65.0),
            _enc=_j2k_enc, _dec=imagecodecs.jpeg2k_decode,
        ),
        Anchor(
            "jls", "JPEG-LS", f"CharLS via pyjpegls {_pyjpegls_version()}", False, True, lossy_range=None,
            _enc=_jls_enc, _dec=_jls_dec,
        ),
        Anchor(
            "jxl", "JPEG-XL", f"libjxl {_version('libjxl')} via imagecodecs", False, False,
            lossy_range=(0.01, 25.0), lossy_log=True, lossy_increasing=False, lossy_start=(0.3, 2.0),
            _enc=_jxl_enc, _dec=imagecodecs.jpegxl_decode,
        ),
        Anchor(
            "htj2k", "HTJ2K", f"OpenJPH {_version('openjph')} via imagecodecs", True, False, lossy_range=None,
            _enc=_htj2k_enc, _dec=imagecodecs.htj2k_decode,
        ),
    )
}

_AVAILABLE_FLAG = {"j2k": "JPEG2K", "jxl": "JPEGXL", "htj2k": "HTJ2K"}


def unavailable() -> dict[str, str]:
    """Anchors this installation cannot run, with the reason."""
    missing = {}
    for key, flag in _AVAILABLE_FLAG.items():
        if not getattr(getattr(imagecodecs, flag, None), "available", False):
            missing[key] = f"imagecodecs built without {flag}"
    return missing


def available() -> dict[str, Anchor]:
    gone = unavailable()
    return {k: a for k, a in ALL_ANCHORS.items() if k not in gone}


# --- hitting a target rate -------------------------------------------------------------------------------------


@dataclass
class RateMatch:
    setting: AnchorSetting
    payload: bytes
    bpp: float
    target_bpp: float
    evaluations: int


class RateMatcher:
    """Finds, for one frame and one lossy anchor, the parameter whose codestream is closest to a target bpp.

    bpp is monotone in the parameter, so a bracketing secant search on log(bpp) converges in a few encodes;
    every encode is cached, so later targets on the same frame reuse the earlier ones.
    """

    def __init__(self, anchor: Anchor, values: np.ndarray, bits_stored: int, signed: bool, *, tol: float = 0.03,
                 max_evals: int = 10):
        if not anchor.lossy:
            raise AnchorError(f"{anchor.name} has no lossy mode")
        self.anchor, self.values, self.bits, self.signed = anchor, values, bits_stored, signed
        self.tol, self.max_evals = tol, max_evals
        self._samples: dict[float, tuple[float, bytes]] = {}  # search x -> (log bpp, payload)
        self.evaluations = 0

    def _x(self, param: float) -> float:
        return math.log(param) if self.anchor.lossy_log else param

    def _param(self, x: float) -> float:
        return math.exp(x) if self.anchor.lossy_log else x

    def _eval(self, x: float) -> float:
        x = round(x, 6)
        if x not in self._samples:
            payload = self.anchor.encode(self.values, self.bits, self.signed, AnchorSetting.lossy(self._param(x)))
            self._samples[x] = (math.log(max(metrics.bpp(len(payload), self.values.size), 1e-9)), payload)
            self.evaluations += 1
        return self._samples[x][0]

    def match(self, target_bpp: float) -> RateMatch:
        t = math.log(target_bpp)
        lo_x, hi_x = (self._x(p) for p in self.anchor.lossy_range)
        sign = 1.0 if self.anchor.lossy_increasing else -1.0  # so that sign*x rises with bpp
        for p in self.anchor.lossy_start:
            if len(self._samples) < 2:
                self._eval(self._x(p))
        budget = self.evaluations + self.max_evals
        while True:
            pts = sorted(self._samples.items(), key=lambda kv: sign * kv[0])
            best_x, (best_f, _) = min(pts, key=lambda kv: abs(kv[1][0] - t))
            if abs(best_f - t) <= math.log1p(self.tol) or self.evaluations >= budget:
                break
            below = [(x, f) for x, (f, _) in pts if f < t]
            above = [(x, f) for x, (f, _) in pts if f > t]
            if below and above:
                (x0, f0), (x1, f1) = below[-1], above[0]
                if abs(x1 - x0) < 1e-4:
                    break
                x = x0 + (t - f0) * (x1 - x0) / (f1 - f0) if f1 != f0 else (x0 + x1) / 2
                # keep away from the bracket ends so a flat stretch cannot stall the search
                x = min(max(x, x0 + 0.1 * (x1 - x0)), x1 - 0.1 * (x1 - x0)) if x0 < x1 else \
                    max(min(x, x0 + 0.1 * (x1 - x0)), x1 - 0.1 * (x1 - x0))
            else:
                need_more = not above  # every sample is below the target: go beyond the richest one
                (x0, (f0, _)), (x1, (f1, _)) = (pts[-2], pts[-1]) if need_more else (pts[0], pts[1])
                edge, f_edge = (x1, f1) if need_more else (x0, f0)
                if x1 != x0 and f1 != f0:
                    step = (t - f_edge) * (x1 - x0) / (f1 - f0)
                else:
                    step = sign * (1.0 if need_more else -1.0)
                x = edge + 1.5 * step  # overshoot a little so the next round has a bracket
                x = min(max(x, min(lo_x, hi_x)), max(lo_x, hi_x))
            if round(x, 6) in self._samples:
                break
            self._eval(x)
        best_x = min(self._samples, key=lambda k: abs(self._samples[k][0] - t))
        f, payload = self._samples[best_x]
        return RateMatch(AnchorSetting.lossy(round(self._param(best_x), 6)), payload, math.exp(f), target_bpp,
                         self.evaluations)
