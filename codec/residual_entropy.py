"""Adaptive context coding of non-negative integers with constriction's range coder.

An integer u is split into a token and raw bits (the hybrid-uint idea of JPEG XL): u < 16 is its own token; larger
u keep their bit length and the two bits below the leading one in the token, the remaining low bits are sent raw.
Tokens are coded per context with a categorical model whose probabilities are integer counts of the tokens already
coded in that context (plus an integer prior), so encoder and decoder build identical tables with no side info.
Each call codes one batch; the caller cuts a phase into batches so the counts adapt within it.
"""
from __future__ import annotations

import constriction
import numpy as np

_DIRECT = 16  # tokens 0..15 are the values themselves
_MSB = 2  # bits below the leading one kept in the token
_SCALE = 16  # weight of an observed token against the prior of 1
_PRIOR_MASS = 32  # the neighbour prior weighs as much as this many observed tokens
_RAW_CHUNK = 16  # constriction's Uniform model needs size < 2**24: send raw bits 16 at a time

_model = constriction.stream.model


def n_tokens(max_bits: int) -> int:
    """Token alphabet size for values below 2**max_bits."""
    return _DIRECT + (max(max_bits, 4) - 4 + 1) * (1 << _MSB)


def split(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u (int64 >= 0) -> (token, number of raw bits, raw bits)."""
    u = u.astype(np.int64, copy=False)
    big = u >= _DIRECT
    nbits = np.zeros_like(u)
    nbits[big] = np.floor(np.log2(u[big])).astype(np.int64)
    # float log2 may be off by one near powers of two: fix it exactly
    nbits[big] -= (np.left_shift(1, nbits[big]) > u[big]).astype(np.int64)
    nbits[big] += (np.left_shift(1, nbits[big] + 1) <= u[big]).astype(np.int64)
    nraw = np.where(big, nbits - _MSB, 0)
    mant = np.where(big, np.right_shift(u, np.maximum(nraw, 0)) & ((1 << _MSB) - 1), 0)
    token = np.where(big, _DIRECT + (nbits - 4) * (1 << _MSB) + mant, u)
    raw = np.where(big, u & (np.left_shift(1, nraw) - 1), 0)
    return token, nraw, raw


def join(token: np.ndarray, raw: np.ndarray) -> np.ndarray:
    token = token.astype(np.int64)
    big = token >= _DIRECT
    nbits = (token - _DIRECT) // (1 << _MSB) + 4
    mant = (token - _DIRECT) % (1 << _MSB)
    nraw = nbits - _MSB
    value = np.left_shift((1 << _MSB) | mant, np.maximum(nraw, 0)) + raw
    return np.where(big, value, token)


def raw_bits_of(token: np.ndarray) -> np.ndarray:
    token = token.astype(np.int64)
    return np.where(token >= _DIRECT, (token - _DIRECT) // (1 << _MSB) + 4 - _MSB, 0)


class ContextCoder:
    """Per-context adaptive token statistics shared by the encoder and decoder."""

    def __init__(self, n_contexts: int, max_bits: int):
        self.counts = np.zeros((n_contexts, n_tokens(max_bits)), dtype=np.int64)

    def _model(self, ctx: int):
        # unseen tokens in a young context borrow from the neighbouring activity contexts (a bounded integer prior)
        lo, hi = max(ctx - 1, 0), min(ctx + 2, self.counts.shape[0])
        near = self.counts[lo:hi].sum(axis=0)
        prior = near * (_PRIOR_MASS * _SCALE) // max(int(near.sum()), 1)
        probs = (self.counts[ctx] * _SCALE + prior + 1).astype(np.float64)  # exact: integers below 2**53
        return _model.Categorical(probs, perfect=False)

    def _groups(self, ctx: np.ndarray):
        order = np.argsort(ctx, kind="stable")
        bounds = np.searchsorted(ctx[order], np.arange(self.counts.shape[0] + 1))
        for c in range(self.counts.shape[0]):
            if bounds[c + 1] > bounds[c]:
                yield c, order[bounds[c] : bounds[c + 1]]

    def encode(self, enc, ctx: np.ndarray, u: np.ndarray) -> None:
        token, nraw, raw = split(u)
        for c, idx in self._groups(ctx):
            enc.encode(token[idx].astype(np.int32), self._model(c))
        np.add.at(self.counts, (ctx, token), 1)
        _code_raw(enc, nraw, raw)

    def decode(self, dec, ctx: np.ndarray) -> np.ndarray:
        token = np.zeros(ctx.shape, dtype=np.int64)
        for c, idx in self._groups(ctx):
            token[idx] = dec.decode(self._model(c), len(idx))
        np.add.at(self.counts, (ctx, token), 1)
        return join(token, _decode_raw(dec, raw_bits_of(token)))


def _code_raw(enc, nraw: np.ndarray, raw: np.ndarray) -> None:
    for n in np.unique(nraw[nraw > 0]):
        vals = raw[nraw == n]
        for lo in range(0, int(n), _RAW_CHUNK):
            width = min(_RAW_CHUNK, int(n) - lo)
            chunk = (np.right_shift(vals, lo) & ((1 << width) - 1)).astype(np.int32)
            enc.encode(chunk, _model.Uniform(1 << width))


def _decode_raw(dec, nraw: np.ndarray) -> np.ndarray:
    raw = np.zeros(nraw.shape, dtype=np.int64)
    for n in np.unique(nraw[nraw > 0]):
        sel = nraw == n
        vals = np.zeros(int(sel.sum()), dtype=np.int64)
        for lo in range(0, int(n), _RAW_CHUNK):
            width = min(_RAW_CHUNK, int(n) - lo)
            model = _model.Uniform(1 << width)
            vals |= np.left_shift(np.asarray(dec.decode(model, int(sel.sum())), dtype=np.int64), lo)
        raw[sel] = vals
    return raw
