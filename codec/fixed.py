"""Exact fixed-point re-implementation of the decoder-side networks (h_s and g_s) in numpy.

Why: coding probabilities (the scale index of every latent) and the reconstruction the residual layer builds on
must come out bit-identical on the encoder and the decoder, whatever the Keras backend or CPU. Float convolutions
do not promise that; integer arithmetic does.

How: weights are integers (w * 2**FW), activations integers (a * 2**FA). A convolution sums products of such
integers; we compute it with float64 BLAS, which is exact because every product and every partial sum is an integer
of magnitude < 2**53 (checked per layer at export: sum|w_int| * ACT_MAX + |bias| < 2**53, and activations are
saturated at +-ACT_MAX), so the summation order BLAS picks cannot change the result. Rescaling is a floor
division by a power of two (exact in float64). The network output is therefore the same integer array everywhere.
"""
from __future__ import annotations

import numpy as np

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

    im2col, one BLAS matmul per image: the earlier one-matmul-per-tap form made ~250 small calls per slice, and
    each is a thread hand-off in OpenBLAS that stalls when other work holds the cores (decode 5x slower under load).
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
        np.matmul(cols.reshape(-1, kh * kw * c), wmat, out=out[i].reshape(-1, cout))
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
