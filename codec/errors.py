"""Every error the codec raises. All derive from CodecError, so `except CodecError` catches any of them."""
from __future__ import annotations


class CodecError(ValueError):
    """A payload that cannot be decoded faithfully (foreign, truncated, corrupted, failed checksum), or input the
    codec cannot code."""


class ModeError(CodecError):
    """A mode string that does not name a codec mode."""


class BitstreamError(CodecError):
    """A payload whose container (header, lengths, CRC) does not parse."""


class EntropyError(CodecError):
    """A latent tile chunk that the entropy decoder cannot read."""


class ResidualError(CodecError):
    """Bad input to the residual layer or a residual stream that cannot be decoded faithfully."""


class ModelError(CodecError, RuntimeError):
    """Codec weights that are missing or cannot be loaded."""


class WaveletError(CodecError):
    """Bad input to the wavelet codec or a wavelet stream that cannot be decoded faithfully."""
