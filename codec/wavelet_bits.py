"""The wavelet codec's plain bit strings (numba): a bit writer/reader, Elias gamma, and the max-error guard's
corrections. Reads stop at the end of their buffer and flag it, so corrupted data cannot index past it."""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def put_bits(buf, st, v, nbits):
    """Append the nbits low bits of v, most significant first; st = [bit position, overflow flag]."""
    pos = st[0]
    if pos + nbits > 8 * len(buf):
        st[1] = 1
        return
    for b in range(nbits - 1, -1, -1):
        if (v >> b) & 1:
            buf[pos >> 3] |= np.uint8(0x80 >> (pos & 7))
        pos += 1
    st[0] = pos


@nb.njit(cache=True)
def get_bits(buf, st, nbits):
    """The next nbits bits; past the end of buf: 0 and the overflow flag set."""
    pos = st[0]
    if pos + nbits > 8 * len(buf):
        st[1] = 1
        return np.int64(0)
    v = np.int64(0)
    for _ in range(nbits):
        v = (v << 1) | ((buf[pos >> 3] >> (7 - (pos & 7))) & 1)
        pos += 1
    st[0] = pos
    return v


@nb.njit(cache=True)
def _bit_length(v):
    n = 0
    while v:
        v >>= 1
        n += 1
    return n


@nb.njit(cache=True)
def put_gamma(buf, st, v):
    """Elias gamma of v >= 1."""
    nb_ = _bit_length(v)
    put_bits(buf, st, 0, nb_ - 1)
    put_bits(buf, st, v, nb_)


@nb.njit(cache=True)
def get_gamma(buf, st):
    """Inverse of put_gamma; more than 62 leading zeros (or the end of buf) sets the overflow flag."""
    z = 0
    while get_bits(buf, st, 1) == 0:
        z += 1
        if z > 62 or st[1]:
            st[1] = 1
            return np.int64(1)
    return (np.int64(1) << z) | get_bits(buf, st, z)


@nb.njit(cache=True)
def gamma_bits(v):
    return 2 * _bit_length(v) - 1


# ---------------------------------------------------------------------------------------------- guard
@nb.njit(cache=True)
def guard_size(err, bound):
    """Bits put_guard writes."""
    step = 2 * bound + 1
    n, bits, prev = 0, 0, -1
    for k in range(len(err)):
        e = err[k]
        if abs(e) > bound:
            bits += gamma_bits(k - prev) + 1 + gamma_bits((abs(e) - bound + step - 1) // step)
            prev = k
            n += 1
    return bits + gamma_bits(n + 1)


@nb.njit(cache=True)
def put_guard(err, bound, buf, st):
    """Corrections for the pixels whose |err| > bound: their count + 1, then per pixel the gap to the previous one,
    a sign bit and m >= 1 with the correction m (2 bound + 1), all Elias gamma."""
    step = 2 * bound + 1
    n = 0
    for k in range(len(err)):
        n += abs(err[k]) > bound
    put_gamma(buf, st, n + 1)
    prev = -1
    for k in range(len(err)):
        e = err[k]
        if abs(e) > bound:
            put_gamma(buf, st, k - prev)
            put_bits(buf, st, 1 if e < 0 else 0, 1)
            put_gamma(buf, st, (abs(e) - bound + step - 1) // step)
            prev = k


@nb.njit(cache=True)
def get_guard(buf, bound, max_m, corr):
    """Inverse of put_guard into corr (zeros); returns 0, or 1 for data that ends early, 2 for a correction past
    the image, 3 for one larger than the value range allows, 4 for bits left after the last correction."""
    st = np.zeros(2, np.int64)
    step = 2 * bound + 1
    n = get_gamma(buf, st) - 1
    if st[1]:
        return 1
    if n > len(corr):
        return 2
    k = -1
    for _ in range(n):
        k += get_gamma(buf, st)
        neg = get_bits(buf, st, 1)
        m = get_gamma(buf, st)
        if st[1]:
            return 1
        if k >= len(corr):
            return 2
        if m > max_m:
            return 3
        corr[k] = -m * step if neg else m * step
    if (st[0] + 7) // 8 != len(buf) or get_bits(buf, st, (8 - st[0] % 8) % 8) != 0:
        return 4
    return 0
