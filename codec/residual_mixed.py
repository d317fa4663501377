"""The context-mixing coder of raster residual stream version 5 (flag bit 4): version 3/4's walk, q coded bit by bit.

Where the range-coded streams put each wavefront's tokens, signs and raw bits through constriction in three batches,
this coder codes each pixel's |q| and sign as binary decisions predicted by an online context mixer
(codec/mixer_kernels.py) and one binary arithmetic coder whose bytes follow the header; the whole walk runs in one
compiled call.
"""
from __future__ import annotations

import numpy as np

from codec import mixer_kernels as MK
from codec.errors import ResidualError

# New streams may use this coder on slices of up to MAX_PIXELS (codec/coders.py keeps it where it saves 2 % in at most
# 3.5 bits a pixel): 4-9 % fewer bytes than the range coder on 512² CT at 0.97-1.44x its decode time, ~1 % on MR at
# 1.2-1.8x; on a 3.6 MP radiograph at k <= 8 it saved 0.3-0.7 % for 3x (each |q| takes ~10 decisions), so larger
# slices try it only at large k. (Figures of mixer model 1; model 2 saves 1.6-6.5 % more on CT for 1.3x its decode
# time: codec/mixer_kernels.py.)
MAX_PIXELS = 1 << 20
MODELS = (1, 2)  # the mixer models streams may name (header flag bits 4 and 5); new streams use the last
MODEL = MODELS[-1]


def _walk(enc: int, walk, values: np.ndarray, predictor, buf: np.ndarray, model: int):
    """Run codec.residual_raster._Walk `walk` (fresh, version 3 or 4) through MK.walk with mixer `model`; (status,
    buffer, coder state)."""
    if model not in MODELS:
        raise ResidualError(f"no context-mixer model {model!r} (known: {MODELS})")
    nm, _ = MK.models(model)
    prob, count, weights, apm = MK.new_state(model)
    cs = MK.encoder_state() if enc else MK.decoder_state(buf)
    status, buf = MK.walk(enc, values, walk.rows, walk.cols, walk.k, walk.step, walk.lo, walk.hi, walk.top,
                          predictor.weights, predictor.thresholds, walk.version == 4, walk.fine, walk.P, walk.E,
                          walk.ES, walk.pred, walk.sub, walk.ctx, walk.state, walk.flip, walk.q, walk.tok,
                          walk.nraw, walk.raw, walk.neg, walk.SQ, walk.counts, walk.dirty, walk.counts3,
                          walk.dirty3, walk.sctx, walk.symbols, walk.scounts, np.zeros_like(walk.P), nm, prob, count,
                          weights, apm, cs, buf, walk.counts.shape[1])
    return status, buf, cs


def encode_walk(walk, values: np.ndarray, predictor, model: int = MODEL) -> bytes:
    """Walk every wavefront of `walk` over `values`; returns the arithmetic coder's bytes. The walk ends holding
    the decoded values."""
    status, buf, cs = _walk(1, walk, np.ascontiguousarray(values, np.int64), predictor,
                            np.zeros(max(1 << 16, values.size // 2), np.uint8), model)
    if status < 0:  # cannot happen for values within their bits; refuse rather than write a broken stream
        raise AssertionError("the context-mixed coder met a |q| beyond its classes")
    return bytes(buf[: MK.flush(cs, buf)])


def decode_walk(walk, predictor, body: bytes, model: int) -> None:
    """Inverse of encode_walk: the walk ends holding the decoded values."""
    data = np.frombuffer(body, np.uint8).copy()  # writable: the kernel is one function for both directions
    status, _, _ = _walk(0, walk, np.zeros((1, 1), np.int64), predictor, data, model)
    if status < 0:
        raise ResidualError("residual stream corrupted: the context-mixed coder ran off its data")
