"""The wavelet codec's entropy coding: the quantised bands through one adaptive context model and constriction's
range coder (token distributions and sign distributions, one batch of each per wavefront), the tokens' raw bits as
a plain bit string beside it, and the max-error guard's corrections as Elias gamma bits.

Bands go coarse to fine, each along wavefronts t = 2i + j, so W, N, NW and NE lie on earlier wavefronts; the LL
band codes its MED prediction residual. Contexts: codec/wavelet_kernels.py.
"""
from __future__ import annotations

import constriction
import numpy as np

from codec import raster_kernels as RK
from codec import wavelet_bits as B
from codec import wavelet_kernels as K


class BandCoder:
    """Per-image adaptive state shared by encoder and decoder."""

    def __init__(self, maxbits: int, shape: tuple[int, int], raw: np.ndarray):
        A = RK.n_tokens(maxbits)
        self.counts, self.totals = np.zeros((K.NCTX, A), np.int64), np.zeros(K.NCTX, np.int64)
        self.pooled, self.ptot = np.ones((K.NB, A), np.int64), np.full(K.NB, A, np.int64)
        self.prior, self.valid = np.zeros((K.NB, A), np.int64), np.zeros(K.NB, np.bool_)
        self.scounts = np.ones((K.N_SIGN_CTX, 2), np.int64)
        self.stotals = np.full(K.N_SIGN_CTX, 2, np.int64)
        n = max(min(r1 - r0, (c1 - c0 + 1) // 2) for r0, r1, c0, c1, _, _ in K.bands(shape)) + 1
        self.ctx, self.sctx = np.zeros(n, np.int64), np.zeros(n, np.int64)
        self.tok, self.ssym = np.zeros(n, np.int32), np.zeros(n, np.int32)
        self.rows, self.srows = np.zeros((n, A)), np.zeros((n, 2))
        self.raw, self.rst = raw, np.zeros(2, np.int64)  # raw token bits, [bit position, overflow]
        self.cat = constriction.stream.model.Categorical(perfect=False)

    def encode_band(self, S: np.ndarray, M: np.ndarray, PM: np.ndarray | None, cls: int, enc) -> None:
        h, w = M.shape
        has_p = PM is not None
        PM = PM if has_p else np.zeros((1, 1), np.int64)
        for t in range(RK.n_wavefronts(h, w)):
            n, ns = K.encode_rows(t, S, M, PM, has_p, cls, self.counts, self.pooled, self.ptot, self.prior,
                                  self.valid, self.scounts, self.ctx, self.rows, self.tok, self.raw, self.rst,
                                  self.sctx, self.srows, self.ssym)
            enc.encode(self.tok[:n], self.cat, self.rows[:n])
            if ns:
                enc.encode(self.ssym[:ns], self.cat, self.srows[:ns])
            K.commit(t, S, M, self.ssym, False, self.ctx, self.tok, n, self.sctx, ns, self.counts, self.totals,
                     self.pooled, self.ptot, self.valid, self.scounts, self.stotals)

    def decode_band(self, S: np.ndarray, M: np.ndarray, PM: np.ndarray | None, cls: int, dec) -> None:
        h, w = M.shape
        has_p = PM is not None
        PM = PM if has_p else np.zeros((1, 1), np.int64)
        for t in range(RK.n_wavefronts(h, w)):
            n = K.decode_rows(t, M, PM, has_p, cls, self.counts, self.pooled, self.ptot, self.prior, self.valid,
                              self.ctx, self.rows)
            self.tok[:n] = dec.decode(self.cat, self.rows[:n])
            ns = K.decode_magnitudes(t, S, M, cls, self.tok, n, self.raw, self.rst, self.scounts, self.sctx,
                                     self.srows, self.ssym)
            if ns:
                self.ssym[:ns] = dec.decode(self.cat, self.srows[:ns])
            K.commit(t, S, M, self.ssym, True, self.ctx, self.tok, n, self.sctx, ns, self.counts, self.totals,
                     self.pooled, self.ptot, self.valid, self.scounts, self.stotals)


def encode_bands(qs: list[np.ndarray], shape: tuple[int, int], maxbits: int) -> tuple[np.ndarray, bytes]:
    """The quantised bands (coarse to fine, as wavelet_kernels.bands) -> (range coder words, raw bits)."""
    raw = np.zeros((sum(q.size for q in qs) * maxbits + 7) // 8 + 8, np.uint8)
    coder = BandCoder(maxbits, shape, raw)
    enc = constriction.stream.queue.RangeEncoder()
    parents: dict[tuple[int, int], np.ndarray] = {}
    for q, (_, _, _, _, o, lev) in zip(qs, K.bands(shape)):
        if o == 0:
            S = np.zeros_like(q)
            K.med_residual(q, S, False)
        else:
            S = q
        coder.encode_band(S, np.abs(S), parents.get((o, lev + 1)), K.band_class(o, lev), enc)
        if o:
            parents[(o, lev)] = np.abs(q)
    if coder.rst[1]:
        raise AssertionError("raw bit buffer too small")  # sized for every coefficient at maxbits: cannot happen
    return enc.get_compressed(), raw[: (int(coder.rst[0]) + 7) // 8].tobytes()


def decode_bands(words: np.ndarray, raw: bytes, shape: tuple[int, int], maxbits: int) -> list[np.ndarray] | None:
    """Inverse of encode_bands; None where the raw bits end early or are left over (a corrupted stream).
    constriction's errors on corrupted words propagate."""
    rbuf = np.frombuffer(raw, np.uint8)
    coder = BandCoder(maxbits, shape, rbuf)
    dec = constriction.stream.queue.RangeDecoder(words)
    qs = []
    parents: dict[tuple[int, int], np.ndarray] = {}
    for r0, r1, c0, c1, o, lev in K.bands(shape):
        S = np.zeros((r1 - r0, c1 - c0), np.int64)
        M = np.zeros_like(S)
        coder.decode_band(S, M, parents.get((o, lev + 1)), K.band_class(o, lev), dec)
        if o == 0:
            q = np.zeros_like(S)
            K.med_residual(q, S, True)
        else:
            q = S
            parents[(o, lev)] = M
        qs.append(q)
    if coder.rst[1] or (int(coder.rst[0]) + 7) // 8 != len(raw):
        return None
    return qs


def encode_guard(err: np.ndarray, bound: int) -> bytes:
    """Corrections that bring every |err| (value - reconstruction) to <= bound."""
    flat = np.ascontiguousarray(err, np.int64).ravel()
    buf = np.zeros((B.guard_size(flat, bound) + 7) // 8, np.uint8)
    st = np.zeros(2, np.int64)
    B.put_guard(flat, bound, buf, st)
    return buf.tobytes()


GUARD_FAULTS = {1: "ends early", 2: "corrects a pixel past the image", 3: "corrects by more than the value range",
                4: "has bytes after its last correction"}


def decode_guard(data: bytes, shape: tuple[int, int], bound: int, span: int) -> np.ndarray | str:
    """The corrections (int64, shape), or what is wrong with them; span = hi - lo bounds a correction."""
    corr = np.zeros(shape[0] * shape[1], np.int64)
    fault = B.get_guard(np.frombuffer(data, np.uint8), bound, span // (2 * bound + 1) + 1, corr)
    return GUARD_FAULTS[fault] if fault else corr.reshape(shape)
