"""Entropy coding of latents with constriction's range coder and fixed integer frequency tables.

Tables (computed once after training by lab/export.py, stored in the weights npz):
  - z: per channel c an integer frequency table over symbols z in [z_lo[c], z_lo[c] + n - 1] (discretised learned
    Gaussian prior);
  - y: per scale index s (64 log-spaced scales) a table over y in [-R_s, R_s] (discretised zero-mean Gaussian).
The two end symbols of every table also stand for everything beyond them: such a symbol is followed by an escape
value (the distance past the end) in a varint side list, so no value is ever lost whatever its size.
The tables are integer frequencies handed to constriction as float64 arrays that are identical on both sides;
constriction's own quantisation of them is deterministic, so encoder and decoder build identical models.
"""
from __future__ import annotations

import math

import constriction
import numpy as np

from codec.bitstream import read_varint, write_varints
from codec.errors import EntropyError

TABLE_TOTAL = 1 << 16


def _cdf(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def gaussian_table(mean: float, sigma: float, lo: int, hi: int) -> np.ndarray:
    """Integer frequencies (sum TABLE_TOTAL, each >= 1) of round(N(mean, sigma)) over [lo, hi], tails in the ends."""
    k = np.arange(lo, hi + 1, dtype=np.float64)
    upper = _cdf((k + 0.5 - mean) / sigma)
    lower = _cdf((k - 0.5 - mean) / sigma)
    upper[-1] = 1.0
    lower[0] = 0.0
    p = np.maximum(upper - lower, 0.0)
    n = len(p)
    free = TABLE_TOTAL - n
    f = np.floor(p / p.sum() * free).astype(np.int64) + 1
    f[np.argmax(f)] += TABLE_TOTAL - f.sum()
    return f


def _read_varints(data: bytes, n: int, what: str, pos: int = 0) -> tuple[list[int], int]:
    """n varints from data[pos:]; returns them and the position after the last one."""
    vals = []
    for _ in range(n):
        v, pos = read_varint(data, pos, what, EntropyError)
        vals.append(v)
    return vals, pos


class Tables:
    """The integer tables and the constriction models built from them (once per process)."""

    def __init__(self, z_lo: np.ndarray, z_freqs: list[np.ndarray], y_radius: np.ndarray, y_freqs: list[np.ndarray]):
        self.z_lo = np.asarray(z_lo, np.int64)
        self.z_n = np.array([len(f) for f in z_freqs], np.int64)
        self.y_radius = np.asarray(y_radius, np.int64)
        self.z_models = [constriction.stream.model.Categorical(f.astype(np.float64), perfect=False) for f in z_freqs]
        self.y_models = [constriction.stream.model.Categorical(f.astype(np.float64), perfect=False) for f in y_freqs]

    # --- arrays for the npz ---
    @staticmethod
    def to_arrays(z_lo, z_freqs, y_radius, y_freqs) -> dict:
        return {
            "tab_z_lo": np.asarray(z_lo, np.int64),
            "tab_z_n": np.array([len(f) for f in z_freqs], np.int64),
            "tab_z_freqs": np.concatenate(z_freqs).astype(np.int64),
            "tab_y_radius": np.asarray(y_radius, np.int64),
            "tab_y_freqs": np.concatenate(y_freqs).astype(np.int64),
        }

    @classmethod
    def from_arrays(cls, d) -> "Tables":
        zs = np.split(d["tab_z_freqs"], np.cumsum(d["tab_z_n"])[:-1])
        yn = 2 * d["tab_y_radius"] + 1
        ys = np.split(d["tab_y_freqs"], np.cumsum(yn)[:-1])
        return cls(d["tab_z_lo"], zs, d["tab_y_radius"], ys)


def _to_symbols(v: np.ndarray, lo: int, n: int, escapes: list[int]) -> np.ndarray:
    s = v.astype(np.int64) - lo
    ends = np.flatnonzero((s <= 0) | (s >= n - 1))
    if ends.size:
        e = s[ends]
        escapes.extend(np.where(e <= 0, -e, e - (n - 1)).tolist())
    return np.clip(s, 0, n - 1).astype(np.int32)


def encode_tile(z: np.ndarray, y: np.ndarray, y_idx: np.ndarray, tables: Tables) -> bytes:
    """z (hz, wz, NZ) ints, y (h, w, M) ints, y_idx (h, w, M) scale indices -> bytes (coded | escapes)."""
    enc = constriction.stream.queue.RangeEncoder()
    escapes: list[int] = []
    for c in range(z.shape[-1]):
        lo, n = int(tables.z_lo[c]), int(tables.z_n[c])
        enc.encode(_to_symbols(z[..., c].ravel(), lo, n, escapes), tables.z_models[c])
    yf, idx = y.ravel(), y_idx.ravel()
    order = _stable_order(idx)
    counts = np.bincount(idx, minlength=len(tables.y_models))
    start = 0
    for s, cnt in enumerate(counts.tolist()):
        if cnt:
            r = int(tables.y_radius[s])
            enc.encode(_to_symbols(yf[order[start : start + cnt]], -r, 2 * r + 1, escapes), tables.y_models[s])
            start += cnt
    coded = enc.get_compressed().tobytes()
    esc = write_varints(escapes)
    return write_varints([len(coded), len(escapes)]) + coded + esc


def _read_prefix(data: bytes) -> tuple[int, int, int]:
    (n_coded, n_esc), pos = _read_varints(data, 2, "tile chunk")
    return n_coded, n_esc, pos


def decode_z(data: bytes, z_shape: tuple[int, int, int], tables: Tables):
    """First half of decoding a tile: returns (z, decoder state) so the caller can compute y's scale indices."""
    n_coded, n_esc, pos = _read_prefix(data)
    if pos + n_coded > len(data) or n_coded % 4:
        raise EntropyError("tile chunk truncated")
    words = np.frombuffer(data[pos : pos + n_coded], dtype=np.uint32)
    esc_bytes = data[pos + n_coded :]
    esc, end = _read_varints(esc_bytes, n_esc, "escape list")
    if end != len(esc_bytes):
        raise EntropyError("escape list has trailing bytes")
    dec = constriction.stream.queue.RangeDecoder(words.copy())
    esc_iter = iter(esc)
    hz, wz, nz = z_shape
    sym = np.concatenate([dec.decode(tables.z_models[c], hz * wz) for c in range(nz)])  # channel by channel
    z = _values(sym, np.repeat(tables.z_lo[:nz], hz * wz), np.repeat(tables.z_n[:nz], hz * wz), esc_iter)
    return z.reshape(nz, hz, wz).transpose(1, 2, 0), (dec, esc_iter, esc)


def _values(sym: np.ndarray, lo: np.ndarray, n: np.ndarray, esc_iter) -> np.ndarray:
    """Symbols of tables over [lo, lo + n - 1] (lo, n given per symbol) -> values. An end symbol (0 or n - 1) takes
    the next escape value, the distance past that end; escapes are taken in the order of sym (the encoder's)."""
    s = sym.astype(np.int64)
    ends = np.flatnonzero((s == 0) | (s == n - 1))
    if ends.size:
        try:
            e = np.array([next(esc_iter) for _ in range(ends.size)], np.int64)
        except StopIteration:
            raise EntropyError("tile chunk lacks escape values (corrupted)") from None
        s[ends] = np.where(s[ends] == 0, -e, (n[ends] - 1) + e)
    return s + lo


def decode_y(state, y_idx: np.ndarray, tables: Tables) -> np.ndarray:
    """Second half: y given its scale indices. One range-decoder call per scale in use, then the symbols of all
    scales turned into values at once (escapes taken in the order the encoder wrote them: by scale, then position)."""
    dec, esc_iter, esc = state
    idx = y_idx.ravel()
    order = _stable_order(idx)
    counts = np.bincount(idx, minlength=len(tables.y_models))
    parts = [dec.decode(tables.y_models[s], cnt) for s, cnt in enumerate(counts.tolist()) if cnt]
    sym = np.concatenate(parts) if parts else np.empty(0, np.int64)
    r = np.repeat(tables.y_radius[: counts.size], counts)
    vals = _values(sym, -r, 2 * r + 1, esc_iter)
    if next(esc_iter, None) is not None:
        raise EntropyError("tile chunk has unused escape values")
    y = np.empty(idx.size, np.int64)
    y[order] = vals
    return y.reshape(y_idx.shape)


def _stable_order(idx: np.ndarray) -> np.ndarray:
    """np.argsort(idx, kind="stable") (the order is unique), as a radix sort when the indices fit in a byte."""
    if idx.size and 0 <= idx.min() and idx.max() < 256:
        return np.argsort(idx.astype(np.uint8), kind="stable")
    return np.argsort(idx, kind="stable")
