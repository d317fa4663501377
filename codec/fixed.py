"""Exact fixed-point re-implementation of the decoder-side networks (h_s and g_s) in numpy.

Why: coding probabilities (the scale index of every latent) and the reconstruction the residual layer builds on
must come out bit-identical on the encoder and the decoder, whatever the Keras backend or CPU. Float convolutions
do not promise that; integer arithmetic does.

How: weights are integers (w * 2**FW), activations integers (a * 2**FA). A convolution sums products of such
integers; we compute it with float64 BLAS, which is exact because every product and every partial sum is an integer
of magnitude < 2**53 (checked per layer at export: sum|w_int| * ACT_MAX + |bias| < 2**53, and activations are
saturated at +-ACT_MAX), so the summation order BLAS picks cannot change the result. Rescaling is a floor
division by a power of two (exact in float64). The network output is therefore the same integer array everywhere.

The decoder's synthesis (synthesis_plane) computes the same integers faster: the whole slice at once instead of
tiles with margins, each 3x3 conv as Winograd F(2x2, 3x3) with integer transforms (16 GEMMs over the channels
instead of 36 multiplies per 2x2 outputs; its own bound, checked per layer when first used, keeps it below 2**53:
about 2**48.7 for the shipped weights), element-wise steps fused in numba (codec/fixed_kernels.py), single-threaded
GEMMs split over the cores by rows (codec/blas.py). synthesis() is the definition it is tested against.
"""
from __future__ import annotations

import threading

import numpy as np

from codec import blas

FW = 14  # fractional bits of conv weights
FA = 16  # fractional bits of activations
FG = 14  # fractional bits of the IGDN gamma
ACT_MAX = float(1 << 26)  # saturation bound of activations (value 1024)
EXACT = float(1 << 53)


def quantize_conv(kernel: np.ndarray, bias: np.ndarray) -> dict:
    w = np.round(kernel.astype(np.float64) * (1 << FW))
    b = np.round(bias.astype(np.float64) * (1 << (FW + FA)))
    bound = np.abs(w).sum(axis=(0, 1, 2)).max() * ACT_MAX + np.abs(b).max()
    if bound >= EXACT:
        raise ValueError(f"conv not exactly representable: bound {bound:.3g} >= 2**53")
    return {"w": w, "b": b}


def quantize_igdn(beta: np.ndarray, gamma: np.ndarray) -> dict:
    g = np.round(gamma.astype(np.float64) * (1 << FG))
    b = np.round(beta.astype(np.float64) * (1 << (FG + FA)))
    bound = np.abs(g).sum(axis=0).max() * ACT_MAX + np.abs(b).max()
    if bound >= EXACT:
        raise ValueError(f"igdn not exactly representable: bound {bound:.3g} >= 2**53")
    return {"g": g, "b": b}


def _sat(a: np.ndarray) -> np.ndarray:
    return np.clip(a, -ACT_MAX, ACT_MAX, out=a)


def conv3x3(x: np.ndarray, layer: dict) -> np.ndarray:
    """'same' stride-1 conv (odd kernel) on (B, H, W, C) integer-valued float64 activations (scale 2**FA).

    im2col, one single-threaded BLAS matmul per image (codec/blas.py: OpenBLAS's own threads stall when other work
    holds the cores). The hyper-synthesis runs this; the synthesis runs synthesis_plane.
    """
    w, b = layer["w"], layer["b"]
    bsz, h, wd, c = x.shape
    kh, kw, _, cout = w.shape
    ph, pw = kh // 2, kw // 2
    xp = np.zeros((bsz, h + 2 * ph, wd + 2 * pw, c), np.float64)
    xp[:, ph : ph + h, pw : pw + wd] = x
    wmat = w.reshape(kh * kw * c, cout)
    out = np.empty((bsz, h, wd, cout), np.float64)
    cols = np.empty((h, wd, kh * kw * c), np.float64)
    for i in range(bsz):
        for dy in range(kh):
            for dx in range(kw):
                k = (dy * kw + dx) * c
                cols[:, :, k : k + c] = xp[i, dy : dy + h, dx : dx + wd]
        blas.matmul(cols.reshape(-1, kh * kw * c), wmat, out[i].reshape(-1, cout))
    out += b
    return _sat(np.floor(out * (1.0 / (1 << FW))))


