"""The context-mixing coder of raster residual stream version 5 (flag bit 4): version 3/4's walk, q coded bit by bit.

Where the range-coded streams put each wavefront's tokens, signs and raw bits through constriction in three batches,
this coder codes each pixel's |q| and sign as binary decisions predicted by an online context mixer
(codec/mixer_kernels.py) and one binary arithmetic coder whose bytes follow the header.
"""
from __future__ import annotations

import numpy as np

from codec import mixer_kernels as MK
from codec.errors import ResidualError

# New streams may use this coder on slices of up to MAX_PIXELS (codec/coders.py keeps it where it saves 2 %): 4-9 %
# fewer bytes than the range coder on 512² CT and ~1 % on MR at 1.2-2x its decode time; on a 3.6 MP radiograph at
# k <= 8 it saved 0.3-0.7 % for 3x (each |q| takes ~10 decisions), so larger slices try it only at large k.
MAX_PIXELS = 1 << 20
_SLACK = 64  # bytes the arithmetic coder may write past its estimate before the buffer grows


def _state(walk) -> tuple:
    return (*MK.new_state(), np.zeros_like(walk.P))


def encode_walk(walk, values: np.ndarray, predictor) -> bytes:
    """Walk every wavefront of `walk` (a fresh codec.residual_raster._Walk of version 3 or 4) over `values`; returns
    the arithmetic coder's bytes. The walk ends holding the decoded values."""
    prob, count, weights, apm, signs = _state(walk)
    cs = MK.encoder_state()
    buf = np.zeros(1 << 16, np.uint8)
    for t in walk.wavefronts():
        n = walk.predict(t, predictor)
        walk.quantise(t, values, n)
        need = int(cs[3]) + n * MK.MAX_DECISIONS * 2 + _SLACK
        if need > len(buf):
            buf = np.concatenate([buf, np.zeros(max(need, len(buf)), np.uint8)])
        done = MK.wavefront(1, t, walk.rows, walk.cols, walk.step, walk.lo, walk.hi, walk.pred, walk.ctx,
                            walk.state, walk.flip, walk.q, walk.tok, walk.neg, walk.E, walk.ES, signs, prob, count,
                            weights, apm, cs, buf, walk.counts.shape[1])
        if done < 0:  # cannot happen for values within their bits; refuse rather than write a broken stream
            raise AssertionError("the context-mixed coder met a |q| beyond its classes")
        walk.commit(t)
    return bytes(buf[: MK.flush(cs, buf)])


def decode_walk(walk, predictor, body: bytes) -> None:
    """Inverse of encode_walk: the walk ends holding the decoded values."""
    prob, count, weights, apm, signs = _state(walk)
    data = np.frombuffer(body, np.uint8).copy()  # writable: the kernel is one function for both directions
    cs = MK.decoder_state(data)
    for t in walk.wavefronts():
        n = walk.predict(t, predictor)
        got = MK.wavefront(0, t, walk.rows, walk.cols, walk.step, walk.lo, walk.hi, walk.pred, walk.ctx, walk.state,
                           walk.flip, walk.q, walk.tok, walk.neg, walk.E, walk.ES, signs, prob, count, weights, apm,
                           cs, data, walk.counts.shape[1])
        if got < 0 or cs[3] > len(data) + 4:
            raise ResidualError("residual stream corrupted: the context-mixed coder ran off its data")
        walk.commit(t)