def depth_to_space(x: np.ndarray) -> np.ndarray:
    bsz, h, w, c4 = x.shape
    c = c4 // 4
    return x.reshape(bsz, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(bsz, 2 * h, 2 * w, c)


def igdn(x: np.ndarray, layer: dict) -> np.ndarray:
    """x * (beta + gamma |x|), all integer: norm rescaled to FG fractional bits, product floor-divided."""
    norm = np.abs(x) @ layer["g"] + layer["b"]  # scale 2**(FA+FG), exact
    norm = np.floor(norm * (1.0 / (1 << FA)))  # scale 2**FG
    norm = np.minimum(norm, float(1 << 26))
    return _sat(np.floor(x * norm * (1.0 / (1 << FG))))  # |x*norm| < 2**52: exact


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def to_fixed(ints: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Integer latents (optionally times a fixed-point per-channel scale of FA bits) as activations."""
    a = ints.astype(np.float64)
    if scale is None:
        return a * (1 << FA)
    return _sat(a * scale)  # scale is an integer array (value * 2**FA); |ints| * scale < 2**53 by the clip below


def hyper_synthesis(z: np.ndarray, net: dict) -> np.ndarray:
    """Integer z (B, h, w, NZ) -> log sigma as integers at scale 2**FA, (B, 4h, 4w, M)."""
    zmax = int(ACT_MAX) >> FA  # saturate like every activation, so the export's exactness bound covers z too
    a = to_fixed(np.clip(z, -zmax, zmax))
    a = relu(depth_to_space(conv3x3(a, net["hs_conv0"])))
    a = relu(depth_to_space(conv3x3(a, net["hs_conv1"])))
    return conv3x3(a, net["hs_conv2"])


def synthesis(y: np.ndarray, inv_gain_fixed: np.ndarray, net: dict, mask: np.ndarray | None = None) -> np.ndarray:
    """Integer latents (B, h, w, M), inverse gain (M,) at scale 2**FA -> x_hat at scale 2**FA, (B, 16h, 16w).

    mask (B, h, w) of 0/1 marks the latents inside the slice; beyond it every stage's output is zeroed, which is
    what the convolutions' zero padding showed the network at image borders in training."""
    a = to_fixed(np.clip(y, -(1 << 24), 1 << 24), inv_gain_fixed)
    m = None if mask is None else mask.astype(np.float64)[..., None]
    for i in range(4):
        a = depth_to_space(conv3x3(a, net[f"gs_conv{i}"]))
        if m is not None:
            m = m.repeat(2, axis=1).repeat(2, axis=2)
        if i < 3:
            a = igdn(a, net[f"gs_igdn{i}"])
            if m is not None:
                a = a * m
    return a[..., 0]



# ---------- the synthesis of a whole region at once (what the decoder runs) ----------

def _conv_rows(xp: np.ndarray, wt: np.ndarray, acc: np.ndarray, r0: int, r1: int) -> None:
    """Rows r0:r1 of a 3x3 conv of the zero-padded input xp (h + 3, wp, C), without im2col: on the flattened
    padded rows, tap (dy, dx) reads the contiguous run starting at dy*wp + dx, so the conv is 9 GEMMs accumulated
    in place. acc (h*wp, Cout) gets the sums without bias; columns from w on are wrap-around garbage.
    Exact: every partial sum is one of the integers the export bounded below 2**53."""
    wp, c = xp.shape[1], xp.shape[2]
    flat = xp.reshape(-1, c)
    out = acc[r0 * wp : r1 * wp]
    for t in range(9):
        dy, dx = divmod(t, 3)
        blas.matmul(flat[(r0 + dy) * wp + dx : (r1 + dy) * wp + dx], wt[dy, dx], out, accumulate=t > 0)


_G2 = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], np.float64)  # 2 G of Winograd F(2, 3)


def _winograd(conv: dict) -> np.ndarray | None:
    """The layer's weights transformed for Winograd F(2x2, 3x3), (16, C, Cout) integers U = (2G) w (2G)^T, or None
    where the transform's sums could reach 2**53 for some input: its inputs B^T d B are sums of 4 activations
    (<= 4 ACT_MAX), each product sum M over the channels is bounded by sum_c |U| * 4 ACT_MAX, and an output
    A^T M A sums 9 of them (then /4, exact: it is 4x the integer convolution)."""
    if "_winograd" not in conv:
        w = conv["w"]
        u = np.einsum("ay,bx,yxio->abio", _G2, _G2, w).reshape(16, w.shape[2], w.shape[3])
        bound = 9 * np.abs(u).sum(axis=1).max() * 4 * ACT_MAX
        ok = w.shape[:2] == (3, 3) and bound < EXACT and np.array_equal(u, np.round(u))
        conv["_winograd"] = np.ascontiguousarray(u) if ok else None
    return conv["_winograd"]


CHUNK_TILES = 256  # Winograd 2x2 tiles per transform-GEMM-transform round: its arrays (a few MB) stay in cache


class _Arena:
    """Work arrays of one synthesis call, kept for the next call: fresh large arrays cost a page fault per 4 kB on
    first touch (measured: a quarter of a 512² slice's synthesis). One idle arena per process (about 50 MB after a
    512² slice, twice that after a band of BAND_LATENTS); a call that finds none takes a new one."""

    _idle: list = []
    _lock = threading.Lock()

    def __init__(self):
        self.bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple) -> np.ndarray:
        n = int(np.prod(shape))
        b = self.bufs.get(name)
        if b is None or b.size < n:
            b = self.bufs[name] = np.empty(n, np.float64)
        return b[:n].reshape(shape)

    def padded(self, name: str, shape: tuple, planar: bool) -> np.ndarray:
        """A padded stage input whose border (row 0, the last rows, columns 0 and -1) is zero; the rest is
        overwritten by the stage that fills it."""
        a = self.get(name, shape)
        v = a if planar else np.moveaxis(a, -1, 0)
        v[:, 0] = 0.0
        v[:, v.shape[1] - (1 if planar else 2) :] = 0.0
        v[:, :, 0] = 0.0
        v[:, :, -1] = 0.0
        return a

    @classmethod
    def take(cls) -> "_Arena":
        with cls._lock:
            return cls._idle.pop() if cls._idle else cls()

    def give(self) -> None:
        with self._lock:
            if not self._idle:
                self._idle.append(self)


def _stage(xp: np.ndarray, h: int, w: int, conv: dict, gd: dict, planar: bool, ws: _Arena, k: int) -> np.ndarray:
    """conv -> rescale -> IGDN -> depth-to-space of one synthesis stage; returns the next stage's padded input."""
    from codec import fixed_kernels as K

    cin, cout = conv["w"].shape[2:]
    c = cout // 4
    x = ws.get("x", (h, w, cout))
    ax = ws.get("ax", (h, w, cout))
    norm = ws.get("norm", (h, w, cout))
    h2, w2 = 2 * h, 2 * w
    nxt = ws.padded(f"pad{k % 2}", (c, h2 + 2, w2 + 2) if planar else (h2 + 3, w2 + 2, c), planar)
    u = _winograd(conv)
    inv_w = 1.0 / (1 << FW)

    def igdn(r0, r1):
        blas.matmul(ax[r0:r1].reshape(-1, c), gd["g"], norm[r0:r1].reshape(-1, c))
        K.igdn_to_space(x.reshape(h, w, 4, c), norm.reshape(h, w, 4, c), gd["b"], 1.0 / (1 << FA), 1.0 / (1 << FG),
                        float(1 << 26), ACT_MAX, nxt, planar, r0, r1)

    if u is None:  # weights whose Winograd sums could leave the exact range: the direct 9-tap conv
        acc = ws.get("acc", (h * xp.shape[1], cout))

        def rows(r0, r1, band):
            _conv_rows(xp, conv["w"], acc, r0, r1)
            K.rescale(acc.reshape(h, xp.shape[1], cout), conv["b"], inv_w, ACT_MAX, x, ax, r0, r1)
            igdn(r0, r1)

        blas.split_rows(rows, h, min_rows=max(1, 2048 // max(1, w)))
        return nxt
    tw = (w + 1) // 2
    step = max(1, CHUNK_TILES // tw)
    consts = (inv_w, 1.0 / (1 << FA), 1.0 / (1 << FG), float(1 << 26), ACT_MAX)

    def tile_rows(t0, t1, band):
        n = min(t1 - t0, step) * tw
        K.winograd_stage(xp, u, conv["b"], gd["g"], gd["b"], t0, t1, step, consts, x, ax, norm, nxt, planar,
                         ws.get(f"v{band}", (16 * n * cin,)), ws.get(f"m{band}", (16 * n * cout,)),
                         ws.get(f"s{band}", (4, 4, cin)), ws.get(f"y{band}", (4, cout)))

    blas.split_rows(tile_rows, (h + 1) // 2, min_rows=max(1, 1024 // max(1, w)))
    return nxt


def synthesis_plane(y: np.ndarray, inv_gain_fixed: np.ndarray, net: dict) -> np.ndarray:
    """Integer latents of a region (h, w, M) -> x_hat (16h, 16w) as integers at scale 2**FA.

    Zero padding at the region's border in every stage, which is what synthesis() computes with the region's mask:
    the whole slice's latents give synthesis()'s pixels (tests/codec/test_fixed.py), without the tiles' margins
    computed twice, im2col copies, or a pass per element-wise step (codec/fixed_kernels.py fuses them)."""
    from codec import fixed_kernels as K

    blas.dgemm()  # scipy's BLAS to one thread before the numba kernels' np.dot uses it
    h, w, m = y.shape
    xp = np.zeros((h + 3, w + 2 + w % 2, m), np.float64)  # an odd width gets a zero column for the 2x2 tiles
    xp[1 : h + 1, 1 : w + 1] = to_fixed(np.clip(y, -(1 << 24), 1 << 24), inv_gain_fixed)
    ws = _Arena.take()
    try:
        for i in range(3):
            xp = _stage(xp, h, w, net[f"gs_conv{i}"], net[f"gs_igdn{i}"], i == 2, ws, i)
            h, w = 2 * h, 2 * w
        conv = net["gs_conv3"]
        out = np.empty((2 * h, 2 * w), np.float64)
        blas.split_rows(lambda r0, r1, band: K.conv_to_pixels(xp, conv["w"], conv["b"], 1.0 / (1 << FW), ACT_MAX, out, r0,
                                                        r1), h, min_rows=max(1, 8192 // max(1, w)))
    finally:
        ws.give()
    return out
